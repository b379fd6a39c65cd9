"""Evaluation on real VerilogEval v1 problems with real iverilog: verdicts, dedup, pass@k, outputs."""
from __future__ import annotations

import csv
import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest

from tasks import evaluate as ev
from tasks.reports import write_outcome
from tasks.samples import read_samples, reference_samples
from tasks.verilog_eval import load_v1, load_v1_jsonl
from verilog_tools import status as st
from verilog_tools.errors import UserError
from verilog_tools.icarus import TB_TIMEOUT_REASON, SimResult
from verilog_tools.runner import Limits
from verilog_tools.tools import ICARUS_11_FAILURES

FEW = ("zero", "notgate", "andgate", "vector4", "count15")


@pytest.fixture(scope="module")
def few(v1_dir):
    by_id = {p.task_id: p for p in load_v1(v1_dir, "human")}
    return [by_id[t] for t in FEW]


def _sample(task_id, completion, cid=None):
    row = {"task_id": task_id, "completion": completion}
    if cid is not None:
        row["completion_id"] = cid
    return row


def test_reference_and_wrong_completions(few):
    samples = reference_samples(few) + [
        _sample("zero", "\tassign zero = 1'b1;\nendmodule\n", 1),               # wrong value
        _sample("notgate", "```verilog\nassign out = in;\nendmodule\n```", 1),   # fenced, wrong
        _sample("andgate", "assign out = a &;\nendmodule\n", 1),                 # syntax error
        _sample("vector4", "Sorry, I cannot help with that.", 1),               # no code
        _sample("count15", "\talways @(posedge clk)\n\t\tif (reset) q <= 0;\n\t\telse q <= q + 2;\nendmodule\n", 1),
    ]
    out = ev.evaluate(few, samples, workers=2, ks=(1, 2, 5), progress=False)
    by_key = {(r["task_id"], r["completion_id"]): r for r in out.results}
    assert all(by_key[(t, 0)]["status"] == st.PASS for t in FEW)
    assert by_key[("zero", 1)]["status"] == st.MISMATCH and by_key[("zero", 1)]["mismatches"] > 0
    assert by_key[("notgate", 1)]["status"] == st.MISMATCH
    assert by_key[("andgate", 1)]["status"] in (st.SYNTAX_ERROR, st.COMPILE_ERROR)
    assert by_key[("vector4", 1)]["status"] == st.NO_CODE
    assert by_key[("count15", 1)]["status"] == st.MISMATCH
    m = out.metrics
    assert m["pass_at_k"] == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(1.0)}
    assert m["ks_skipped"] == [5] and m["n"] == 2
    assert m["status_counts"][st.PASS] == 5 and m["reference_failures"] == []
    assert m["tool_cpu_seconds"] > 0 and m["wall_seconds"] > 0


def test_identical_designs_are_simulated_once(few):
    """The key is the exact canonical text: the same bytes (CRLF counted as LF) share one simulation; a
    design that differs only in a comment is another text and is simulated on its own."""
    body = few[0].reference_completion()
    wrong = "\tassign zero = 1'b1;\nendmodule\n"
    samples = [_sample("zero", body), _sample("zero", "// same design\n" + body),
               _sample("zero", wrong), _sample("zero", wrong.replace("\n", "\r\n"))]
    out = ev.evaluate(few[:1], samples, workers=1, progress=False)
    assert out.metrics["simulations"] == 3  # the reference (shared with sample 0), the commented copy, one wrong design
    assert [r["status"] for r in out.results] == [st.PASS, st.PASS, st.MISMATCH, st.MISMATCH]
    assert [bool(r.get("deduplicated")) for r in out.results] == [True, False, False, True]


def test_expected_samples_come_from_the_reference(few, monkeypatch):
    calls = []
    real = ev.simulate

    def spy(design, testbench, **kw):
        calls.append(kw["expected_samples"])
        return real(design, testbench, **kw)
    monkeypatch.setattr(ev, "simulate", spy)
    wrong = [_sample("zero", "\tassign zero = 1'b1;\nendmodule\n")]
    ev.evaluate(few[:1], wrong, workers=1, progress=False)
    assert calls[0] is None and isinstance(calls[1], int) and calls[1] > 0


def _reference_runs(monkeypatch) -> list:
    """Spy: the designs simulated as references (expected_samples None) by every later evaluate()."""
    calls, real = [], ev.simulate

    def spy(design, testbench, **kw):
        if kw["expected_samples"] is None:
            calls.append(design)
        return real(design, testbench, **kw)
    monkeypatch.setattr(ev, "simulate", spy)
    return calls


