"""Put two or more run folders side by side: ``compare.md`` and ``compare_pass_at_1.png``.

`compare_runs` is what `python -m harness compare` (`make compare RUNS="a b"`) and the ablation driver
call. The Markdown holds held-out pass@1 per iteration (one column per run), the other summary metrics
at each run's last evaluated iteration, and the config fields in which the runs differ.
"""
from __future__ import annotations

from pathlib import Path

from harness.reports import data as rd
from harness.reports.mdtable import exact, md_table
from harness.reports.plots import plot_per_iteration, present
from harness.runs.layout import METRICS
from tasks.samples import atomic_write_text
from verilog_tools.errors import UserError

PLOT_NAME = "compare_pass_at_1.png"


def default_labels(run_dirs: list[Path]) -> list[str]:
    names = [p.name for p in run_dirs]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in run_dirs]


def pass_at_1_table(runs: list[rd.RunData], labels: list[str]) -> str:
    """Held-out pass@1 per iteration, one column per train run."""
    pairs = [(label, run) for label, run in zip(labels, runs) if run.kind == "train"]
    if not pairs:
        return "No train runs: nothing per iteration."
    values = {label: {r["iteration"]: r.get("pass@1") for r in run.rows} for label, run in pairs}
    iterations = sorted({it for v in values.values() for it in v})
    return md_table(["iteration"] + [label for label, _ in pairs],
                  [[it] + [values[label].get(it) for label, _ in pairs] for it in iterations])


def _last_evaluated(run: rd.RunData) -> dict:
    evaluated = [r for r in run.rows if r.get("pass@1") is not None]
    return evaluated[-1] if evaluated else (run.rows[-1] if run.rows else {})


def summary_table(runs: list[rd.RunData], labels: list[str]) -> str:
    """Each run's last evaluated iteration: pass@1, best pass@1, change from iteration 0, the rest."""
    rows = []
    for label, run in zip(labels, runs):
        last = _last_evaluated(run)
        scores = {r["iteration"]: r["pass@1"] for r in run.rows if r.get("pass@1") is not None}
        best = max(scores.items(), key=lambda kv: (kv[1], -(kv[0] or 0)), default=None)
        first = scores.get(0)
        change = None if first is None or last.get("pass@1") is None else f"{last['pass@1'] - first:+.3f}"
        rows.append([label, "eval" if run.kind == "eval" else last.get("iteration"), last.get("pass@1"),
                     None if best is None or run.kind == "eval" else f"{best[1]:.3f} (it. {best[0]})", change]
                    + [last.get(k) for k in METRICS])
    header = ["run", "last iteration", "pass@1", "best pass@1", "change from it. 0"] + list(METRICS.values())
    return md_table(header, rows)


def config_differences(runs: list[rd.RunData], labels: list[str]) -> str:
    """Config fields (plus kind, commit and simulator) whose values differ between the runs."""
    def facts(run: rd.RunData) -> dict:
        git = run.manifest.get("git") or {}
        return {"(kind)": run.kind, "(git commit)": (git.get("commit") or "?")[:12] + ("+dirty" if git.get("dirty") else ""),
                "(simulator)": (run.manifest.get("tools") or {}).get("iverilog"), **run.config}
    all_facts = [facts(r) for r in runs]
    keys = sorted({k for f in all_facts for k in f})
    differ = [k for k in keys if len({repr(f.get(k)) for f in all_facts}) > 1 and k not in ("run", "results_dir")]
    if not differ:
        return "The runs' configs are identical."
    return md_table(["field"] + labels, [[k] + [exact(f.get(k)) for f in all_facts] for k in differ])


def plot_pass_at_1(runs: list[rd.RunData], labels: list[str], path: Path, title: str) -> Path | None:
    series = {label: present(run.rows, "pass@1") for label, run in zip(labels, runs) if run.kind == "train"}
    hlines = {f"{label} (eval run)": run.rows[0]["pass@1"] for label, run in zip(labels, runs)
              if run.kind == "eval" and run.rows and run.rows[0].get("pass@1") is not None}
    return plot_per_iteration(path, series, title=title, ylabel="held-out pass@1 (fraction of problems)",
                              hlines=hlines)


def compare_runs(run_dirs: list[Path], out_dir: Path, labels: list[str] | None = None,
                 title: str | None = None) -> str:
    """Write compare.md and compare_pass_at_1.png into ``out_dir``; returns the Markdown tables."""
    run_dirs = [Path(p) for p in run_dirs]
    if len(run_dirs) < 2:
        raise UserError(f"compare needs at least two run folders, got {len(run_dirs)}; pass RUNS=\"a b\"")
    labels = list(labels) if labels else default_labels(run_dirs)
    if len(labels) != len(run_dirs):
        raise UserError(f"{len(labels)} labels for {len(run_dirs)} runs; give exactly one label per run")
    runs = [rd.load_run(p) for p in run_dirs]
    title = title or "Held-out pass@1 per iteration"
    tables = (f"Held-out pass@1 per iteration:\n\n{pass_at_1_table(runs, labels)}\n\n"
              f"At each run's last evaluated iteration:\n\n{summary_table(runs, labels)}")
    out_dir = Path(out_dir)
    try:
        plot = plot_pass_at_1(runs, labels, out_dir / PLOT_NAME, title)
        figure = f"![{title}]({PLOT_NAME})" if plot else "Nothing to plot: no run has held-out pass@1."
    except ImportError:
        figure = "No plot: matplotlib is not installed (pip install '.[train]')."
    listing = [[label, f"`{run.path}`", run.kind, rd.benchmark_of(run), "yes" if run.complete else "**no**"]
               for label, run in zip(labels, runs)]
    text = "\n\n".join([f"# Comparison: {title}", md_table(["run", "folder", "kind", "benchmark", "finished"], listing),
                        tables, figure, "## Config differences", config_differences(runs, labels)]) + "\n"
    atomic_write_text(out_dir / "compare.md", text)
    return tables
