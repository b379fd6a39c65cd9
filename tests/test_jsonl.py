"""Every JSONL reader of the project (tasks.jsonl): lines end at \\n only, each line is bounded."""
from __future__ import annotations

import json

import pytest

from harness.loop.loop import read_jsonl as loop_read_jsonl
from tasks.jsonl import dumps_line, iter_jsonl, read_jsonl, read_lines
from tasks.rtlcoder import read_examples
from tasks.samples import read_samples
from verilog_tools.errors import UserError

AND = "module and2(input a, input b, output y);\n  assign y = a & b;\nendmodule\n"
# Characters str.splitlines() ends a line at that JSON allows raw in a string (C0 ones it does not).
BREAKERS = ["\u2028", "\u2029", "\x85"]


def raw_jsonl(path, rows):
    """JSONL with non-ASCII written raw (json.dumps' default would escape the line breakers)."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("breaker", BREAKERS)
def test_rtlcoder_keeps_a_row_holding_a_line_breaker(tmp_path, breaker):
    rows = [{"instruction": f"AND{breaker}gate", "output": AND.replace("\n", breaker + "\n", 1)},
            {"instruction": "second", "output": AND}]
    result = read_examples(raw_jsonl(tmp_path / "d.jsonl", rows))
    assert result.malformed == 0
    assert [e.instruction for e in result.examples] == [rows[0]["instruction"], "second"]
    assert [e.origin for e in result.examples] == ["d.jsonl:1", "d.jsonl:2"]


@pytest.mark.parametrize("reader", [read_jsonl, loop_read_jsonl,
                                    lambda p: [r["completion"] for r in read_samples(p)]])
def test_every_reader_keeps_rows_holding_line_breakers(tmp_path, reader):
    rows = [{"task_id": "t", "completion": f"a{b}b"} for b in BREAKERS]
    got = reader(raw_jsonl(tmp_path / "s.jsonl", rows))
    assert [r if isinstance(r, str) else r["completion"] for r in got] == [r["completion"] for r in rows]


def test_a_long_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": 1}\n' + json.dumps({"a": "x" * 100}) + "\n")
    assert read_jsonl(path, max_line_bytes=200) == [{"a": 1}, {"a": "x" * 100}]
    with pytest.raises(UserError, match=f"^{path}:2: line longer than 50 bytes") as err:
        read_jsonl(path, max_line_bytes=50)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=":2: line longer than 50 bytes"):
        list(read_lines(path, max_line_bytes=50))


def test_the_rtlcoder_reader_is_bounded_too(tmp_path, monkeypatch):
    import tasks.jsonl
    path = raw_jsonl(tmp_path / "d.jsonl", [{"instruction": "x", "output": AND * 10}])
    monkeypatch.setattr(tasks.jsonl, "MAX_LINE_BYTES", 64)
    with pytest.raises(UserError, match="d.jsonl:1: line longer than 64 bytes"):
        read_examples(path)


def test_a_line_exactly_at_the_bound_is_read(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a": "xx"}\n{"a": "yy"}')   # 11 bytes each, the last one without its newline
    assert read_jsonl(path, max_line_bytes=11) == [{"a": "xx"}, {"a": "yy"}]


def test_written_rows_round_trip_lone_surrogates_and_breakers(tmp_path):
    rows = [{"c": "\ud800 \udfff"}, {"c": "é\u2028\x85"}]
    path = tmp_path / "r.jsonl"
    path.write_bytes("".join(map(dumps_line, rows)).encode("utf-8"))
    assert [value for _, value in iter_jsonl(path)] == rows
    assert "é" in path.read_text(encoding="utf-8")  # readable UTF-8 where it can be
