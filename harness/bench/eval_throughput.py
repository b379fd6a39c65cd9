"""Benchmark 1: VerilogEval-Human evaluation throughput, `tasks.evaluate.evaluate` against the obvious way.

Input: seeded mutants of the references (`tasks.mutants`: ``per_problem`` distinct designs per problem;
most fail, some pass, a few hang), the same for both sides.

Project: ``evaluate`` with ``workers`` threads (sandboxed iverilog + vvp, references simulated first,
identical designs once). Baseline, as VerilogEval v1 does it: one fresh Python process per sample that
runs iverilog then vvp through ``subprocess`` with a timeout, ``workers`` such processes at a time (the
same worker count, so the comparison is of the method, not of the parallelism). The physical floor is
the summed iverilog + vvp CPU time of an uncontained run divided by the workers: the project's run is
timed twice, in its containers (the default, the figure the goal is about) and with containment off
(`ITERTL_CONTAINMENT=none`), so the cost of the containers and of the policy checks is inside the ratio.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.bench.common import (
    BenchResult,
    Goal,
    Row,
    per_second,
    seeded_subset,
    stopwatch,
    times,
)

NAME = "eval_throughput"
TITLE = "VerilogEval-Human evaluation: samples/s"
BENCH_ID = "verilog-eval-v1-human"
# problems: first N problems (0 = all 156); baseline_samples: a seeded subset timed for the baseline
# (None = all), extrapolated per sample (the full baseline alone would take ~3.5 minutes on 2 cores: bench2).
SCALES = {
    "full": {"problems": 0, "per_problem": 20, "baseline_samples": 1040},
    "small": {"problems": 40, "per_problem": 2, "baseline_samples": None},
    "tiny": {"problems": 3, "per_problem": 2, "baseline_samples": None},
}
GOAL_SPEEDUP = 2.0
GOAL_FLOOR = 1.3

# The baseline's whole per-sample program: what VerilogEval v1's execution does, minus its bugs.
BASELINE_SCRIPT = r"""
import subprocess, sys
d, timeout, iverilog, vvp = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
flags = ["-Wall", "-Winfloop", "-Wno-timescale", "-g2012"]
try:
    c = subprocess.run([iverilog, *flags, "-s", "tb", "-o", "sim.vvp", "tb.sv", "design.sv"], cwd=d,
                       capture_output=True, text=True, timeout=timeout)
    if c.returncode != 0:
        print("compile_error")
    else:
        r = subprocess.run([vvp, "-n", "sim.vvp"], cwd=d, capture_output=True, text=True, timeout=timeout)
        print("pass" if "Mismatches: 0 in" in r.stdout else "fail")
except subprocess.TimeoutExpired:
    print("timeout")
