"""A dataclass field with a help string: every config field of the project is declared through it."""
from __future__ import annotations

from dataclasses import field


def option(default, help_: str):
    """``field(default=..., metadata={"help": ...})``: the help text is what ``--help`` shows."""
    return field(default=default, metadata={"help": help_})
