"""Command-line flags derived from config dataclasses: the one bridge every command uses.

Each field ``some_name`` becomes ``--some-name`` with the field's ``metadata["help"]`` and a converter
read from its annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``; a ``list`` is written
``a,b,c``). A boolean flag takes an
optional value, so ``--allow-missing`` and ``--filter 0`` (what ``make ... FILTER=0`` renders) both
work. Two ways to read the flags back:

- ``defaults=True``: a flag not given takes the field's default (a command whose config is the flags);
- ``defaults=False``: a flag not given is absent from `given` (a command whose flags override a preset
  or a file, where "not given" must not be read as "the dataclass default").

With `Parser`, a bad value or an unknown flag is a `UserError` (one line, exit 2) before any work.
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable

from verilog_tools.errors import UserError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def to_bool(value: str) -> bool:
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected 1/0 (or true/false), got {value!r}")


def to_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None


def to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None


CONVERTERS = {bool: to_bool, int: to_int, float: to_float, str: str}


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are `UserError`s: one line naming the flag and the
    problem, pointing at ``--help``, exit 2 (`harness.cli`)."""

    def error(self, message: str) -> typing.NoReturn:
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def comma_list(item: type):
    """A converter of ``a,b,c`` into a list of ``item`` values."""
    convert = CONVERTERS.get(item, str)

    def parse_list(value: str) -> list:
        return [convert(x.strip()) for x in value.split(",") if x.strip()]
    return parse_list


def field_type(cls: type, f: dataclasses.Field):
    """The plain type of a field: ``X`` for ``X``, ``X | None`` and ``Optional[X]``; ``list`` and
    ``list[X]`` as ``(list, X)``."""
    hint = typing.get_type_hints(cls)[f.name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
    if hint is list or typing.get_origin(hint) is list:
        return (list, (typing.get_args(hint) or (str,))[0])
    return hint if hint in CONVERTERS else str


def field_default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, defaults: bool = True,
                     only: Iterable[str] | None = None, skip: Iterable[str] = (),
                     help_for: dict[str, str] | None = None) -> list[str]:
    """Add a flag per field of ``cls`` (those in ``only``, if given, less ``skip``); the field names."""
    wanted = None if only is None else list(only)
    by_name = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = [n for n in (wanted or by_name) if n not in set(skip)]
    for name in names:
        f = by_name[name]
        kind = field_type(cls, f)
        help_ = (help_for or {}).get(name) or f.metadata.get("help")
        convert = comma_list(kind[1]) if isinstance(kind, tuple) else CONVERTERS[kind]
        options = {"dest": name, "help": help_, "default": field_default(f) if defaults else None, "type": convert}
        if isinstance(kind, tuple):
            options["metavar"] = "A,B,..."
        elif kind is bool:
            options.update(nargs="?", const=True, metavar="0|1")
        parser.add_argument("--" + name.replace("_", "-"), **options)
    return names


def given(args: argparse.Namespace, names: Iterable[str]) -> dict:
    """The flags among ``names`` that have a value (with ``defaults=False``: the ones given)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}