"""


def baseline_one(problem, design: str, timeout: float, tools: tuple[str, str]) -> str:
    """Score one design the straightforward way; its verdict (pass, fail, compile_error, timeout)."""
    with tempfile.TemporaryDirectory(prefix="itertl-bench-") as d:
        Path(d, "tb.sv").write_text(problem.testbench, encoding="utf-8")
        Path(d, "design.sv").write_text(design, encoding="utf-8", errors="replace")
        try:
            out = subprocess.run([sys.executable, "-c", BASELINE_SCRIPT, d, str(timeout), *tools],
                                 capture_output=True, text=True, timeout=2 * timeout + 30,
                                 stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            return "timeout"
        return out.stdout.strip() or "error"


def run_baseline(problems, samples: list[dict], workers: int, timeout: float) -> Counter:
    """Every sample through `baseline_one`, ``workers`` at a time; the verdict counts."""
    from tqdm import tqdm

    from tasks.evaluate import design_for
    from verilog_tools.tools import find_tool

    by_id = {p.task_id: p for p in problems}
    tools = (find_tool("iverilog"), find_tool("vvp"))

    def one(sample):
        problem = by_id[sample["task_id"]]
        design = design_for(problem, sample["completion"])
        return "no_code" if design is None else baseline_one(problem, design, timeout, tools)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(tqdm(pool.map(one, samples), total=len(samples), desc="baseline: python+iverilog+vvp",
                             unit="sample", leave=False))
    return Counter(verdicts)


@contextlib.contextmanager
def _containment(mode: str):
    """Evaluate under another containment mode for a while (the environment variable the runner reads)."""
    from verilog_tools.container import ENV_VAR
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = mode
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old


def run(work_dir: Path, workers: int, problems: int, per_problem: int, baseline_samples: int | None,
        seed: int = 0, timeout: float = 60.0) -> BenchResult:
    from tasks.benchmarks import load_benchmark
    from tasks.evaluate import evaluate
    from tasks.mutants import mutant_samples
    from verilog_tools.icarus import SimLimits

    probs = load_benchmark(BENCH_ID)
    probs = probs[:problems] if problems else probs
    samples = mutant_samples(probs, per_problem, seed)
    limits = SimLimits(compile_wall_seconds=timeout, sim_wall_seconds=timeout, cpu_seconds=timeout)
    with stopwatch() as project:
        outcome = evaluate(probs, samples, workers=workers, limits=limits, progress=True, reference_cache=False)
    with _containment("none"), stopwatch() as bare:
        bare_outcome = evaluate(probs, samples, workers=workers, limits=limits, progress=True,
                                reference_cache=False)
    subset = seeded_subset(samples, baseline_samples, seed)
    with stopwatch() as base:
        verdicts = run_baseline(probs, subset, workers, timeout)
    project_rate = per_second(len(samples), project.seconds)
    base_rate = per_second(len(subset), base.seconds)
    cpu = bare_outcome.metrics["tool_cpu_seconds"]
    floor = cpu / workers
    floor_ratio = project.seconds / floor if floor > 0 else None
    bare_ratio = bare.seconds / floor if floor > 0 else None
    extrapolated = len(subset) < len(samples)
    note = (f"baseline timed on a seeded subset of {len(subset)} of {len(samples)} samples, extrapolated "
            f"per sample" if extrapolated else "")
    base_seconds = base.seconds * len(samples) / len(subset) if subset else None
    result = BenchResult(name=NAME, scale="", rows=[
        Row("samples/s", project_rate, base_rate, note=note),
        Row(f"wall s for {len(samples)} samples", project.seconds, base_seconds, higher_is_better=False,
            note="baseline extrapolated" if extrapolated else ""),
        Row("wall / (tool CPU / workers)", floor_ratio, None, higher_is_better=False,
            note=f"contained; floor = {cpu:.1f} s uncontained iverilog+vvp CPU / {workers} workers = {floor:.1f} s"),
        Row("wall / floor, containment off", bare_ratio, None, higher_is_better=False,
            note=f"the same samples with ITERTL_CONTAINMENT=none: {bare.seconds:.1f} s"),
    ])
    speedup = result.rows[0].ratio
    result.goals = [
        Goal(f">= {GOAL_SPEEDUP:g}x the baseline's samples/s", times(speedup),
             None if speedup is None else speedup >= GOAL_SPEEDUP),
        Goal(f"wall within {GOAL_FLOOR:g}x of the physical floor", times(floor_ratio),
             None if floor_ratio is None else floor_ratio <= GOAL_FLOOR),
    ]
    project_subset = Counter(r["status"] for r in seeded_subset(outcome.results, baseline_samples, seed))
    result.notes = [
        (f"{len(samples)} samples ({per_problem} per problem x {len(probs)} problems), {workers} workers "
        f"on both sides; the project also simulates the {len(probs)} references (counted in its time)"),
        ("baseline: one `python -c` process per sample running iverilog then vvp via subprocess "
        f"(timeout {timeout:g} s per step), {workers} at a time"),
    ] + ([note] if note else [])
    result.details = {
        "samples": len(samples), "problems": len(probs), "workers": workers, "baseline_samples": len(subset),
        "project_wall_seconds": project.seconds, "baseline_wall_seconds": base.seconds,
        "tool_cpu_seconds": cpu, "contained_tool_cpu_seconds": outcome.metrics["tool_cpu_seconds"],
        "uncontained_wall_seconds": bare.seconds,
        "same_verdicts_contained_and_not": [r["status"] for r in outcome.results]
        == [r["status"] for r in bare_outcome.results],
        "evaluate_metrics": {k: outcome.metrics[k] for k in
                                                      ("wall_seconds", "simulations", "wall_over_cpu_per_worker",
                                                       "status_counts", "pass_at_k")},
        # The two sides should agree on what passes (the baseline's verdict is forgeable, ours is not).
        "passes_on_baseline_subset": {"project": project_subset.get("pass", 0),
                                      "baseline": verdicts.get("pass", 0)},
        "baseline_verdicts": dict(verdicts),
    }
    return result
