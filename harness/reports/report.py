"""``report.md`` and ``plots/*.png`` for one run folder (train or eval), rebuilt from its files.

`build_report` reads the folder through `harness.reports.data` (so an unfinished run reports the
iterations it has and names the missing ones), draws the plots (`harness.reports.plots`) and writes
``report.md``: the setup, the git commit, the simulator, the per-iteration table, the plots, a
failure breakdown per problem category and, on VerilogEval, the paper's numbers beside ours.
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path

from harness.reports import data as rd
from harness.reports.mdtable import exact, md_table
from harness.reports.plots import draw_run_plots
from harness.runs.layout import METRICS
from tasks.samples import atomic_write_text
from verilog_tools import status as st

# Published numbers (percent) shown beside VerilogEval runs. Where a paper's sampling settings could
# not be checked here, they read "as reported" rather than a guess.
PAPER_RESULTS = (
    {"system": "ITERTL (paper, v3)", "benchmark": "verilog-eval-v1-human",
     "pass": {"pass@1": 53.8, "pass@5": 60.8, "pass@10": 64.1},
     "n": "as reported", "temperature": "as reported", "simulator": "as reported",
     "source": "Wu et al., ITERTL, arXiv 2407.12022v3"},
    {"system": "RTLCoder-DeepSeek", "benchmark": "verilog-eval-v1-human", "pass": {"pass@1": 41.6},
     "n": "as reported", "temperature": "as reported", "simulator": "as reported",
     "source": "Liu et al., RTLCoder, arXiv 2312.08617"},
    {"system": "RTLCoder-DeepSeek", "benchmark": "verilog-eval-v1-machine", "pass": {"pass@1": 61.2},
     "n": "as reported", "temperature": "as reported", "simulator": "as reported",
     "source": "Liu et al., RTLCoder, arXiv 2312.08617"},
)
KS = ["pass@1", "pass@5", "pass@10"]


def iteration_table(rows: list[dict]) -> str:
    keys = rd.pass_keys(rows) + [k for k in METRICS if any(r.get(k) is not None for r in rows)]
    header = ["iteration"] + [f"held-out {k}" if k.startswith("pass@") else METRICS[k] for k in keys]
    return md_table(header, [[r["iteration"]] + [r.get(k) for k in keys] for r in rows])


def setup_section(run: rd.RunData) -> str:
    c, m = run.config, run.manifest
    if run.kind == "train":
        fields = [("preset", c.get("preset")), ("model", c.get("model")), ("data", c.get("data")),
                  ("mode", c.get("mode")), ("filter", c.get("filter")), ("score", c.get("score")),
                  ("k (candidates per instruction)", c.get("k")), ("iterations", c.get("iters")),
                  ("instructions per iteration", c.get("instructions_per_iter") or "all"),
                  ("learning rate (warm start)", f"{c.get('learning_rate')} ({c.get('warmup_learning_rate')})"),
                  ("held-out eval", (f"{c.get('eval_bench')}, n={c.get('eval_n')}, "
                                     f"temperature {c.get('eval_temperature')}"))]
    else:
        fields = [("benchmark", c.get("bench")), ("model", c.get("model")), ("samples file", c.get("samples")),
                  ("n", c.get("n")), ("temperature / top_p", "not sampled (samples file or reference)"
                                      if c.get("samples") or c.get("model") == "reference"
                                      else f"{c.get('temperature')} / {c.get('top_p')}"),
                  ("k", c.get("k")), ("limit (smoke run)", c.get("limit"))]
    seeds = m.get("seeds") or ({"seed": c["seed"]} if "seed" in c else {})
    git = m.get("git") or {}
    tools = m.get("tools") or {}
    packages = {k: v for k, v in (m.get("packages") or {}).items() if v}
    fields += [("seeds", ", ".join(f"{k}={v}" for k, v in seeds.items()) or None),
               ("git commit", f"{git.get('commit')} ({'DIRTY tree' if git.get('dirty') else 'clean tree'})"
                if git.get("commit") else "unknown (not a git checkout)"),
               ("simulator", ", ".join(f"{k} {v}" for k, v in tools.items()) or None),
               ("containment", m.get("containment") or "not recorded (a run from before containers)"),
               ("python / packages", " / ".join([m.get("python") or "?"] + [f"{k} {v}" for k, v in packages.items()])),
               ("started / finished", f"{m.get('started')} / {m.get('finished') or 'not finished'}")]
    warning = ("\n\n**Containment: none.** This run's simulations ran without the container "
               "(CONTAINMENT=none): the policy was the only barrier between generated code and this machine."
               if m.get("containment") == "none" else "")
    return "## Setup\n\n" + md_table(["field", "value"], [[k, v] for k, v in fields]) + warning


def status_line(run: rd.RunData) -> str:
    if run.complete:
        state = "finished"
    else:
        state = "**UNFINISHED** (`.incomplete` is present: results below are partial)"
    lines = [f"{run.kind} run `{run.path}`: {state}."]
    for what, its in rd.missing_iterations(run).items():
        lines.append(f"Iterations with {what}: {', '.join(map(str, its))}.")
    if any(r.get("smoke") for r in run.rows):
        lines.append("**Smoke run**: evaluated on a limited number of problems (see metrics.json).")
    return "\n".join(lines)


def failure_section(run: rd.RunData) -> str:
    """Status counts per problem category, for iteration 0 and the last evaluated iteration."""
    bench = rd.benchmark_of(run)
    keys = [k for k in rd.headline_evals(run) if (run.eval_dirs[k] / "results.jsonl").exists()]
    if not keys:
        return "## Failure breakdown\n\nNo results.jsonl found."
    families = rd.synthetic_families(run.path) if bench == "synthetic" and run.kind == "train" else {}
    tables = {k: rd.failure_breakdown(run.eval_dirs[k] / "results.jsonl", bench, families) for k in keys}
    found = {s for t in tables.values() for c in t.values() for s, n in c.items() if n}
    seen = [s for s in st.STATUSES if s in found] + sorted(found - set(st.STATUSES))
    unreached = ", ".join(s for s in st.STATUSES if s not in found) or "none"
    parts = ["## Failure breakdown",
             f"Sample statuses per problem category ({bench}). Statuses that no sample reached: {unreached}."]
    for k, table in tables.items():
        table = {**table, "**all**": sum(table.values(), Counter())}
        rows = [[cat] + [c[s] for s in seen] + [c.total(), c["pass"] / max(1, c.total())]
                for cat, c in table.items()]
        parts.append(f"### {'Evaluation' if k is None else f'Iteration {k}'} "
                     f"({table['**all**'].total()} samples)")
        parts.append(md_table(["category"] + seen + ["samples", "pass fraction"], rows))
    return "\n\n".join(parts)


def paper_section(run: rd.RunData) -> str:
    """The paper's numbers beside ours (VerilogEval runs only), each row with n, temperature, simulator."""
    bench = rd.benchmark_of(run) or ""
    if not bench.startswith("verilog-eval"):
        return ""
    rows = [[p["system"], p["benchmark"]] + [_percent(p["pass"].get(k), 1) for k in KS]
            + [p["n"], p["temperature"], p["simulator"], p["source"]] for p in PAPER_RESULTS]
    for it in rd.headline_evals(run):
        m = run.eval_metrics(it)
        name = "this run" if it is None else f"this run, iteration {it}"
        if m.get("smoke"):
            name += f" (SMOKE: {m.get('problems')} problems)"
        rows.append([name, m.get("benchmark")] + [_percent(m.get("pass_at_k", {}).get(k), 100) for k in KS]
                    + [m.get("n"), exact(m.get("temperature")), m.get("simulator"), f"`{run.path.name}`"])
    note = ("pass@k in percent. The paper rows are quoted, not re-measured. "
            "\"as reported\": not determined here; see the cited paper.")
    if bench not in {p["benchmark"] for p in PAPER_RESULTS}:
        note += f" This run used {bench}, which the quoted numbers do not cover: compare with care."
    header = ["system", "benchmark"] + KS + ["n", "temperature", "simulator", "source"]
    return "## Against the published numbers\n\n" + note + "\n\n" + md_table(header, rows)


