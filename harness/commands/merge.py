"""`python -m harness merge RUN...`: join the shards of one `SHARD=i/N` evaluation into one run folder.

The checks and the arithmetic live in `tasks.shards` (the same pass@k functions an unsharded run uses);
this module reads the shard folders and writes results.jsonl, metrics.json, problems.csv, junit.xml.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.commands.flags import Parser
from harness.runs.folder import run_folder, write_manifest
from tasks.evaluate import EvalOutcome
from tasks.reports import summary_table, write_outcome
from tasks.samples import read_samples
from tasks.shards import merge_metrics
from verilog_tools.errors import UserError


def _shard_folder(name: str, results_dir: str) -> Path:
    path = Path(name)
    if not path.is_dir() and (Path(results_dir) / name).is_dir():
        path = Path(results_dir) / name
    if not (path / "metrics.json").is_file() or not (path / "results.jsonl").is_file():
        raise UserError(f"{name}: not a finished eval run folder (no metrics.json/results.jsonl); "
                        f"give the folders that SHARD=i/N runs wrote")
    return path


def main_merge(argv: list[str]) -> int:
    parser = Parser(prog="python -m harness merge", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="the shard run folders (RUNS)")
    parser.add_argument("--run", default=None, help="name of the merged run folder; default merge-<timestamp> (RUN)")
    parser.add_argument("--results-dir", default="results", help="where run folders go (RESULTS_DIR)")
    args = parser.parse_args(argv)
    folders = [_shard_folder(name, args.results_dir) for name in args.runs]
    metrics = [json.loads((f / "metrics.json").read_text()) for f in folders]
    results = [read_samples(f / "results.jsonl") for f in folders]
    names = [str(f) for f in folders]
    rows, per_problem, merged = merge_metrics(metrics, results, names)
    with run_folder(args.results_dir, args.run, "merge") as run:
        write_manifest(run, {"runs": names}, data_hashes={merged["benchmark"]: merged["data_hash"]},
                       argv=["merge", *argv])
        run.mark_done("merge", write_outcome(EvalOutcome(rows, per_problem, merged), run.path))
    print(summary_table(merged))
    print(f"run folder: {run.path}", file=sys.stdout)
    return 0
