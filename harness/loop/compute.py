"""DRY_RUN=1's plan: the work of every iteration, counted from the config, and what it costs in GPU hours.

Counts come from the config: exact (instructions, candidates, training sequences) or upper bounds where
the model decides (generated tokens <= max_new_tokens each; simulations, which identical designs share).
Hours need four figures: the sampler's generated tokens/s, the trainer's tokens/s, and the mean prompt
and completion lengths. They are measured in an earlier run folder when ``measured_from`` names one (its
iter-NN/sample_stats.json and train_log.json), else taken from the ASSUMED tables below, each with its
source. Every printed figure says which it is. Rates are per GPU; several GPUs (gpus, or
tensor_parallel_size for vLLM) are assumed to scale linearly, so they shorten the wall time and leave
the GPU hours unchanged.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.config import GPU_TYPES, TrainConfig
from harness.loop import launch
from tasks.jsonl import read_lines
from verilog_tools.errors import UserError

_SEVEN_B = "a ~7B model (deepseek-coder-6.7b)"
_NOT_MEASURED = "an order-of-magnitude assumption for " + _SEVEN_B + ", not measured here"
_TINY_RUN = ("from results/lr1e-4 (tiny-cpu preset, 2-core CPU shared with other jobs): stage times and "
             "token counts of iterations 1-2")
# Generated tokens/s per GPU, whole stage batched: (gpu_type, sampler) -> (value, source).
ASSUMED_SAMPLE_TPS = {
    ("h100", "vllm"): (5000.0, "vLLM, bf16 weights + LoRA; " + _NOT_MEASURED),
    ("a100", "vllm"): (2500.0, "vLLM, bf16 weights + LoRA; " + _NOT_MEASURED),
    ("l4", "vllm"): (600.0, "vLLM, bf16 weights + LoRA; " + _NOT_MEASURED),
    ("h100", "hf"): (400.0, "transformers generate() on the 4-bit model, batch 32; " + _NOT_MEASURED),
    ("a100", "hf"): (250.0, "transformers generate() on the 4-bit model, batch 32; " + _NOT_MEASURED),
    ("l4", "hf"): (80.0, "transformers generate() on the 4-bit model, batch 32; " + _NOT_MEASURED),
    ("cpu", "hf"): (800.0, "the tiny model; 20,664 tokens in 25 s " + _TINY_RUN),
}
# Trained tokens/s per GPU (one forward + backward; split_gradients adds SPLIT_FACTOR for its no-grad pass).
ASSUMED_TRAIN_TPS = {
    "h100": (3000.0, "QLoRA (NF4 + LoRA r=16), batch 1; " + _NOT_MEASURED),
    "a100": (1800.0, "QLoRA (NF4 + LoRA r=16), batch 1; " + _NOT_MEASURED),
    "l4": (400.0, "QLoRA (NF4 + LoRA r=16), batch 1; " + _NOT_MEASURED),
    "cpu": (3000.0, "the tiny model, full fine-tuning; 82,604 tokens in 27 s " + _TINY_RUN),
}
SPLIT_FACTOR = 4 / 3  # assumption: a no-grad forward costs about a third of a forward + backward
# Mean lengths in tokens: tiny model (tokenizer of its own) / any other model.
ASSUMED_COMPLETION = {"tiny": (72.0, "mean of 288 sampled completions " + _TINY_RUN),
                      "other": (300.0, "a few hundred tokens per Verilog module; not measured here")}
ASSUMED_PROMPT = {"tiny": (141.0, "mean prompt " + _TINY_RUN),
                  "other": (250.0, ("rtlcoder-small instructions have a median of 686 characters (about "
                                    "200 tokens at 3.5 characters each) plus the chat template; not measured"))}
EVAL_PROBLEMS = {"verilog-eval-v1-human": 156, "verilog-eval-v1-machine": 143,
                 "verilog-eval-v2-spec-to-rtl": 156, "verilog-eval-v2-code-complete": 156}
RESYN27K_ROWS = 27000  # the paper's count of Resyn27k instructions (before the filter)


@dataclass(frozen=True)
class Figure:
    value: float
    source: str
    measured: bool = False

    def label(self) -> str:
        return f"[{'measured' if self.measured else 'assumed'}: {self.source}]"


@dataclass(frozen=True)
class Rates:
    sample_tps: Figure
    train_tps: Figure
    completion_tokens: Figure
    prompt_tokens: Figure


def assumed_rates(cfg: TrainConfig) -> Rates:
    if (cfg.gpu_type, cfg.sampler) not in ASSUMED_SAMPLE_TPS:
        raise UserError(f"no {cfg.sampler} sampling rate for gpu_type={cfg.gpu_type} (vLLM needs a CUDA GPU): "
                        f"choose gpu_type from {', '.join(g for g in GPU_TYPES if g != 'cpu')}")
    size = "tiny" if cfg.model == "tiny" else "other"
    return Rates(Figure(*ASSUMED_SAMPLE_TPS[cfg.gpu_type, cfg.sampler]), Figure(*ASSUMED_TRAIN_TPS[cfg.gpu_type]),
                 Figure(*ASSUMED_COMPLETION[size]), Figure(*ASSUMED_PROMPT[size]))


def measured_rates(folder: str, cfg: TrainConfig, assumed: Rates) -> Rates:
    """``assumed`` with every figure that run folder ``folder`` measured replaced by the measurement."""
    path = Path(folder)
    if not (path / "state.json").is_file():
        raise UserError(f"measured_from={folder} is not a run folder (no state.json); give a train run's folder")
    samples = [json.loads(p.read_text()) for p in sorted(path.glob("iter-*/sample_stats.json"))]
    trains = [t for t in (json.loads(p.read_text()) for p in sorted(path.glob("iter-*/train_log.json")))
              if t.get("seconds") and t.get("tokens")]
    if not samples and not trains:
        raise UserError(f"measured_from={folder} holds no sample_stats.json or timed train_log.json (runs made "
                        "before they were recorded have none): measure with a short run, e.g. ITERS=1 LIMIT=64")
    where = f"in {folder}"
    sample_tps, completion, prompt = assumed.sample_tps, assumed.completion_tokens, assumed.prompt_tokens
    if samples:
        done = sum(s["completions"] for s in samples)
        completion = Figure(sum(s["tokens"] for s in samples) / done, f"{where}, {done} completions", True)
        if all("prompts" in s for s in samples):
            prompts = sum(s["prompts"] for s in samples)
            prompt = Figure(sum(s["prompt_tokens"] for s in samples) / prompts, f"{where}, {prompts} prompts", True)
        same = [s for s in samples if s.get("sampler") == cfg.sampler and s.get("seconds")]
        if same:
            devices = sorted({s.get("device", "?") for s in same})
            sample_tps = Figure(sum(s["tokens"] for s in same) / sum(s["seconds"] for s in same),
                                f"{where}, sampler {cfg.sampler} on {', '.join(devices)}", True)
    train_tps = assumed.train_tps
    if trains:
        gpu_seconds = sum(t["seconds"] * t.get("processes", 1) for t in trains)
        devices = sorted({t.get("device", "?") for t in trains})
        train_tps = Figure(sum(t["tokens"] for t in trains) / gpu_seconds,
                           f"{where}, {len(trains)} train stages on {', '.join(devices)}", True)
    return Rates(sample_tps, train_tps, completion, prompt)


def rates_for(cfg: TrainConfig) -> Rates:
    assumed = assumed_rates(cfg)
    return measured_rates(cfg.measured_from, cfg, assumed) if cfg.measured_from else assumed


def training_instructions(cfg: TrainConfig) -> tuple[int, str]:
    """Training instructions of the run (before instructions_per_iter) and how the count was found."""
    from tasks.prepare import DataConfig

    if cfg.data == "synthetic":
        d = DataConfig()
        n, how = round(d.synthetic_train * (1 - d.valid_fraction)), "synthetic tasks less the validation split"
    elif cfg.data == "resyn27k":
        n, how = RESYN27K_ROWS, "Resyn27k's size in the paper, before the filter"
    else:
        path = Path(cfg.data)
        if not path.is_file():
            raise UserError(f"data={cfg.data} is not a file; DRY_RUN counts its rows: give a JSONL file")
        n = sum(1 for _, raw in read_lines(path, "data") if raw.strip())
        how = f"rows of {path.name}, before the filter"
    if cfg.limit:
        n, how = min(n, cfg.limit), f"{how}, limit {cfg.limit}"
    return n, how


def eval_problems(cfg: TrainConfig) -> int:
    from tasks.prepare import DataConfig

    if not cfg.eval_bench:
        return 0
    n = DataConfig().synthetic_heldout if cfg.eval_bench == "synthetic" else EVAL_PROBLEMS.get(cfg.eval_bench, 0)
    return min(n, cfg.eval_limit) if cfg.eval_limit else n


def stage_costs(cfg: TrainConfig, rates: Rates, instructions: int, *, warm_start: bool = False) -> dict:
    """Counts and GPU seconds of one iteration (or of the warm start: references only, no sampling)."""
    k = cfg.k
    per_completion = min(rates.completion_tokens.value, cfg.max_new_tokens)
    length = rates.prompt_tokens.value + per_completion
    sampled = 0 if warm_start else instructions * (k - 1)
    epochs = cfg.warmup_epochs if warm_start else cfg.epochs_per_iter
    sequences = instructions * (1 if warm_start else k)
    problems = eval_problems(cfg)
    greedy_once = cfg.eval_temperature == 0 and cfg.sampler == "vllm"  # vLLM asks once for identical answers
    eval_completions = problems * (1 if greedy_once else cfg.eval_n)
    split = cfg.split_gradients and not warm_start
    c = {"instructions": instructions, "sampled": sampled,
         "gen_tokens_max": sampled * cfg.max_new_tokens, "gen_tokens": sampled * per_completion,
         "syntax_checks": sampled, "testbench_sims": sampled if cfg.score == "functional" else 0,
         "train_sequences": sequences * epochs,
         "train_tokens": sequences * epochs * length,
         "train_tokens_max": sequences * epochs * (rates.prompt_tokens.value + cfg.max_new_tokens),
         "eval_problems": problems, "eval_completions": eval_completions,
         "eval_tokens": eval_completions * per_completion, "eval_sims": problems * cfg.eval_n}
    c["sample_s"] = c["gen_tokens"] / rates.sample_tps.value
    c["train_s"] = c["train_tokens"] * (SPLIT_FACTOR if split else 1) / rates.train_tps.value
    c["eval_s"] = c["eval_tokens"] / rates.sample_tps.value
    c["gpu_h"] = (c["sample_s"] + c["train_s"] + c["eval_s"]) / 3600
    sampler_gpus = cfg.tensor_parallel_size if cfg.sampler == "vllm" else 1
    c["wall_h"] = ((c["sample_s"] + c["eval_s"]) / sampler_gpus + c["train_s"] / cfg.gpus) / 3600
    return c


def estimate(cfg: TrainConfig) -> dict:
    """The numbers describe_plan prints: rates, per-iteration and warm-start costs, totals."""
    rates = rates_for(cfg)
    total, how = training_instructions(cfg)
    per_iter = min(cfg.instructions_per_iter or total, total)
    iteration = stage_costs(cfg, rates, per_iter)
    warm_instructions = min(cfg.warmup_limit or total, total)
    warm = stage_costs(cfg, rates, warm_instructions, warm_start=True) if cfg.warmup_epochs > 0 else None
    # Iteration 0 is the warm start and its eval, or only the base model's eval. The iterations after it
    # cost their sampling and training; the held-out eval only where eval_every evaluates.
    first = warm["gpu_h"] if warm else iteration["eval_s"] / 3600
    first_wall = warm["wall_h"] if warm else first
    evals = sum(1 for it in cfg.evaluated_iterations() if it > 0)
    eval_h = iteration["eval_s"] / 3600
    eval_wall_h = eval_h / (cfg.tensor_parallel_size if cfg.sampler == "vllm" else 1)
    return {"rates": rates, "training_instructions": total, "instructions_note": how, "iteration": iteration,
            "warm_start": warm, "evaluated_iterations": cfg.evaluated_iterations(),
            "total_gpu_h": first + cfg.iters * (iteration["gpu_h"] - eval_h) + evals * eval_h,
            "total_wall_h": first_wall + cfg.iters * (iteration["wall_h"] - eval_wall_h) + evals * eval_wall_h}


def describe_plan(cfg: TrainConfig, run_path: str = "results/<RUN>") -> str:
    """DRY_RUN=1: the resolved config, the work per iteration, its GPU hours, and the multi-GPU command."""
    est = estimate(cfg)
    hours = "CPU hours" if cfg.gpu_type == "cpu" else f"GPU hours ({cfg.gpu_type})"
    lines = ["resolved config:"] + [f"  {k}: {v}" for k, v in cfg.to_dict().items()]
    lines += _figure_lines(cfg, est["rates"]) + _iteration_lines(cfg, est, hours)
    warm = est["warm_start"]
    if warm:
        lines.append(f"warm start (iteration 0): {warm['train_sequences']:,.0f} reference sequences "
                     f"({warm['instructions']} x {cfg.warmup_epochs} epochs), {warm['gpu_h']:.2f} {hours} "
                     "with its eval")
    lines.append(f"total (iteration 0 + {cfg.iters} iterations): {est['total_gpu_h']:.1f} {hours}, wall "
                 f"{est['total_wall_h']:.1f} h (training on {cfg.gpus} GPU(s)); model loading and simulator "
                 "CPU time not included")
    if cfg.gpus > 1:
        scratch = Path(run_path).resolve() / "iter-01" / "train.out.tmp"  # loop.iteration's train scratch
        lines.append(f"train stage command ({cfg.gpus} processes; iteration 1, the others alike):")
        lines.append("  " + shlex.join(launch.accelerate_command(cfg, scratch / launch.JOB_FILE)))
    return "\n".join(lines)


def _figure_lines(cfg: TrainConfig, r: Rates) -> list[str]:
    lines = ["figures (measured in a run folder, or assumed: see harness/loop/compute.py):",
             f"  sampling: {r.sample_tps.value:,.0f} generated tokens/s per GPU {r.sample_tps.label()}",
             f"  training: {r.train_tps.value:,.0f} tokens/s per GPU {r.train_tps.label()}",
             f"  completion: {r.completion_tokens.value:,.0f} tokens on average {r.completion_tokens.label()}",
             f"  prompt: {r.prompt_tokens.value:,.0f} tokens on average {r.prompt_tokens.label()}"]
    if not r.sample_tps.measured and (cfg.model == "tiny") != (cfg.gpu_type == "cpu"):
        meant = "the tiny model" if cfg.gpu_type == "cpu" else _SEVEN_B
        lines.append(f"  note: the assumed {cfg.gpu_type} rates are for {meant}, not model={cfg.model}; "
                     "MEASURED_FROM=<run folder> gives real ones")
    return lines


def _iteration_lines(cfg: TrainConfig, est: dict, hours: str) -> list[str]:
    it = est["iteration"]
    testbench = f" + <= {it['testbench_sims']} testbench simulations" if it["testbench_sims"] else ""
    return [
        f"per iteration (1..{cfg.iters}):",
        f"  instructions: {it['instructions']} (of {est['training_instructions']}: {est['instructions_note']})",
        f"  sampled candidates: {it['sampled']} (k-1 = {cfg.k - 1} each)",
        (f"  generated tokens: <= {it['gen_tokens_max']:,} (max_new_tokens={cfg.max_new_tokens}); "
         f"expected {it['gen_tokens']:,.0f}"),
        (f"  simulator calls: <= {it['syntax_checks']} syntax checks (iverilog -t null){testbench}; held-out "
         f"eval: <= {it['eval_sims']} simulations ({it['eval_problems']} problems x n={cfg.eval_n})"),
        (f"  training sequences: {it['train_sequences']:,.0f} ({it['instructions']} x k={cfg.k} x "
         f"{cfg.epochs_per_iter} epoch(s)); tokens: expected {it['train_tokens']:,.0f}, "
         f"<= {it['train_tokens_max']:,.0f}"),
        (f"  held-out eval: {cfg.eval_bench or 'none'}, {it['eval_completions']} completions, "
         f"expected {it['eval_tokens']:,.0f} tokens (after iterations "
         f"{', '.join(map(str, est['evaluated_iterations']))}; the total counts those)"),
        (f"  time: sampling {it['sample_s'] / 3600:.2f} h + training {it['train_s'] / 3600:.2f} h + eval "
         f"{it['eval_s'] / 3600:.2f} h = {it['gpu_h']:.2f} {hours}; wall {it['wall_h']:.2f} h"),
    ]
