"""The ITERTL loop: prepare data, warm start (iteration 0), then per iteration sample -> score -> train -> eval.

Run folder layout (every stage writes into ``<stage>.tmp`` or a temp file and is renamed into place
only when complete, then recorded in ``state.json``; a rerun skips recorded stages, so a crash or
Ctrl-C loses at most the stage that was running):

    data/                 train.jsonl, valid.jsonl, heldout.jsonl (synthetic), data_summary.json (data_seed)
    base-model/           the tiny model built for this run (preset tiny-cpu only)
    iter-00/model/        warm start: supervised training on the references of warmup_limit instructions
                          (all by default; skipped if warmup_epochs=0)
    iter-00/eval/         held-out samples.jsonl, results.jsonl, metrics.json, ...
    iter-NN/candidates.jsonl   {"id", "instruction", "samples": [k-1 texts]} from the sampling model
    iter-NN/sample_stats.json  the sampler's measured throughput (eval/ has one too; see harness.loop.compute)
    iter-NN/scores.jsonl       {"id", "instruction", "header", "candidates": [k scored]}: the reference is one
    iter-NN/score_stats.json   syntax-valid rate, multi-module rate, mean Rouge-L, histogram; diagnostics
                               (score buckets, pass rate, informative groups) and instruction counts
    iter-NN/model/        full weights, or a LoRA adapter on the base model
    iter-NN/train_log.json     loss terms and ranking accuracy per logging step, tokens and seconds, the
                               violated pairs of the whole stage, the learning rate of every step
    iter-NN/optimizer.pt  optimizer_schedule=continued: AdamW state and global step for iteration N+1
    logs/iter-NN-train.log     gpus > 1: the output of the `accelerate launch`ed train stage
    iter-NN/eval/         as iter-00
    summary.json, summary.md   the per-iteration table

Which model samples iteration N: ``mode=iterative`` the model of iteration N-1 (ITERTL);
``mode=static`` always iteration 0's model (RTLCoder's offline scheme at equal compute: the same
number of candidates and training steps, but the data never follows the model). Which weights
iteration N trains from: iteration N-1's, or iteration 0's with ``restart``. Which instructions
iteration N uses: ``iteration_subset`` (first those the warm start did not see). Its optimiser and
learning-rate schedule: its own (``optimizer_schedule=reset``) or iteration N-1's continued
(``continued``; harness.objective.schedule). The seeds: ``data_seed`` makes the data (prepare_data_stage), ``seed``
everything else (the tiny model, subsets, sampling, training order, evaluation samples).

The stages are harness.loop.stages (sample, score, eval) and harness.loop.dispatch (train, in this
process or under `accelerate launch`); the iteration folder's name and summary keys are
harness.runs.layout's, which the reports read too.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
from contextlib import contextmanager
from pathlib import Path

from harness.config import TrainConfig
from harness.loop import dispatch, stages
from harness.model.tiny_model import build_tiny_model
from harness.objective.schedule import STATE_FILE, StageSchedule, optimizer_steps
from harness.runs.folder import RunFolder, atomic_write_json
from harness.runs.layout import SCORE_BUCKETS, iter_dir, iteration_row
from tasks.jsonl import read_jsonl
from tasks.records import TrainingRecord
from verilog_tools.errors import UserError

log = logging.getLogger(__name__)


@contextmanager
def stage_dir(run: RunFolder, rel: str):
    """Yield a scratch folder for a stage whose output is the folder ``rel``; publish it atomically."""
    final = run.path / rel
    tmp = run.path / f"{rel}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted attempt
    tmp.mkdir(parents=True)
    yield tmp
    if final.exists():
        shutil.rmtree(final)  # only possible for a stage not recorded as done
    tmp.rename(final)


def load_records(run: RunFolder, split: str) -> list[TrainingRecord]:
    path = run.path / "data" / f"{split}.jsonl"
    return [TrainingRecord.from_dict(r) for r in read_jsonl(path)] if path.exists() else []


def warmup_records(records: list[TrainingRecord], cfg: TrainConfig) -> list[TrainingRecord]:
    """The instructions of the warm start: all, or a seeded subset of ``warmup_limit``; none without one."""
    if cfg.warmup_epochs <= 0:
        return []
    if not cfg.warmup_limit or cfg.warmup_limit >= len(records):
        return records
    rng = random.Random(f"warmup:{cfg.seed}")
    return sorted(rng.sample(records, cfg.warmup_limit), key=lambda r: r.id)


def iteration_subset(records: list[TrainingRecord], cfg: TrainConfig, it: int) -> list[TrainingRecord]:
    """The instructions used in iteration ``it``: all, or a seeded subset of ``instructions_per_iter``.

    The subset is drawn first from the instructions the warm start did not see (``warmup_records``) and
    only the rest, when there are too few of them, from those it saw; each iteration draws anew with its
    own seed, so iterations may share instructions. With every instruction in the warm start this is the
    plain seeded subset.
    """
    n = cfg.instructions_per_iter
    if not n or n >= len(records):
        return records
    seen = {r.id for r in warmup_records(records, cfg)}
    fresh = [r for r in records if r.id not in seen]
    old = [r for r in records if r.id in seen]
    rng = random.Random(f"{cfg.seed}:{it}")
    take = rng.sample(fresh, min(n, len(fresh)))
    take += rng.sample(old, n - len(take))
    return sorted(take, key=lambda r: r.id)


def instruction_counts(records: list[TrainingRecord], subset: list[TrainingRecord], cfg: TrainConfig) -> dict:
    """Where an iteration's instructions came from (recorded in its score_stats.json)."""
    seen = {r.id for r in warmup_records(records, cfg)}
    fresh = sum(r.id not in seen for r in subset)
    return {"used": len(subset), "fresh": fresh, "seen_by_warm_start": len(subset) - fresh,
            "fresh_available": len(records) - len(seen)}


