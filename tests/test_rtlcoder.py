"""Readers, fetch and cleaning of RTLCoder-style data (tasks.rtlcoder)."""
from __future__ import annotations

import io
import json
import urllib.error

import pytest

from tasks import rtlcoder
from tasks.rtlcoder import RawExample, clean_examples, fetch_resyn27k, read_examples, read_source
from verilog_tools.errors import UserError

AND = "module and2(input a, input b, output y);\n  assign y = a & b;\nendmodule\n"
OR = "module or2(input a, input b, output y);\n  assign y = a | b;\nendmodule\n"


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_reads_resyn_jsonl_with_and_without_input(tmp_path):
    path = write_lines(tmp_path / "Resyn27k.json", [
        {"Instruction": "Make an AND gate.", "Input": "module and2(input a, input b, output y);",
         "Response": [AND, "ignored second response"]},
        {"Instruction": "Make an OR gate.", "Response": [OR]},
    ])
    result = read_examples(path)
    assert result.malformed == 0
    assert [e.response for e in result.examples] == [AND, OR]
    assert result.examples[0].header == "module and2(input a, input b, output y);"
    assert result.examples[1].header == ""
    assert {e.source for e in result.examples} == {rtlcoder.RESYN_SOURCE}


def test_reads_resyn_json_array(tmp_path):
    path = tmp_path / "Resyn27k.json"
    path.write_text(json.dumps([{"Instruction": "AND", "Input": "", "Response": [AND]},
                                {"Instruction": "OR", "Input": "", "Response": [OR]}], indent=2))
    result = read_examples(path)
    assert [e.instruction for e in result.examples] == ["AND", "OR"]


def test_reads_instruction_output_format(tmp_path):
    path = write_lines(tmp_path / "small.jsonl", [{"instruction": "\n\nAND gate\n", "output": AND}])
    (example,) = read_examples(path).examples
    assert example == RawExample("AND gate", AND, "", rtlcoder.INSTRUCT_SOURCE, "small.jsonl:1")


def test_malformed_rows_are_counted_not_fatal(tmp_path):
    path = write_lines(tmp_path / "mixed.jsonl", [
        {"instruction": "good", "output": AND},
        '{"instruction": "truncated", "outp',             # bad JSON
        {"instruction": "no output"},                      # missing field
        {"instruction": 3, "output": AND},                 # wrong type
        {"instruction": "   ", "output": AND},             # empty instruction
        {"Instruction": "other format", "Response": [OR]},  # not this file's format
        "[1, 2]",                                          # not an object
        "",
        {"instruction": "also good", "output": OR},
    ])
    result = read_examples(path)
    assert [e.instruction for e in result.examples] == ["good", "also good"]
    assert result.malformed == 6


def test_resyn_wrong_types_are_malformed(tmp_path):
    path = write_lines(tmp_path / "r.jsonl", [
        {"Instruction": "ok", "Response": [AND]},
        {"Instruction": "str response", "Response": AND},
        {"Instruction": "empty list", "Response": []},
        {"Instruction": "int header", "Input": 5, "Response": [AND]},
        {"Instruction": "non-str response", "Response": [None]},
    ])
    result = read_examples(path)
    assert len(result.examples) == 1 and result.malformed == 4


