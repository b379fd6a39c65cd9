"""harness.commands.flags: flags derived from config dataclasses, typed from their annotations, errors as UserError."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from harness.commands.flags import Parser, add_config_flags, given
from verilog_tools.errors import UserError


@dataclass
class Example:
    some_count: int = field(default=3, metadata={"help": "how many"})
    rate: float = field(default=0.5, metadata={"help": "a rate"})
    name: str | None = field(default=None, metadata={"help": "a name"})
    enabled: bool = field(default=True, metadata={"help": "on or off"})
    tags: list = field(default_factory=list, metadata={"help": "tags"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "seeds"})


def parser(**options) -> tuple[Parser, list[str]]:
    p = Parser(prog="python -m harness example")
    return p, add_config_flags(p, Example, **options)


def test_flags_are_typed_from_the_annotations_with_the_defaults():
    p, names = parser(skip=("tags", "seeds"))
    assert names == ["some_count", "rate", "name", "enabled"]
    args = p.parse_args(["--some-count", "7", "--rate", "1e-3", "--name", "x"])
    assert (args.some_count, args.rate, args.name, args.enabled) == (7, 0.001, "x", True)
    assert "how many" in p.format_help()


@pytest.mark.parametrize(("argv", "expected"), [(["--enabled"], True), (["--enabled", "0"], False),
                                                (["--enabled", "false"], False), (["--enabled", "yes"], True)])
def test_a_boolean_flag_takes_an_optional_value(argv, expected):
    p, _ = parser(only=("enabled",))
    assert p.parse_args(argv).enabled is expected


def test_without_defaults_only_the_flags_given_are_read_back():
    p, names = parser(defaults=False, skip=("tags", "seeds"))
    assert given(p.parse_args(["--rate", "2"]), names) == {"rate": 2.0}
    assert given(p.parse_args([]), names) == {}


@pytest.mark.parametrize(("argv", "words"), [(["--some-count", "x"], "--some-count: expected a whole number, got 'x'"),
                                             (["--rate", "fast"], "--rate: expected a number"),
                                             (["--enabled", "maybe"], "expected 1/0"),
                                             (["--nope"], "unrecognized arguments: --nope")])
def test_a_bad_value_is_one_user_error_line_naming_the_flag(argv, words):
    p, _ = parser(skip=("tags",))
    with pytest.raises(UserError) as info:
        p.parse_args(argv)
    message = str(info.value)
    assert words in message and "\n" not in message and "--help" in message


def test_a_list_is_comma_separated_and_typed_by_its_items():
    p, _ = parser(only=("tags", "seeds"))
    args = p.parse_args(["--tags", "a, b", "--seeds", "0,1,2"])
    assert args.tags == ["a", "b"] and args.seeds == [0, 1, 2]
    assert p.parse_args([]).seeds == [0]
    with pytest.raises(UserError, match="--seeds: expected a whole number, got 'x'"):
        p.parse_args(["--seeds", "0,x"])


@pytest.mark.parametrize("command", ["train", "eval", "data", "ablation", "experiment", "serve", "merge", "report",
                                     "compare", "bench"])
def test_every_command_prints_its_help(command, capsys):
    # help texts come from the config fields: a stray % in one would crash argparse's formatter
    from harness.cli import main

    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"python -m harness {command}" in capsys.readouterr().out