def stage_schedule(run: RunFolder, cfg: TrainConfig, it: int):
    """Iteration ``it``'s place in the learning-rate schedule (harness.objective.schedule)."""
    if cfg.optimizer_schedule == "reset":
        return StageSchedule()
    records = load_records(run, "train")
    per_device, accumulation = cfg.process_batch(cfg.gpus)
    total = sum(optimizer_steps(len(iteration_subset(records, cfg, i)), per_device, accumulation, cfg.gpus,
                                cfg.epochs_per_iter) for i in range(1, cfg.iters + 1))
    if it == 1:
        return StageSchedule(total_steps=total, save=True)
    prev = run.path / iter_dir(it - 1)
    if not (prev / STATE_FILE).is_file():
        raise UserError(f"optimizer_schedule=continued: {prev / STATE_FILE} is missing, so iteration {it} "
                        f"cannot continue iteration {it - 1}'s optimiser; start a new run")
    start = json.loads((prev / "train_log.json").read_text())["schedule"]["end_step"]
    return StageSchedule(start_step=start, total_steps=total, state_in=str(prev / STATE_FILE), save=True)


def sampling_source(cfg: TrainConfig, it: int) -> int:
    """The iteration whose model samples the candidates of iteration ``it``."""
    return 0 if cfg.mode == "static" else it - 1


def training_source(cfg: TrainConfig, it: int) -> int:
    """The iteration whose weights iteration ``it`` starts training from."""
    return 0 if cfg.restart else it - 1


def reference_groups(records: list[TrainingRecord], prompt) -> list[dict]:
    """Warm-start data: each instruction with its reference as the only candidate (CE only).

    ``prompt(record)`` is the text the model is asked with, the same at sampling and evaluation time.
    """
    return [{"id": r.id, "instruction": prompt(r), "header": r.header,
             "candidates": [{"text": r.reference, "source": "reference", "score": 1.0}]} for r in records]


