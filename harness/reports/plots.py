"""PNG plots for run reports: metrics per iteration and training curves (matplotlib, Agg backend only).

Every figure has a title, axis labels with units, integer iteration ticks and a legend when it shows
more than one series; each is written to a temporary file and renamed, so a crash leaves no half PNG.
matplotlib is imported when a plot is drawn (it is in the ``[train]`` extra, not in the core install).
"""
from __future__ import annotations

import os
from pathlib import Path

from harness.reports.data import benchmark_of, pass_keys, train_history
from harness.runs.layout import iter_dir

DPI = 120
FIGSIZE = (7.5, 4.6)

Series = dict[str, tuple[list, list]]   # label -> (x values, y values)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    return path


def _integer_ticks(ax, xs: list[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    if xs and len(set(xs)) <= 20:
        ax.set_xticks(sorted(set(xs)))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def present(rows: list[dict], key: str) -> tuple[list, list]:
    """(iterations, values) of ``key`` over the rows that have a value for it."""
    pairs = [(r["iteration"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_per_iteration(path: Path, series: Series, *, title: str, ylabel: str,
                       ylim: tuple | None = None, hlines: dict[str, float] | None = None,
                       intervals: Series | None = None) -> Path | None:
    """One line per series against the iteration; ``hlines`` adds labelled dashed horizontal lines;
    ``intervals`` (label -> (lows, highs) at the series' x values) draws each series' interval as a
    shaded band and error bars.

    Returns None (and writes nothing) when no series has a point.
    """
    series = {k: v for k, v in series.items() if v[0]}
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    markers = "osD^vP*X"
    for i, (label, (xs, ys)) in enumerate(series.items()):
        line, = ax.plot(xs, ys, marker=markers[i % len(markers)], linewidth=1.8, label=label)
        if intervals and label in intervals:
            lows, highs = intervals[label]
            ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
            ax.errorbar(xs, ys, yerr=[[y - lo for y, lo in zip(ys, lows)], [hi - y for y, hi in zip(ys, highs)]],
                        fmt="none", ecolor=line.get_color(), capsize=3, linewidth=1)
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, linestyle="--", linewidth=1.2, color=f"C{(len(series) + i) % 10}", label=label)
    ax.set_title(title)
    ax.set_xlabel("iteration (0 = supervised warm start)")
    ax.set_ylabel(ylabel)
    _integer_ticks(ax, [x for xs, _ in series.values() for x in xs])
    if ylim:
        ax.set_ylim(*ylim)
    if len(series) + len(hlines or {}) > 1:
        ax.legend(loc="best", fontsize=9)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_training_curves(path: Path, histories: dict[int, list[dict]], title: str) -> Path | None:
    """CE loss, ranking loss and ranking accuracy per logging step, iterations laid end to end.

    ``histories`` maps an iteration to its train_log.json history; the x axis is the optimizer step
    counted from the first plotted iteration, with a dotted line where each iteration starts.
    """
    histories = {it: h for it, h in sorted(histories.items()) if h}
    if not histories:
        return None
    plt = _pyplot()
    panels = (("ce_loss", "CE loss (nats/token)"), ("rank_loss", "ranking loss (nats/token)"),
              ("rank_accuracy", "ranking accuracy (fraction)"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(FIGSIZE[0], 8.2), sharex=True)
    offset, starts = 0, []
    for it, history in histories.items():
        starts.append((offset, it))
        steps = [offset + h.get("step", i + 1) for i, h in enumerate(history)]
        for ax, (key, _) in zip(axes, panels):
            pts = [(s, h[key]) for s, h in zip(steps, history) if h.get(key) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=f"C{it % 10}", linewidth=1.4,
                        marker="." if len(pts) < 40 else None, label=f"iteration {it}")
        offset = max(steps)
    for ax, (_, ylabel) in zip(axes, panels):
        ax.set_ylabel(ylabel, fontsize=10)
        for start, _ in starts[1:]:
            ax.axvline(start, linestyle=":", color="grey", linewidth=1)
    axes[0].set_title(title)
    axes[-1].set_xlabel("optimizer step (cumulative over the plotted iterations)")
    _integer_ticks(axes[-1], [])
    if len(histories) > 1:  # below the axes, where it cannot hide a curve
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.045), fontsize=9,
                   ncol=min(4, len(histories)), frameon=False)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def draw_run_plots(run, plots_dir: Path) -> list[tuple[str, Path]]:
    """The plots of a train run's report (`harness.reports.data.RunData`): (title, path) of each written."""
    rows = run.rows
    ks = pass_keys(rows)
    n = next((r.get("eval_n") for r in rows if r.get("eval_n") is not None), "?")
    metric = ks[0] if len(ks) == 1 else "pass@k"
    plan = [
        ("held-out pass@k", "pass_at_k.png", {k: present(rows, k) for k in ks},
         dict(title=f"Held-out {metric} per iteration ({benchmark_of(run)}, n={n})",
              ylabel=f"held-out {metric} (fraction of problems)")),
        ("syntax-valid and multi-module rates", "validity.png",
         {"held-out samples: syntax-valid": present(rows, "eval_syntax_valid"),
          "sampled candidates: syntax-valid": present(rows, "cand_syntax_valid_rate"),
          "sampled candidates: multi-module": present(rows, "cand_multi_module_rate")},
         dict(title="Syntax-valid and multi-module rates per iteration",
              ylabel="rate (fraction of samples)", ylim=(-0.02, 1.02))),
        ("candidate scores", "candidate_scores.png",
         {"mean candidate score (scorable candidates)": present(rows, "cand_mean_score"),
          "mean Rouge-L F (compiling candidates)": present(rows, "cand_mean_rouge_l")},
         dict(title="Sampled candidates: mean score and mean Rouge-L per iteration",
              ylabel="mean over candidates (unitless)")),
        ("loss terms", "losses.png",
         {"CE loss on the reference": present(rows, "ce_loss"), "ranking loss": present(rows, "rank_loss")},
         dict(title="Loss terms at the last logging step of each iteration",
              ylabel="loss (nats per token)")),
        ("ranking accuracy", "rank_accuracy.png", {"ranking accuracy": present(rows, "rank_accuracy")},
         dict(title="Ranking accuracy at the last logging step of each iteration",
              ylabel="ranking accuracy (fraction of pairs)", ylim=(-0.02, 1.02),
              hlines={"chance (0.5)": 0.5})),
    ]
    out = []
    for label, name, series, kw in plan:
        path = plot_per_iteration(plots_dir / name, series, **kw)
        if path is not None:
            out.append((label, path))
    iters = [r["iteration"] for r in rows if r["iteration"] > 0]
    histories = {it: train_history(run.path / iter_dir(it)) for it in iters}
    if any(histories.values()):
        shown = [it for it, h in histories.items() if h]
        title = (f"Training curves per logging step, iterations {shown[0]}-{shown[-1]} "
                 f"(warm start left out)")
        path = plot_training_curves(plots_dir / "training_curves.png", histories, title)
        if path is not None:
            out.append(("training curves per step", path))
    return out