def test_reference_verdicts_are_kept_across_evaluations(few, tmp_path, monkeypatch):
    """A second evaluation with the same cache simulates no reference and gives the same verdicts; a
    changed testbench or other limits is another key; the variable is the default folder."""
    calls = _reference_runs(monkeypatch)
    samples = reference_samples(few) + [_sample("zero", "\tassign zero = 1'b1;\nendmodule\n", 1)]
    first = ev.evaluate(few, samples, workers=2, progress=False, reference_cache=tmp_path / "refs")
    assert len(calls) == 5 and len(list((tmp_path / "refs").glob("*.json"))) == 5
    assert first.metrics["reference_cache_hits"] == 0 and first.metrics["simulations"] == 6
    monkeypatch.setenv(ev.REFERENCE_CACHE_ENV, str(tmp_path / "refs"))
    again = ev.evaluate(few, samples, workers=2, progress=False)
    assert len(calls) == 5 and again.metrics["reference_cache_hits"] == 5 and again.metrics["simulations"] == 1
    strip = lambda out: [{k: v for k, v in r.items() if k != "seconds"} for r in out.results]  # noqa: E731
    assert strip(again) == strip(first) and again.metrics["pass_at_k"] == first.metrics["pass_at_k"]
    assert again.metrics["tool_cpu_seconds"] < first.metrics["tool_cpu_seconds"]
    # a sample identical to a cached passing reference still shares its verdict
    assert next(r for r in again.results if r["task_id"] == "zero" and r["completion_id"] == 0)["deduplicated"]
    changed = dataclasses.replace(few[0], testbench=few[0].testbench + "\n")
    ev.evaluate([changed], reference_samples([changed]), workers=1, progress=False)
    ev.evaluate(few[:1], reference_samples(few[:1]), workers=1, progress=False, limits=Limits(wall_seconds=9))
    assert len(calls) == 7
    assert ev.evaluate(few[:1], reference_samples(few[:1]), workers=1, progress=False,
                       reference_cache=False).metrics["reference_cache_hits"] is None and len(calls) == 8
    monkeypatch.delenv(ev.REFERENCE_CACHE_ENV)
    assert ev.evaluate(few[:1], reference_samples(few[:1]), workers=1, progress=False).metrics[
        "reference_cache_hits"] is None and len(calls) == 9
    # another verifier (a changed rule in verilog_tools) never meets the old verdicts
    monkeypatch.setattr(ev, "verifier_source_hash", lambda: "another verifier")
    ev.evaluate(few[:1], reference_samples(few[:1]), workers=1, progress=False, reference_cache=tmp_path / "refs")
    assert len(calls) == 10


def test_a_reference_cache_keeps_only_load_free_verdicts_and_trusts_no_stray_file(few, tmp_path, monkeypatch):
    cache = ev.ReferenceCache(tmp_path, limits=None, simulator="12.0 (stable)", containment="bwrap")
    verdict = lambda status, log="": SimResult(status, status == st.PASS, 0, 5, 0.1, 0.05, log)  # noqa: E731
    for status in (st.TIMEOUT, st.RUNTIME_ERROR, st.INFRA_ERROR, st.REJECTED, st.COMPILE_ERROR, st.SYNTAX_ERROR):
        cache.put(f"k-{status}", verdict(status))
    clean_timeout = verdict(st.TIMEOUT, f"[timeout] {TB_TIMEOUT_REASON}")
    assert clean_timeout.clean_tb_timeout
    cache.put("k-clean-timeout", clean_timeout)
    # a kill at a time or resource limit depends on the machine's load, and a killed compiler or a
    # testbench timeout can look like an ordinary verdict: only a simulation run to its end is kept
    assert list(tmp_path.iterdir()) == []
    cache.put("k-mismatch", verdict(st.MISMATCH))
    assert cache.get("k-mismatch") == verdict(st.MISMATCH) and cache.hits == 1
    cache.put("k-pass", verdict(st.PASS))
    assert cache.get("k-pass") == verdict(st.PASS) and cache.hits == 2
    (tmp_path / "k-other.json").write_text((tmp_path / "k-pass.json").read_text())  # copied under another key
    (tmp_path / "k-torn.json").write_text('{"key": "k-torn", "status": "pa')
    assert cache.get("k-other") is None and cache.get("k-torn") is None and cache.get("k-absent") is None
    calls = _reference_runs(monkeypatch)
    ev.evaluate(few[:1], reference_samples(few[:1]), workers=1, progress=False, reference_cache=tmp_path)
    [entry] = [p for p in tmp_path.glob("*.json") if not p.stem.startswith("k-")]
    entry.write_text("not json")   # a torn entry is simulated again and written anew
    again = ev.evaluate(few[:1], reference_samples(few[:1]), workers=1, progress=False, reference_cache=tmp_path)
    assert again.metrics["reference_cache_hits"] == 0 and len(calls) == 2
    assert json.loads(entry.read_text())["status"] == st.PASS


