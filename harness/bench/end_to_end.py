"""Benchmark 5: wall time of one `make train` iteration (tiny-cpu preset), stage by stage.

Runs the real loop (`harness.loop.loop.run_iterations`, ``iters=1``) in a scratch results folder and times
each stage function as the loop calls it: data preparation, the tiny model's build, the warm start
(iteration 0's supervised training), iteration 0's held-out evaluation, then iteration 1's sample,
score, train and eval. At full scale the preset runs unchanged; smaller scales cut the training set
(``limit``), the instructions per iteration and the held-out problems, and say so.

There is no baseline to race here: the point is where an iteration's time goes.
"""
from __future__ import annotations

from pathlib import Path

from harness.bench.common import BenchResult, Row, stopwatch, timed_calls
from harness.config import load_config
from harness.loop import dispatch, loop, stages
from harness.runs.folder import run_folder

NAME = "end_to_end"
TITLE = "one default `make train` iteration, by stage"
SCALES = {
    "full": {"overrides": {}},
    "small": {"overrides": {"limit": 96, "instructions_per_iter": 24, "eval_limit": 24}},
    "tiny": {"overrides": {"limit": 8, "instructions_per_iter": 2, "eval_limit": 2, "max_new_tokens": 16,
                           "warmup_epochs": 1, "tiny_hidden_size": 32, "tiny_layers": 1, "tiny_heads": 2,
                           "tiny_intermediate_size": 64}},
}
LOOP_STAGES = {"prepare_data_stage": "data", "base_model": "tiny model build", "warmup_stage": "warm start"}
ITERATION_STAGES = {"sample_stage": "sample", "score_stage": "score", "train_stage": "train", "eval_stage": "eval"}


def timed_run(cfg, results_dir: Path) -> tuple[dict[str, list[float]], float]:
    """Run the loop once; per-stage call durations (in call order) and the total."""
    import torch

    calls: dict[str, list[float]] = {}
    depth = [0]
    threads = torch.get_num_threads()  # the loop sets the preset's torch_threads process-wide
    try:
        with run_folder(results_dir, "end-to-end", "train") as run, \
                timed_calls(loop, list(LOOP_STAGES), calls, depth), \
                timed_calls(stages, [s for s in ITERATION_STAGES if s != "train_stage"], calls, depth), \
                timed_calls(dispatch, ["train"], calls, depth), stopwatch() as total:
            loop.run_iterations(run, cfg)
    finally:
        torch.set_num_threads(threads)
    if "train" in calls:  # the loop runs its train stage through dispatch.train
        calls["train_stage"] = calls.pop("train")
    return calls, total.seconds


def run(work_dir: Path, workers: int, overrides: dict) -> BenchResult:
    cfg = load_config("tiny-cpu", None, {"iters": 1, "workers": workers, **overrides})
    calls, total = timed_run(cfg, work_dir / "results")
    first = {label: calls.get(name, [0.0])[0] for name, label in LOOP_STAGES.items()}
    evals = calls.get("eval_stage", [])
    setup = {**first, "eval (iteration 0)": evals[0] if len(evals) > 1 else 0.0}
    iteration = {label: calls.get(name, [0.0])[-1] for name, label in ITERATION_STAGES.items()}
    result = BenchResult(name=NAME, scale="")
    result.rows = [Row(f"{label} s", seconds, None, higher_is_better=False) for label, seconds in setup.items()]
    result.rows += [Row(f"iteration 1: {label} s", seconds, None, higher_is_better=False)
                    for label, seconds in iteration.items()]
    one_iteration = sum(iteration.values())
    result.rows += [Row("iteration 1 total s", one_iteration, None, higher_is_better=False),
                    Row("whole run s (iters=1)", total, None, higher_is_better=False)]
    slowest = max(iteration, key=iteration.get)
    share = iteration[slowest] / one_iteration if one_iteration else 0.0
    result.notes = [f"slowest stage of the iteration: {slowest} ({iteration[slowest]:.1f} s, {share:.0%})",
                    f"warm start (iteration 0 training, once per run): {setup['warm start']:.1f} s",
                    ("after other benchmarks in the same process, the data and model-build stages find their "
                    "modules imported and the synthetic tasks generated (a real run pays a few seconds more)")]
    if overrides:
        result.notes.append("smaller than the preset: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    result.details = {"config": cfg.to_dict(), "calls": calls, "setup_seconds": setup,
                      "iteration_seconds": iteration, "slowest_stage": slowest, "total_seconds": total}
    return result
