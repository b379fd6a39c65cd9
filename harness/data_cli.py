"""`python -m harness data`: prepare a training data set into a versioned run folder or a directory.

``make data DATA=synthetic|resyn27k|path FILTER=0|1`` forwards here. Without ``--out`` the files go
to a new run folder (``--run NAME``, default ``data-<time>``) under ``--results-dir``, with a
manifest (config, git commit, tool versions, data hashes); an existing folder is refused.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from tasks.prepare import DataConfig, PreparedData, prepare_data

RESULTS_ROOT = "results"


def _flag(value: str) -> bool:
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0 or 1, got {value!r}")


def _help(name: str) -> str:
    return next(f.metadata["help"] for f in dataclasses.fields(DataConfig) if f.name == name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness data", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic", help=_help("data"))
    parser.add_argument("--filter", type=_flag, default=True, metavar="0|1", help=_help("filter"))
    parser.add_argument("--syntax-filter", type=_flag, default=True, metavar="0|1", help=_help("syntax_filter"))
    parser.add_argument("--decontaminate", type=_flag, default=True, metavar="0|1", help=_help("decontaminate"))
    parser.add_argument("--require-decontamination", action="store_true", help=_help("require_decontamination"))
    parser.add_argument("--valid-fraction", type=float, default=0.02, help=_help("valid_fraction"))
    parser.add_argument("--seed", type=int, default=0, help=_help("seed"))
    parser.add_argument("--limit", type=int, default=None, help=_help("limit"))
    parser.add_argument("--workers", type=int, default=2, help=_help("workers"))
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", help="write into this directory (created; files in it are replaced)")
    where.add_argument("--run", help="name of a new run folder; default data-<timestamp>")
    parser.add_argument("--results-dir", default=None, help=f"where run folders go (default {RESULTS_ROOT})")
    return parser


def main_data(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    cfg = DataConfig(data=args.data, filter=args.filter, syntax_filter=args.syntax_filter,
                     decontaminate=args.decontaminate,
                     require_decontamination=args.require_decontamination,
                     valid_fraction=args.valid_fraction, seed=args.seed, limit=args.limit,
                     workers=args.workers)
    started = time.monotonic()
    if args.out:
        prepared = prepare_data(cfg, Path(args.out))
    else:
        prepared = _prepare_in_run_folder(cfg, args.run, args.results_dir or RESULTS_ROOT, argv)
    print(format_summary(prepared, time.monotonic() - started))
    return 0


def _prepare_in_run_folder(cfg: DataConfig, name: str | None, root: str, argv: list[str]) -> PreparedData:
    from harness.runs import RunFolder, write_manifest

    run = RunFolder.create(root, name, "data")
    try:
        prepared = prepare_data(cfg, run.path)
        write_manifest(run, dataclasses.asdict(cfg), prepared.hashes, {"split": cfg.seed}, ["data", *argv])
        run.mark_done("data", sorted(path.name for path in prepared.files.values()))
    except BaseException:
        run.abandon()
        raise
    run.finish()
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
    lines.append(f"  took {seconds:.1f} s")
    return "\n".join(lines)