@pytest.mark.parametrize("name, content", [
    ("data.csv", b"instruction,output\nmake an and gate,module x; endmodule\n"),
    ("data.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    ("data.json", b"[{\"instruction\": \"x\", \"output\": \"y\"},"),
    ("data.jsonl", b"{not json at all\n{nor this\n"),
    ("data.jsonl", b"{\"prompt\": \"x\", \"completion\": \"y\"}\n"),
])
def test_non_json_file_is_one_line_user_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        read_examples(path)
    message = str(info.value)
    assert str(path) in message and "accepted" in message and "\n" not in message


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_source(tmp_path / "nope.jsonl")
    with pytest.raises(UserError, match="no .json or .jsonl"):
        read_source(tmp_path)


def test_directory_reads_files_in_name_order(tmp_path):
    write_lines(tmp_path / "b.jsonl", [{"instruction": "B", "output": OR}])
    write_lines(tmp_path / "a.jsonl", [{"instruction": "A", "output": AND}])
    result = read_source(tmp_path)
    assert [e.instruction for e in result.examples] == ["A", "B"]
    assert [p.rsplit("/", 1)[-1] for p in result.files] == ["a.jsonl", "b.jsonl"]


def test_reads_real_rtlcoder_small(rtlcoder_dir):
    sizes = {}
    for name in ("randomized_filtered_data_7b.jsonl", "randomized_filtered_data_fixed.jsonl"):
        result = read_examples(rtlcoder_dir / name)
        assert result.malformed == 0
        sizes[name] = len(result.examples)
    assert sizes == {"randomized_filtered_data_7b.jsonl": 1310, "randomized_filtered_data_fixed.jsonl": 1339}


def raw(instruction, response, header=""):
    return RawExample(instruction, response, header, "rtlcoder", "t:1")


def test_clean_extracts_code_and_drops_non_verilog():
    fenced = f"Here is the design:\n```verilog\n{AND}```\nIt ANDs the inputs."
    kept, counts = clean_examples([raw("fenced", fenced), raw("prose", "I cannot do that."),
                                   raw("empty", "   ")])
    assert counts == {"empty_or_non_verilog": 2, "duplicates": 0}
    (example,) = kept
    assert example.reference.strip() == AND.strip()
    assert example.header.startswith("module and2") and example.header.rstrip().endswith(";")
    assert example.modules == 1


def test_clean_drops_duplicates_up_to_case_whitespace_and_comments():
    commented = AND.replace("assign", "// the gate\n  assign")
    kept, counts = clean_examples([raw("Make an AND gate.", AND), raw("make  an AND\ngate.", commented),
                                   raw("Make an AND gate.", OR)])
    assert counts["duplicates"] == 1
    assert [e.reference for e in kept] == [AND, OR]


def test_module_count_survives_tricky_text():
    tricky = ('// module not_a_module(input x); endmodule\n'
              'module top(input a, output y);\n'
              '  /* module fake; endmodule */\n'
              '  initial $display("module in a string endmodule");\n'
              '  assign y = a;\nendmodule\n')
    glued = AND.rstrip() + " " + OR  # "endmodule module or2(...)" on one line
    kept, _ = clean_examples([raw("tricky", tricky), raw("glued", glued), raw("two", AND + "\n" + OR)])
    assert [e.modules for e in kept] == [1, 2, 2]


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fetch_offline_is_user_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(rtlcoder.urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match=r"cannot download Resyn27k \(no route to host\); pass a local "
                                        r"copy with DATA=path/to/Resyn27k.json"):
        fetch_resyn27k(tmp_path)


def test_fetch_trusts_first_download_then_checks_hash(tmp_path, monkeypatch):
    payloads = [b'{"Instruction": "x", "Response": ["y"]}\n']
    urls = []

    def serve(url, timeout):
        urls.append(url)
        return _Response(payloads[0])

    monkeypatch.setattr(rtlcoder.urllib.request, "urlopen", serve)
    monkeypatch.setattr(rtlcoder, "RESYN27K_SHA256", None)
    path = fetch_resyn27k(tmp_path)
    assert path.read_bytes() == payloads[0]
    assert urls == [rtlcoder.RESYN27K_URL] and rtlcoder.RESYN27K_COMMIT in urls[0]
    assert (tmp_path / "Resyn27k.json.sha256").read_text().strip() == rtlcoder._sha256(payloads[0])
    assert fetch_resyn27k(tmp_path) == path and len(urls) == 1       # cache hit, no network
    path.write_bytes(b"tampered")                                    # cache no longer matches
    payloads[0] = b"upstream changed"
    with pytest.raises(UserError, match="sha256"):
        fetch_resyn27k(tmp_path)


def test_fetch_checks_pinned_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(rtlcoder.urllib.request, "urlopen", lambda url, timeout: _Response(b"data"))
    monkeypatch.setattr(rtlcoder, "RESYN27K_SHA256", "0" * 64)
    with pytest.raises(UserError, match="expected 0000"):
        fetch_resyn27k(tmp_path)
    assert not (tmp_path / "Resyn27k.json").exists()