def test_ids_checked(few):
    with pytest.raises(UserError, match="not in the benchmark: 'nope'"):
        ev.evaluate(few, reference_samples(few) + [_sample("nope", "x")], progress=False)
    with pytest.raises(UserError, match="4 problem\\(s\\) have no samples"):
        ev.evaluate(few, reference_samples(few[:1]), progress=False)


def test_allow_missing_counts_failures(few):
    out = ev.evaluate(few[:2], reference_samples(few[:1]), workers=1, allow_missing=True, progress=False)
    assert out.metrics["missing_problems"] == ["notgate"]
    assert out.metrics["pass_at_k"]["pass@1"] == pytest.approx(0.5)


def test_upstream_example_scores_one_half(v1_dir, tmp_path):
    example = v1_dir / "data" / "example"
    problems = load_v1_jsonl(example / "ExampleEval.jsonl", example / "ExampleDescriptions.jsonl")
    samples = read_samples(example / "ExampleSolution.jsonl")
    out = ev.evaluate(problems, samples, workers=2, ks=(1,), progress=False)
    assert out.metrics["pass_at_k"]["pass@1"] == pytest.approx(0.5)
    upstream = [json.loads(line)["passed"] for line in open(example / "ExampleSolution.jsonl_reference.jsonl")]
    assert [r["passed"] for r in out.results] == upstream

    names = write_outcome(out, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    rows = list(csv.DictReader(open(tmp_path / "problems.csv")))
    assert [(r["task_id"], r["n"], r["c"]) for r in rows] == [("gatesv", "2", "1"), ("vector4", "2", "1"),
                                                              ("zero", "2", "1")]
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert len(read_samples(tmp_path / "results.jsonl")) == 6


@pytest.mark.slow
def test_reference_self_check_all_v1_human(v1_dir):
    problems = load_v1(v1_dir, "human")
    out = ev.evaluate(problems, reference_samples(problems), ks=(1,), progress=False)
    failed = {r["task_id"] for r in out.results if r["status"] != st.PASS}
    refs = {r["task_id"] for r in out.metrics["reference_failures"]}
    if out.metrics["simulator"].startswith("11."):
        assert failed == refs == set(ICARUS_11_FAILURES)
    else:
        assert failed == refs == set()


def test_read_samples_ids_and_line_numbered_errors(tmp_path):
    path = tmp_path / "s.jsonl"

    def write(*rows):
        path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
        return path
    rows = read_samples(write({"task_id": "a", "completion": "x", "completion_id": 0},
                              {"task_id": "a", "completion": "y"}, "\n", {"task_id": "b", "completion": "z"}))
    assert [(r["task_id"], r["completion_id"]) for r in rows] == [("a", 0), ("a", 1), ("b", 0)]
    bad = {
        r"s\.jsonl:2: missing field 'completion'": ({"task_id": "a", "completion": ""}, {"task_id": "a"}),
        r"s\.jsonl:1: field 'completion' must be a string": ({"task_id": "a", "completion": 3},),
        r"s\.jsonl:1: expected a JSON object": ("[1, 2]\n",),
        r"s\.jsonl:2: duplicate completion_id 4 for task 'a' \(first at line 1\)":
            ({"task_id": "a", "completion": "", "completion_id": 4},) * 2,
    }
    for message, rows in bad.items():
        with pytest.raises(UserError, match=message) as err:
            read_samples(write(*rows))
        assert "\n" not in str(err.value)
    path.write_bytes(b'{"task_id": "a", "completion": "x"}\n{"task_id": "\xff"}\n')
    with pytest.raises(UserError, match=r"s\.jsonl:2: not valid UTF-8"):
        read_samples(path)


def test_v2_whole_module_completions(v2_dir):
    from tasks.verilog_eval import load_v2
    problems = [p for p in load_v2(v2_dir, "spec-to-rtl") if p.task_id in ("Prob001_zero", "Prob004_vector2")]
    fenced = ("Here is the design:\n```verilog\nmodule TopModule (input [31:0] in, output [31:0] out);\n"
              "  assign out = {in[7:0], in[15:8], in[23:16], in[31:24]};\nendmodule\n```\nHope it helps.")
    samples = reference_samples(problems) + [
        _sample("Prob004_vector2", fenced, 1),
        _sample("Prob004_vector2", "assign out = in;\n", 2),       # body only: the header is put in front
        _sample("Prob001_zero", "module Other(output zero); assign zero = 0; endmodule", 1),
    ]
    out = ev.evaluate(problems, samples, workers=2, ks=(1,), progress=False)
    got = {(r["task_id"], r["completion_id"]): r["status"] for r in out.results}
    assert got[("Prob001_zero", 0)] == got[("Prob004_vector2", 0)] == got[("Prob004_vector2", 1)] == st.PASS
    assert got[("Prob004_vector2", 2)] == st.MISMATCH
    assert got[("Prob001_zero", 1)] in (st.COMPILE_ERROR, st.SYNTAX_ERROR)  # no TopModule defined
