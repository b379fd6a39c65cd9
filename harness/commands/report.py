"""`python -m harness report RUN` and `python -m harness compare RUN RUN ...` (`make report`, `make compare`).

``report`` rebuilds ``report.md`` and ``plots/`` inside an existing run folder (train or eval).
``compare`` writes a new, never-overwritten folder ``results/compare-<timestamp>`` (or ``--run NAME``)
holding ``compare.md`` and ``compare_pass_at_1.png``, and prints the tables. A run is named by its
folder path or by its name under ``--results-dir``.
"""
from __future__ import annotations

from pathlib import Path

from harness.reports.compare import PLOT_NAME, compare_runs
from harness.commands.flags import Parser
from harness.reports.report import build_report
from harness.reports.data import require_run_folder
from harness.runs.folder import run_folder, write_manifest
from verilog_tools.errors import UserError


def resolve_run(name: str, results_dir: str | Path) -> Path:
    """A run folder given as a path or as a name under ``results_dir``."""
    for path in (Path(name), Path(results_dir) / name):
        if path.is_dir():
            return require_run_folder(path)
    raise UserError(f"run folder {name!r} not found (looked at {name} and {Path(results_dir) / name}); "
                    f"pass a run folder path or a name under {results_dir}/")


def main_report(argv: list[str]) -> int:
    parser = Parser(prog="python -m harness report", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run folder: a path, or a name under --results-dir (RUN)")
    parser.add_argument("--results-dir", default="results", help="where run folders are looked up by name")
    args = parser.parse_args(argv)
    print(build_report(resolve_run(args.run, args.results_dir)))
    return 0


def main_compare(argv: list[str]) -> int:
    parser = Parser(prog="python -m harness compare", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", help="two or more run folders (paths or names under --results-dir)")
    parser.add_argument("--labels", nargs="+", help="one label per run, in order (quote labels with spaces)")
    parser.add_argument("--title", help="title of compare.md and of the plot")
    parser.add_argument("--run", help="name of the new comparison folder; default compare-<timestamp>")
    parser.add_argument("--results-dir", default="results", help="where run folders are looked up and written")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        raise UserError(f"compare needs at least two run folders, got {len(args.runs)}; "
                        f"pass RUNS=\"<run> <run> ...\"")
    paths = [resolve_run(name, args.results_dir) for name in args.runs]
    if args.labels and len(args.labels) != len(paths):
        raise UserError(f"{len(args.labels)} labels for {len(paths)} runs; give exactly one label per run")
    with run_folder(args.results_dir, args.run, "compare") as out:
        write_manifest(out, {"runs": [str(p) for p in paths], "labels": args.labels, "title": args.title},
                       argv=["compare", *argv])
        table = compare_runs(paths, out.path, labels=args.labels, title=args.title)
        out.mark_done("compare", ["compare.md"] + ([PLOT_NAME] if (out.path / PLOT_NAME).exists() else []))
    print(table)
    print(f"comparison folder: {out.path}")
    return 0