def write_summary(run: RunFolder, cfg: TrainConfig) -> dict:
    """Collect per-iteration metrics (`harness.runs.layout.iteration_row`, the rows every report reads)
    into summary.json and a Markdown table (summary.md)."""
    rows = [iteration_row(run.path / iter_dir(it), it) for it in range(cfg.iters + 1)]
    summary = {"config": cfg.to_dict(), "iterations": rows}
    atomic_write_json(run.path / "summary.json", summary)
    run.write_text("summary.md", format_table(rows) + "\n")
    return summary


def format_table(rows: list[dict]) -> str:
    cols = ["iteration", "pass@1", "eval_syntax_valid", "cand_syntax_valid_rate", "cand_pass_rate",
            "cand_multi_module_rate", "cand_mean_rouge_l", "cand_score_buckets", "informative_share",
            "fresh_instructions", "ce_loss", "rank_loss", "rank_accuracy", "violated_pairs", "lr_sum"]
    cols = [c for c in cols if any(c in r for r in rows)]

    def cell(v):
        if isinstance(v, dict):  # score buckets
            return " ".join(f"{b}:{v.get(b, 0)}" for b in SCORE_BUCKETS)
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def prepare_data_stage(run: RunFolder, cfg: TrainConfig) -> None:
    from tasks.prepare import DataConfig, prepare_data

    if run.stage_done("data"):
        return
    dcfg = DataConfig(data=cfg.data, filter=cfg.filter, seed=cfg.data_seed, limit=cfg.limit or None,
                      workers=max(1, cfg.workers or os.cpu_count() or 1))
    with stage_dir(run, "data") as tmp:
        prepared = prepare_data(dcfg, tmp)
    run.mark_done("data", ["data/train.jsonl", "data/data_summary.json"])
    log.info("data: %s", prepared.summary.get("rows_out"))


def base_model(run: RunFolder, cfg: TrainConfig) -> str:
    """The model every iteration starts from: the run's own tiny model, or ``cfg.model``."""
    if cfg.model != "tiny":
        return cfg.model
    if not run.stage_done("base-model"):
        train = load_records(run, "train")
        corpus = [t for r in train for t in (r.instruction, r.reference)]
        with stage_dir(run, "base-model") as tmp:
            build_tiny_model(tmp / "model", corpus, seed=cfg.seed, hidden_size=cfg.tiny_hidden_size,
                             num_layers=cfg.tiny_layers, num_heads=cfg.tiny_heads,
                             intermediate_size=cfg.tiny_intermediate_size)
        run.mark_done("base-model", ["base-model/model/config.json"])
    return str(run.path / "base-model" / "model")


def weights_of(run: RunFolder, it: int) -> str | None:
    """Weights saved by iteration ``it`` (full model or adapter), None when it trained nothing."""
    path = run.path / iter_dir(it) / "model"
    return str(path) if path.exists() else None


def train_log_path(run: RunFolder, it: int) -> Path:
    """Where the output of a multi-GPU train stage goes (gpus > 1; one process prints to the terminal)."""
    return run.path / "logs" / f"{iter_dir(it)}-train.log"


def warmup_stage(run: RunFolder, cfg: TrainConfig, base: str) -> None:
    """Iteration 0: supervised training on the references (also the non-iterative baseline's start)."""
    stage = f"{iter_dir(0)}/train"
    if run.stage_done(stage) or cfg.warmup_epochs <= 0:
        return
    groups = reference_groups(warmup_records(load_records(run, "train"), cfg),
                              lambda rec: stages.record_prompt(rec, cfg.train_prompt_style))
    with stage_dir(run, iter_dir(0)) as tmp:
        dispatch.train(cfg, base, None, groups, epochs=cfg.warmup_epochs,
                       learning_rate=cfg.warmup_learning_rate, seed=cfg.seed, out=tmp,
                       log=train_log_path(run, 0))
    run.mark_done(stage, [f"{iter_dir(0)}/model", f"{iter_dir(0)}/train_log.json"])


