"""`python -m harness data`: prepare a training data set into a versioned run folder or a directory.

``make data DATA=synthetic|resyn27k|path FILTER=0|1 SCORE=...`` forwards here. With ``--score
equivalence`` every train/valid reference also gets the differential testbench's self-check
(`tasks.equivalence`); the ones it cannot use are listed with their reason in
``equivalence_excluded.json`` and counted in the printed summary (training leaves their candidates
unscored). Without ``--out`` the files go
to a new run folder (``--run NAME``, default ``data-<time>``) under ``--results-dir``, with a
manifest (config, git commit, tool versions, data hashes); an existing folder is refused.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from harness.commands.flags import Parser, add_config_flags, given
from harness.runs.folder import run_folder, write_manifest
from tasks.prepare import DataConfig, PreparedData, prepare_data

RESULTS_ROOT = "results"


def build_parser() -> tuple[Parser, list[str]]:
    """The parser and the DataConfig fields it carries (every one a flag, `harness.commands.flags`)."""
    parser = Parser(prog="python -m harness data", description=__doc__.splitlines()[0])
    names = add_config_flags(parser, DataConfig)
    parser.add_argument("--score", default="paper", choices=("paper", "functional", "equivalence"),
                        help="the training score the data is for; equivalence also self-checks every reference")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", help="write into this directory (created; files in it are replaced)")
    where.add_argument("--run", help="name of a new run folder; default data-<timestamp>")
    parser.add_argument("--results-dir", default=None, help=f"where run folders go (default {RESULTS_ROOT})")
    return parser, names


def main_data(argv: list[str]) -> int:
    parser, names = build_parser()
    args = parser.parse_args(argv)
    cfg = DataConfig(**given(args, names))
    started = time.monotonic()
    if args.out:
        prepared = prepare_data(cfg, Path(args.out))
    else:
        prepared = _prepare_in_run_folder(cfg, args.run, args.results_dir or RESULTS_ROOT, argv)
    if args.score == "equivalence":
        prepared.summary["equivalence_excluded"] = equivalence_precheck(prepared, args.workers)
    print(format_summary(prepared, time.monotonic() - started))
    return 0


def equivalence_precheck(prepared: PreparedData, workers: int) -> dict[str, int]:
    """Self-check each train/valid reference in the differential testbench; write the exclusions with
    their reasons to equivalence_excluded.json beside the data; return the count per reason."""
    import json
    from collections import Counter

    from tasks.equivalence import check_groups
    from tasks.jsonl import read_jsonl
    from tasks.records import TrainingRecord
    from verilog_tools.text import module_names

    records = [TrainingRecord.from_dict(row) for name in ("train", "valid")
               if name in prepared.files for row in read_jsonl(prepared.files[name])]
    items = [(r.reference, [], r.dut_module or next(iter(module_names(r.header or "")), None)) for r in records]
    results = check_groups(items, workers=workers)
    excluded = {r.id: res.excluded for r, res in zip(records, results) if res.excluded}
    (prepared.out_dir / "equivalence_excluded.json").write_text(json.dumps(excluded, indent=1, sort_keys=True) + "\n")
    return dict(Counter(excluded.values()).most_common())


def _prepare_in_run_folder(cfg: DataConfig, name: str | None, root: str, argv: list[str]) -> PreparedData:
    with run_folder(root, name, "data") as run:
        prepared = prepare_data(cfg, run.path)
        write_manifest(run, dataclasses.asdict(cfg), prepared.hashes, {"split": cfg.seed}, ["data", *argv])
        run.mark_done("data", sorted(path.name for path in prepared.files.values()))
    return prepared


def format_summary(prepared: PreparedData, seconds: float) -> str:
    """A plain table: rows in, rows dropped per rule, rows out per split, files and hashes."""
    summary = prepared.summary
    lines = [f"data: {summary['data']}" + (f"  (limit {summary['limit']})" if summary.get("limit") else ""),
             f"  {'rows in':<32}{summary['rows_in']:>8}"]
    for rule, count in summary["dropped"].items():
        lines.append(f"  {'dropped: ' + rule:<32}{count:>8}")
    for split, count in summary["rows_out"].items():
        lines.append(f"  {'rows out: ' + split:<32}{count:>8}")
    decontam = summary.get("decontamination", {})
    lines.append(f"  decontamination: {decontam.get('status')}"
                 + (f" against {', '.join(decontam['benchmarks'])}" if decontam.get("benchmarks") else ""))
    for name, path in prepared.files.items():
        digest = prepared.hashes.get(name)
        lines.append(f"  {path}" + (f"  sha256 {digest}" if digest else ""))
    for reason, count in summary.get("equivalence_excluded", {}).items():
        lines.append(f"  {'equivalence excluded: ' + reason:<32}{count:>8}")
    lines.append(f"  took {seconds:.1f} s")
    return "\n".join(lines)