def _percent(v, scale: float) -> str | None:
    return None if v is None else f"{scale * v:.1f}"


def plots_section(run: rd.RunData, plots_dir: Path) -> str:
    if run.kind != "train":
        return ""
    try:
        paths = draw_run_plots(run, plots_dir)
    except ImportError as exc:
        return f"## Plots\n\nNo plots: {exc.name or 'matplotlib'} is not installed (pip install '.[train]')."
    links = [f"![{title}](plots/{p.name})" for title, p in paths]
    return "## Plots\n\n" + ("\n\n".join(links) if links else "Nothing to plot yet.")


def standard_error_note(rows: list[dict]) -> str:
    """How far apart two held-out pass@1 values must be to mean something (n=1: binomial error)."""
    evaluated = [r for r in rows if r.get("pass@1") is not None and r.get("eval_n") == 1 and r.get("problems")]
    if not evaluated:
        return ""
    p, problems = evaluated[-1]["pass@1"], evaluated[-1]["problems"]
    return (f"\n\nWith n=1 sample per problem on {problems} problems, the standard error of a held-out "
            f"pass@1 near {p:.2f} is about {math.sqrt(p * (1 - p) / problems):.3f}.")


def eval_table(rows: list[dict]) -> str:
    keys = rd.pass_keys(rows)
    return md_table(["benchmark", "problems"] + keys + ["syntax-valid", "n", "temperature"],
                    [[r.get("benchmark"), r.get("problems")] + [r.get(k) for k in keys]
                     + [r.get("eval_syntax_valid"), r.get("eval_n"), r.get("eval_temperature")] for r in rows])


def render(run: rd.RunData, plots_dir: Path) -> str:
    title = (f"# Report: {run.path.name}\n\n{status_line(run)}\n\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S %z')}"
             f" by `python -m harness report` (rebuild with `make report RUN={run.path}`).")
    if run.kind == "eval":
        results = f"## Results\n\n{eval_table(run.rows)}"
    else:
        results = f"## Per-iteration results\n\n{iteration_table(run.rows) if run.rows else 'No iteration yet.'}"
        results += standard_error_note(run.rows)
    sections = [title, setup_section(run), results, plots_section(run, plots_dir),
                failure_section(run), paper_section(run)]
    return "\n\n".join(s for s in sections if s) + "\n"


def build_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` (and ``plots/*.png`` for train runs) into ``run_dir``; returns report.md."""
    run = rd.load_run(run_dir)
    return atomic_write_text(run.path / "report.md", render(run, run.path / "plots"))


def try_build_report(run_dir: str | Path) -> Path | None:
    """`build_report` for the end of a run: a failure prints one warning line and never raises."""
    try:
        return build_report(run_dir)
    except Exception as exc:  # the run's results matter more than its report
        print(f"warning: report.md not written ({type(exc).__name__}: {exc}); "
              f"run `make report RUN={run_dir}` to retry", file=sys.stderr)
        return None
