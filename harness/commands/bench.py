"""`python -m harness bench`: run the speed and memory benchmarks, print the table, keep the results.

Each benchmark times the project's way and the obvious baseline in the same run on the same inputs
(see BENCHMARKS.md). Results go into a new versioned run folder ``results/<run>/``: bench.json (every
figure, goal and note), bench.md (the printed tables) and manifest.json (argv, git commit, package and
simulator versions, and the machine). bench.json is rewritten after each benchmark, so an interrupted
run keeps what it measured (and its ``.incomplete`` marker). A benchmark that fails is reported as
failed and the others still run; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from harness.bench.common import BenchResult, Goal, machine_info, stopwatch
from harness.bench.report import format_tables
from harness.commands.flags import Parser
from harness.runs.folder import RunFolder, package_versions, run_folder, write_manifest
from verilog_tools.errors import UserError

# name -> module (each has TITLE, SCALES and run(work_dir, workers, **SCALES[scale]))
BENCHMARKS = {
    "eval_throughput": "harness.bench.eval_throughput",
    "scoring_throughput": "harness.bench.scoring_throughput",
    "equivalence_throughput": "harness.bench.equivalence_throughput",
    "ranking_memory": "harness.bench.ranking_memory",
    "sampling_throughput": "harness.bench.sampling_throughput",
    "end_to_end": "harness.bench.end_to_end",
}
SCALES = ("full", "small", "tiny")
FULL_BUDGET_SECONDS = 20 * 60


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="python -m harness bench", description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="run folder name under --results-dir (default bench-<timestamp>); "
                                      "an existing folder is never overwritten")
    parser.add_argument("--results-dir", default="results",
                        help="where run folders go")
    parser.add_argument("--only", help=f"comma-separated benchmarks to run (default all: {', '.join(BENCHMARKS)})")
    parser.add_argument("--scale", default="full", choices=SCALES,
                        help="full: the sizes in BENCHMARKS.md (under 20 min on 2 cores); small: minutes, "
                             "for development; tiny: seconds, for tests (figures meaningless)")
    parser.add_argument("--workers", type=int, default=0,
                        help="parallel simulator processes / torch threads (0 = all cores)")
    args = parser.parse_args(argv)
    if args.workers < 0:
        raise UserError(f"--workers must be >= 0 (0 = all cores), got {args.workers}")
    return args


def select(only: str | None) -> list[str]:
    """The benchmarks named by --only, in the canonical order; a one-line error for unknown names."""
    if not only:
        return list(BENCHMARKS)
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown or not wanted:
        raise UserError(f"unknown benchmark {', '.join(map(repr, unknown)) or repr(only)} in --only/ONLY; "
                        f"choose from: {', '.join(BENCHMARKS)}")
    return [name for name in BENCHMARKS if name in wanted]


def run_one(name: str, scale: str, workers: int, run: RunFolder) -> BenchResult:
    """One benchmark in a scratch folder; a failure becomes a result that says so."""
    module = importlib.import_module(BENCHMARKS[name])
    with stopwatch() as sw, tempfile.TemporaryDirectory(prefix=f"itertl-bench-{name}-") as work:
        try:
            result = module.run(Path(work), workers, **module.SCALES[scale])
        except Exception as exc:  # noqa: BLE001 - keep the others' figures; the log keeps the evidence
            with open(run.path / "bench-errors.log", "a", encoding="utf-8") as fh:
                fh.write(f"--- {name}\n{traceback.format_exc()}\n")
            result = BenchResult(name=name, scale=scale, skipped=f"FAILED: {type(exc).__name__}: {exc}"[:300])
    result.scale, result.seconds = scale, sw.seconds
    return result


def write_results(run: RunFolder, header: dict, results: list[BenchResult]) -> str:
    run.write_json("bench.json", {**header, "goals": [g.__dict__ for g in header.get("goals", [])],
                                  "benchmarks": [r.to_dict() for r in results]})
    table = format_tables(results, header)
    run.write_text("bench.md", table)
    return table


def main_bench(argv: list[str]) -> int:
    args = parse_args(argv)
    names = select(args.only)
    workers = args.workers or os.cpu_count() or 1
    with run_folder(args.results_dir, args.run, "bench") as run:
        config = {"only": names, "scale": args.scale, "workers": workers}
        write_manifest(run, config, argv=["bench", *argv])
        machine = machine_info()
        manifest = json.loads((run.path / "manifest.json").read_text())
        run.write_json("manifest.json", {**manifest, "machine": machine})
        git = manifest["git"] or {}
        header = {**config, "machine": machine, "commit": git.get("commit"), "dirty": git.get("dirty"),
                  "versions": {**manifest["packages"], **package_versions(["rouge_score"])},
                  "tools": manifest["tools"], "total_seconds": 0.0}
        results: list[BenchResult] = []
        for i, name in enumerate(names, 1):
            title = importlib.import_module(BENCHMARKS[name]).TITLE
            print(f"[{i}/{len(names)}] {name}: {title} ...", file=sys.stderr, flush=True)
            results.append(run_one(name, args.scale, workers, run))
            header["total_seconds"] = sum(r.seconds for r in results)
            print(f"[{i}/{len(names)}] {name}: {results[-1].skipped or 'done'} "
                  f"({results[-1].seconds:.0f} s)", file=sys.stderr, flush=True)
            write_results(run, header, results)
        if args.scale == "full" and len(names) == len(BENCHMARKS):
            total = header["total_seconds"]
            header["goals"] = [Goal(f"whole run under {FULL_BUDGET_SECONDS // 60} min", f"{total / 60:.1f} min",
                                    total < FULL_BUDGET_SECONDS)]
        table = write_results(run, header, results)
    print(table)
    print(f"results: {run.path}/bench.json")
    return 1 if any(r.skipped and r.skipped.startswith("FAILED") for r in results) else 0
