"""`make gpu-check`: the GPU path in one prepared command, each step a timed stage with pass/fail.

Meant for a GPU machine lent for minutes and without network: it downloads nothing (the project's own
tiny model is built in Hugging Face format from the offline synthetic tasks) and should finish within
8 minutes on one H100-class GPU. Stages, in order (a stage whose input failed is skipped):

1. ``build``: synthetic data and the tiny model (HF folder, local).
2. ``cuda_bnb_4bit``: CUDA visible, the model loaded in 4-bit NF4 through bitsandbytes, one forward.
3. ``warm_start``: QLoRA supervised training on the references (iteration 0).
4. ``sample_hf``, ``score``, ``train_killed``: iteration 1 in a child process, HF sampling, scoring,
   then the train stage (QLoRA, two-pass ranking gradient), killed (SIGKILL) as soon as it starts.
5. ``train_resumed``: the loop resumes iteration 1 in this process: only the train stage runs again.
6. ``two_pass_vs_joint``: on the trained adapter, the two-pass gradient against the joint one.
7. ``sample_vllm``: vLLM with the iteration's LoRA adapter, in a child process; skipped with a note
   where vllm does not import or there is no GPU.
8. ``eval``: the held-out evaluation of iteration 1 (HF sampler, the simulator).

Each stage records seconds, peak GPU memory (``torch.cuda.max_memory_allocated`` of the process that
ran it; the vLLM engine's own processes are not counted) and details. Output: ``report.json`` in the
run folder and a table on stdout; exit 1 if a stage failed.

Without CUDA it stops with one line naming what it needs. ``GPU_CHECK_ALLOW_CPU=1`` runs the same
stages on the CPU with a smaller model and fewer tasks, so that CI tests the script itself.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.commands.flags import Parser
from harness.config import TrainConfig, load_config, model_config
from harness.loop import dispatch, loop, stages
from harness.loop.loop import load_records, weights_of
from harness.loop.stages import record_prompt
from harness.model.models import load_model, load_tokenizer
from harness.model.prompting import format_example, format_prompt
from harness.objective.ranking import RankingCollator, build_ranking_dataset
from harness.reports.mdtable import md_table
from harness.runs.folder import RunFolder, atomic_write_json, run_folder
from harness.sample import vllm_sampler
from harness.sample.sampling import SamplingConfig
from tasks.jsonl import read_jsonl
from verilog_tools.errors import UserError

ALLOW_CPU_ENV = "GPU_CHECK_ALLOW_CPU"
NEEDS = "a CUDA GPU visible to torch (a CUDA build of torch) and bitsandbytes with CUDA kernels"
# The preset's tiny model on a GPU; a smaller one on a CPU (only the script is under test there).
GPU_OVERRIDES = {"quant": "4bit", "limit": 64, "instructions_per_iter": 16, "k": 4, "iters": 1, "warmup_epochs": 1,
                 "max_new_tokens": 128, "eval_limit": 16, "eval_n": 2, "split_gradients": True,
                 "gradient_checkpointing": True, "max_length": 512, "sampler": "hf", "seed": 0}
CPU_OVERRIDES = {**GPU_OVERRIDES, "limit": 12, "instructions_per_iter": 3, "k": 3, "max_new_tokens": 12,
                 "eval_limit": 2, "eval_n": 1, "tiny_hidden_size": 64, "tiny_layers": 1, "tiny_heads": 2,
                 "tiny_intermediate_size": 64, "torch_threads": 1, "workers": 1, "gradient_checkpointing": False}
# Two-pass vs joint: bf16 kernels on a GPU round differently with batch shape; fp32 on a CPU does not.
GRAD_TOLERANCE = {"cuda": 2e-2, "cpu": 1e-4}  # max |split - joint| / max |joint|
KILL_AFTER_S = 1.0


class Skip(Exception):
    """A stage that cannot run here (the reason is the note)."""


class Recorder:
    """Stages with status, seconds, peak GPU memory and details, saved to ``path`` after each change."""

    def __init__(self, path: Path, stages: list[dict] | None = None):
        self.path, self.stages = path, stages or []

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.stages, indent=2) + "\n")
        tmp.replace(self.path)

    def ok(self, name: str) -> bool:
        return any(s["stage"] == name and s["status"] == "pass" for s in self.stages)

    @contextlib.contextmanager
    def stage(self, name: str, what: str, needs: tuple[str, ...] = ()):
        entry = {"stage": name, "what": what, "status": "running", "seconds": None, "peak_gpu_mib": None,
                 "details": {}}
        self.stages.append(entry)
        missing = [n for n in needs if not self.ok(n)]
        if missing:
            entry.update(status="skip", note=f"needs {', '.join(missing)} to pass first")
            self.save()
            yield None
            return
        self.save()
        _reset_peak()
        start = time.monotonic()
        try:
            yield entry["details"]
            entry["status"] = "pass"
        except Skip as exc:
            entry.update(status="skip", note=str(exc))
        except Exception as exc:  # a stage's failure is the check's result, not a crash of the check
            lines = str(exc).strip().splitlines()
            entry.update(status="fail", note=f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500])
        finally:
            entry["seconds"] = round(time.monotonic() - start, 2)
            entry["peak_gpu_mib"] = _peak_mib()
            self.save()


def _reset_peak() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_mib() -> float | None:
    import torch
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def check_device(allow_cpu: bool) -> str:
    """``cuda`` or (allowed) ``cpu``; a UserError naming what is missing otherwise."""
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if allow_cpu:
        return "cpu"
    build = f"torch {torch.__version__}, " + ("built with CUDA but no GPU visible" if torch.version.cuda
                                             else "a CPU-only build")
    raise UserError(f"make gpu-check needs {NEEDS} ({build}); {ALLOW_CPU_ENV}=1 runs its stages on the CPU")


def config_for(device: str):
    return load_config("tiny-cpu", None, GPU_OVERRIDES if device == "cuda" else CPU_OVERRIDES)


def run_check(results_dir: Path, name: str | None, device: str) -> tuple[Path, list[dict]]:
    """Every stage, in order; the run folder and the recorded stages."""
    cfg = config_for(device)
    with run_folder(results_dir, name, "gpu-check") as run:
        atomic_write_json(run.path / "config.json", cfg.to_dict())
        rec = Recorder(run.path / "stages.json")
        base = None
        with rec.stage("build", "synthetic data and the tiny model in HF format, offline"):
            loop.prepare_data_stage(run, cfg)
            base = loop.base_model(run, cfg)
        with rec.stage("cuda_bnb_4bit", "4-bit NF4 load through bitsandbytes and one forward", ("build",)) as d:
            if d is not None:
                d.update(load_4bit(cfg, base, device))
        with rec.stage("warm_start", "QLoRA supervised training on the references (iteration 0)", ("cuda_bnb_4bit",)):
            loop.warmup_stage(run, cfg, base)
        with run.unlocked():  # the child iteration takes the lock while it runs
            kill_and_resume(run.path, rec)
        with rec.stage("train_resumed", "the loop resumes iteration 1: only its train stage runs",
                       ("train_killed",)) as d:
            if d is not None:
                d.update(resume_iteration(run, cfg, base))
        with rec.stage("two_pass_vs_joint", "two-pass ranking gradient equals the joint one", ("train_resumed",)) as d:
            if d is not None:
                d.update(compare_gradients(run, cfg, base, device))
        with rec.stage("sample_vllm", "vLLM sampling with the LoRA adapter, in a child process",
                       ("train_resumed",)) as d:
            if d is not None:
                d.update(sample_vllm(run, cfg, base, device))
        with rec.stage("eval", "held-out evaluation of iteration 1 (HF sampler, simulator)", ("train_resumed",)) as d:
            if d is not None:
                loop.eval_stage(run, cfg, base, 1)
                metrics = json.loads((run.path / "iter-01" / "eval" / "metrics.json").read_text())
                d.update(pass_at_k=metrics.get("pass_at_k"), status_counts=metrics.get("status_counts"))
    return run.path, rec.stages


def load_4bit(cfg, base: str, device: str) -> dict:
    import bitsandbytes as bnb
    import torch

    mcfg = model_config(cfg, base)
    model = load_model(mcfg, trainable=False)
    layers = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    if not layers:
        raise RuntimeError("no bitsandbytes Linear4bit layer in the loaded model")
    ids = load_tokenizer(mcfg)("module top;", return_tensors="pt")["input_ids"].to(model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise RuntimeError("the 4-bit model's logits are not finite")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"device": name, "linear4bit_layers": layers, "bitsandbytes": bnb.__version__,
            "torch": torch.__version__, "cuda": torch.version.cuda}


def kill_and_resume(run_path: Path, rec: Recorder) -> None:
    """Iteration 1 in a child (sample, score, then train), killed once its train stage has begun."""
    part = run_path / "child_stages.json"
    part.unlink(missing_ok=True)
    names = ("sample_hf", "score", "train_killed")
    if not rec.ok("warm_start"):
        for name in names:
            rec.stages.append({"stage": name, "status": "skip", "note": "needs warm_start to pass first"})
        rec.save()
        return
    proc = subprocess.Popen([sys.executable, "-m", "harness.commands.gpu_check", "--iteration-child", str(run_path)],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    killed_at = None
    while proc.poll() is None:
        stages = json.loads(part.read_text()) if part.is_file() else []
        train = next((s for s in stages if s["stage"] == "train_killed"), None)
        if train is not None and killed_at is None:
            time.sleep(KILL_AFTER_S)
            os.killpg(proc.pid, signal.SIGKILL)
            killed_at = time.monotonic() - started
        time.sleep(0.2)
    stages = json.loads(part.read_text()) if part.is_file() else []
    for s in stages:
        if s["stage"] == "train_killed":
            killed = killed_at is not None and s["status"] == "running"
            s.update(status="pass" if killed else "fail", seconds=KILL_AFTER_S if killed else s["seconds"],
                     note=(f"SIGKILL {KILL_AFTER_S:g} s into the train stage" if killed
                           else f"the child was not killed in its train stage (exit {proc.returncode})"))
    if not stages:
        stages = [{"stage": "sample_hf", "status": "fail", "note": f"the child exited {proc.returncode} early"}]
    rec.stages.extend(stages)
    rec.save()


def iteration_child(run_path: Path) -> int:
    """The killed child: iteration 1 with its sample, score and train stages recorded."""
    run = RunFolder.open(run_path)
    cfg = TrainConfig(**json.loads((run_path / "config.json").read_text()))
    rec = Recorder(run_path / "child_stages.json")
    wrapped = [(stages, "sample_stage", "sample_hf", "HF sampling of K-1 candidates per instruction"),
               (stages, "score_stage", "score", "syntax check + Rouge-L of every candidate"),
               (dispatch, "train", "train_killed", "QLoRA ITERTL train stage, killed once started")]
    for module, attr, name, what in wrapped:
        setattr(module, attr, _recorded(rec, name, what, getattr(module, attr)))
    try:
        loop.iteration(run, cfg, loop.base_model(run, cfg), 1)
    finally:
        run.release()  # the parent's run_check retakes it; the run's lifecycle stays the parent's
    return 0


def _recorded(rec: Recorder, name: str, what: str, func):
    def call(*args, **kwargs):
        with rec.stage(name, what):
            result = func(*args, **kwargs)
        if rec.stages[-1]["status"] == "fail":
            raise RuntimeError(rec.stages[-1]["note"])
        return result
    return call


def resume_iteration(run, cfg, base: str) -> dict:
    before = {s: run.stage_done(f"iter-01/{s}") for s in ("sample", "score", "train")}
    if before != {"sample": True, "score": True, "train": False}:
        raise RuntimeError(f"after the kill expected sample and score done, train not; found {before}")
    loop.iteration(run, cfg, base, 1)
    if not run.stage_done("iter-01/train"):
        raise RuntimeError("the resumed iteration did not mark its train stage done")
    log = json.loads((run.path / "iter-01" / "train_log.json").read_text())
    return {k: log.get(k) for k in ("groups", "steps", "seconds", "tokens_per_s", "length_drops",
                                    "dropout_disabled", "max_length")} | {"final": log.get("final")}


def compare_gradients(run, cfg, base: str, device: str) -> dict:
    """Joint vs two-pass gradient of the LoRA weights on two scored groups of iteration 1."""
    from types import SimpleNamespace

    import torch

    # Here, not at the top: the trainer loads transformers, whose huggingface_hub reads HF_HUB_OFFLINE
    # when imported, and main() sets it first.
    from harness.objective.trainer import disable_dropout, joint_loss, split_backward

    mcfg = model_config(cfg, base)
    tokenizer = load_tokenizer(mcfg)
    model = load_model(mcfg, adapter_path=weights_of(run, 1), trainable=True)
    dropouts = disable_dropout(model)
    groups = read_jsonl(run.path / "iter-01" / "scores.jsonl")[:2]
    batch = RankingCollator(tokenizer.pad_token_id)(build_ranking_dataset(groups, tokenizer, format_example,
                                                                          max_length=cfg.max_length,
                                                                          style=cfg.train_prompt_style))
    batch = {k: v.to(model.device) for k, v in batch.items()}
    args = SimpleNamespace(alpha=cfg.alpha, margin=1.0, length_normalize=cfg.length_normalize,  # margin 1: all hinges
                           min_score_gap=cfg.min_score_gap, pair_reduction=cfg.pair_reduction,
                           forward_chunk_size=1, logprob_chunk_tokens=cfg.logprob_chunk_tokens)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext())
    model.train()
    grads = []
    for variant in ("joint", "split"):
        model.zero_grad(set_to_none=True)
        with autocast:
            if variant == "joint":
                joint_loss(model, batch, args)[0].backward()
            else:
                split_backward(model, batch, args, scale=1.0, backward=lambda t: t.backward())
        grads.append({n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None})
    joint, split = grads
    if not joint or joint.keys() != split.keys():
        raise RuntimeError("the two computations gave gradients for different parameters")
    scale = max(float(g.abs().max()) for g in joint.values())
    diff = max(float((split[n] - joint[n]).abs().max()) for n in joint)
    relative = diff / scale if scale else diff
    tolerance = GRAD_TOLERANCE[device]
    if not relative <= tolerance:
        raise RuntimeError(f"max |split - joint| / max |joint| = {relative:.3g} > {tolerance:g}")
    return {"parameters_with_grad": len(joint), "max_abs_diff": diff, "relative_diff": relative,
            "tolerance": tolerance, "dropout_disabled": dropouts, "candidates": int(batch["input_ids"].shape[0])}


def sample_vllm(run, cfg, base: str, device: str) -> dict:
    if device != "cuda":
        raise Skip("no CUDA GPU: vLLM needs one")
    if importlib.util.find_spec("vllm") is None:
        raise Skip("vllm does not import here (pip install -e '.[vllm]' or bring its wheel)")
    tokenizer = load_tokenizer(model_config(cfg, base))
    prompts = [format_prompt(tokenizer, record_prompt(r)) for r in load_records(run, "train")[:8]]
    scfg = SamplingConfig(num_samples=2, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    engine = vllm_sampler.EngineSettings(gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                                         max_model_len=cfg.vllm_max_model_len, base=cfg.vllm_base)
    stats: dict = {}
    texts = vllm_sampler.sample_completions(base, weights_of(run, 1), tokenizer, prompts, scfg, engine=engine,
                                            in_child=True, stats=stats, progress=False)
    if [len(t) for t in texts] != [2] * len(prompts):
        raise RuntimeError("vLLM returned the wrong number of completions")
    return {k: stats.get(k) for k in ("completions", "tokens", "seconds", "tokens_per_s", "vllm")}


def format_table(stages: list[dict]) -> str:
    rows = [[s["stage"], s["status"].upper(), "-" if s.get("seconds") is None else f"{s['seconds']:.1f}",
             "-" if s.get("peak_gpu_mib") is None else f"{s['peak_gpu_mib']:.0f}", s.get("note", "")]
            for s in stages]
    return md_table(["stage", "result", "seconds", "peak GPU MiB", "note"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m harness.commands.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=os.environ.get("RESULTS_DIR", "results"))
    parser.add_argument("--run", default=None, help="run folder name (default gpu-check-<time>)")
    parser.add_argument("--iteration-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.iteration_child:
            return iteration_child(Path(args.iteration_child))
        device = check_device(os.environ.get(ALLOW_CPU_ENV, "") in ("1", "true", "yes"))
        started = time.monotonic()
        path, stages = run_check(Path(args.results_dir), args.run, device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {"device": device, "seconds": round(time.monotonic() - started, 1),
              "passed": all(s["status"] != "fail" for s in stages), "stages": stages,
              "config": json.loads((path / "config.json").read_text())}
    (path / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(stages))
    print(f"\n{'all stages passed or skipped' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s "
          f"on {device}; report: {path / 'report.json'}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
