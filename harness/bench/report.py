"""The benchmark tables: one Markdown text, printed to the terminal and written to bench.md."""
from __future__ import annotations

from harness.bench.common import BenchResult


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
             f"total {header['total_seconds']:.0f} s"), "",
             "| benchmark | measure | project | baseline | ratio | note |", "|---|---|---|---|---|---|"]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.name} | - | - | - | - | {r.skipped} |")
        for row in r.rows:
            ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
            lines.append(f"| {r.name} | {row.measure} | {number(row.project)} | {number(row.baseline)} | "
                         f"{ratio} | {row.note} |")
    lines += ["", "| benchmark | goal | measured | verdict |", "|---|---|---|---|"]
    for r in results:
        for goal in r.goals:
            lines.append(f"| {r.name} | {goal.goal} | {goal.measured} | {_met(goal.met)} |")
    for goal in header.get("goals", []):
        lines.append(f"| (all) | {goal.goal} | {goal.measured} | {_met(goal.met)} |")
    lines += ["", "Notes:"]
    for r in results:
        lines.append(f"- {r.name} ({r.seconds:.0f} s)")
        lines += [f"  - {note}" for note in r.notes]
    return "\n".join(lines) + "\n"
