"""The benchmark tables: one Markdown text, printed to the terminal and written to bench.md."""
from __future__ import annotations

from harness.bench.common import BenchResult
from harness.reports.mdtable import md_table


def number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _met(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "NOT met")


def format_tables(results: list[BenchResult], header: dict) -> str:
    """Measurements (ratio > 1: the project's way is better), then the goals, then the notes."""
    machine = header["machine"]
    load = machine.get("load_average_at_start")
    lines = [f"# Benchmarks ({header['scale']} scale)", "",
             (f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, load average "
             f"{load[0] if load else '?'} at start; {header['workers']} workers; git "
             f"{(header.get('commit') or 'unknown')[:12]}{' (dirty)' if header.get('dirty') else ''}; "
             f"total {header['total_seconds']:.0f} s"), ""]
    rows = []
    for r in results:
        if r.skipped:
            rows.append([r.name, "-", "-", "-", "-", r.skipped])
        rows += [[r.name, row.measure, number(row.project), number(row.baseline),
                  "-" if row.ratio is None else f"{row.ratio:.2f}x", row.note] for row in r.rows]
    goals = [[r.name, g.goal, g.measured, _met(g.met)] for r in results for g in r.goals]
    goals += [["(all)", g.goal, g.measured, _met(g.met)] for g in header.get("goals", [])]
    lines += [md_table(["benchmark", "measure", "project", "baseline", "ratio", "note"], rows), "",
              md_table(["benchmark", "goal", "measured", "verdict"], goals)]
    lines += ["", "Notes:"]
    for r in results:
        lines.append(f"- {r.name} ({r.seconds:.0f} s)")
        lines += [f"  - {note}" for note in r.notes]
    return "\n".join(lines) + "\n"
