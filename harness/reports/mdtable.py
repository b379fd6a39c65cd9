"""Markdown tables for reports: one cell format for every number a report prints."""
from __future__ import annotations


def cell(value, digits: int = 3) -> str:
    """``-`` for a missing value, yes/no for a flag, ``digits`` decimals for a float."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def exact(value):
    """A value as written (0.0001, not 0.000): floats as their repr, anything else unchanged."""
    return repr(value) if isinstance(value, float) else value


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows])