def eval_stage(run: RunFolder, cfg: TrainConfig, base: str, it: int) -> None:
    stage = f"{iter_dir(it)}/eval"
    if run.stage_done(stage) or not cfg.eval_bench:
        return
    problems = stages.eval_problems(cfg, load_records(run, "heldout"))
    (run.path / iter_dir(it)).mkdir(exist_ok=True)
    with stage_dir(run, f"{iter_dir(it)}/eval") as tmp:
        # The same seed every iteration: iterations are compared on common random numbers.
        stages.eval_stage(cfg, base, weights_of(run, it), problems, seed=cfg.seed + 10_000, out=tmp)
    run.mark_done(stage, [f"{stage}/metrics.json", f"{stage}/results.jsonl"])


def iteration(run: RunFolder, cfg: TrainConfig, base: str, it: int) -> None:
    """Sample -> score -> train for iteration ``it`` (each stage skipped when already done)."""
    d = iter_dir(it)
    (run.path / d).mkdir(exist_ok=True)
    train = load_records(run, "train")
    records = iteration_subset(train, cfg, it)
    if not run.stage_done(f"{d}/sample"):
        stages.sample_stage(cfg, base, weights_of(run, sampling_source(cfg, it)), records,
                            seed=cfg.seed * 1000 + it, out=run.path / d / "candidates.jsonl")
        run.mark_done(f"{d}/sample", [f"{d}/candidates.jsonl", f"{d}/sample_stats.json"])
    if not run.stage_done(f"{d}/score"):
        candidates = read_jsonl(run.path / d / "candidates.jsonl")
        stages.score_stage(cfg, records, candidates, run.path / d / "scores.jsonl",
                           run.path / d / "score_stats.json", instructions=instruction_counts(train, records, cfg))
        run.mark_done(f"{d}/score", [f"{d}/scores.jsonl", f"{d}/score_stats.json"])
    if not run.stage_done(f"{d}/train"):
        train_iteration(run, cfg, base, it)


def train_iteration(run: RunFolder, cfg: TrainConfig, base: str, it: int) -> None:
    """The train stage of iteration ``it``: model/, train_log.json (and optimizer.pt when continued)."""
    d = iter_dir(it)
    groups = read_jsonl(run.path / d / "scores.jsonl")
    schedule = stage_schedule(run, cfg, it)
    with stage_dir(run, f"{d}/train.out") as tmp:
        dispatch.train(cfg, base, weights_of(run, training_source(cfg, it)), groups,
                       epochs=cfg.epochs_per_iter, learning_rate=cfg.learning_rate,
                       seed=cfg.seed + it, out=tmp, log=train_log_path(run, it), schedule=schedule)
    out = run.path / d / "train.out"
    names = ["model", "train_log.json"] + ([STATE_FILE] if schedule.save else [])
    for name in names:
        target = run.path / d / name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        (out / name).rename(target)
    shutil.rmtree(out)
    run.mark_done(f"{d}/train", [f"{d}/{name}" for name in names])


def run_iterations(run: RunFolder, cfg: TrainConfig) -> dict:
    """Everything after the run folder exists; each finished stage is skipped on a rerun."""
    if cfg.torch_threads:
        import torch
        torch.set_num_threads(cfg.torch_threads)
    prepare_data_stage(run, cfg)
    base = base_model(run, cfg)
    warmup_stage(run, cfg, base)
    eval_stage(run, cfg, base, 0)
    write_summary(run, cfg)
    for it in range(1, cfg.iters + 1):
        iteration(run, cfg, base, it)
        if it in cfg.evaluated_iterations():
            eval_stage(run, cfg, base, it)
        write_summary(run, cfg)
        log.info("iteration %d done", it)
    return write_summary(run, cfg)

