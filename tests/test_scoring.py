"""Candidate scoring: every rule of the paper's score, unscorable candidates, functional mode, stats."""
from __future__ import annotations

import pytest

from harness.objective.scoring import ScoreConfig, score_groups, score_stats
from tasks.records import TrainingRecord
from tasks.rouge import rouge_l
from verilog_tools import status as st
from verilog_tools.errors import UserError



@pytest.fixture
def icarus():
    return pytest.importorskip("verilog_tools.icarus", reason="verilog_tools.icarus not written yet")


HEADER = "module top_module(input a, input b, output y);"
REFERENCE = HEADER + "\n  assign y = a & b;\nendmodule\n"
CLOSE = HEADER + "\n  wire t = a;\n  assign y = t | b;\nendmodule\n"
MULTI = HEADER + "\n  assign y = a;\nendmodule\nmodule extra(input x); endmodule\n"
BROKEN = HEADER + "\n  assign y = a &;\nendmodule\n"
TESTBENCH = """
module tb;
  reg a, b; wire y; integer errors = 0, n = 0, i;
  top_module dut(.a(a), .b(b), .y(y));
  initial begin
    for (i = 0; i < 4; i = i + 1) begin
      {a, b} = i; #1; n = n + 1;
      if (y !== (a & b)) errors = errors + 1;
    end
    $display("Mismatches: %0d in %0d samples", errors, n);
  end
endmodule
"""


def _record(rid="r1", testbench=None):
    return TrainingRecord(id=rid, instruction="AND gate", header=HEADER, reference=REFERENCE, source="test",
                          testbench=testbench, top="tb" if testbench else None,
                          dut_module="top_module" if testbench else None)


def _by_text(row):
    return {c["text"].strip(): c for c in row["candidates"]}


def test_paper_scores(icarus):
    cfg = ScoreConfig()
    fenced = "Here you go:\n```verilog\n" + CLOSE + "```\n"
    (row,) = score_groups([_record()], [[fenced, MULTI, BROKEN, "I cannot help with that."]], cfg)
    assert [c["source"] for c in row["candidates"]] == ["model"] * 4 + ["reference"]
    close, multi, broken, prose, ref = row["candidates"]
    assert close["status"] == "ok" and close["syntax_ok"] is True
    assert close["score"] == close["rouge_l"] == pytest.approx(rouge_l(REFERENCE, close["text"]), abs=1e-12)
    assert 0 < close["score"] < 1 and "```" not in close["text"]
    assert multi["score"] == -1.0 and multi["modules"] == 2 and multi["status"] == "multi_module"
    assert broken["score"] == 0.0 and broken["syntax_ok"] is False and broken["status"] != st.INFRA_ERROR
    assert prose["score"] == 0.0 and prose["status"] == st.NO_CODE
    assert ref["score"] == 1.0 and ref["text"] == REFERENCE
    custom = ScoreConfig(multi_module_score=-2.0, syntax_fail_score=-0.5, reference_score=3.0)
    (row,) = score_groups([_record()], [[MULTI, BROKEN]], custom)
    assert [c["score"] for c in row["candidates"]] == [-2.0, -0.5, 3.0]
    # no-filter ablation: a multi-module candidate is checked and scored like any other
    (row,) = score_groups([_record()], [[MULTI]], ScoreConfig(multi_module_penalty=False))
    multi = row["candidates"][0]
    assert multi["modules"] == 2 and multi["status"] == "ok" and multi["syntax_ok"] is True
    assert multi["score"] == pytest.approx(rouge_l(REFERENCE, multi["text"]), abs=1e-12)


def test_tool_failure_is_unscorable_not_zero(icarus, monkeypatch):
    real = icarus.check_syntax_many

    def flaky(codes, workers):
        results = real(codes, workers)
        return [icarus.SyntaxResult(ok=False, status=st.INFRA_ERROR, log="iverilog vanished", cpu_seconds=0.0)
                if "t | b" in code else res for code, res in zip(codes, results)]

    monkeypatch.setattr(icarus, "check_syntax_many", flaky)
    (row,) = score_groups([_record()], [[CLOSE, REFERENCE]], ScoreConfig())
    crashed, fine, _ = row["candidates"]
    assert crashed["score"] is None and crashed["status"] == st.INFRA_ERROR
    assert fine["score"] == pytest.approx(1.0)
    stats = score_stats([row])
    assert stats["unscorable"] == 1 and stats["score_histogram"]["none"] == 1


def test_functional_mode_rewards_passing_and_scales_failing(icarus):
    cfg = ScoreConfig(mode="functional")
    records = [_record(testbench=TESTBENCH), _record("r2")]
    rows = score_groups(records, [[REFERENCE, CLOSE, MULTI], [CLOSE]], cfg, workers=2)
    passing, failing, multi, _ = rows[0]["candidates"]
    assert passing["status"] == st.PASS and passing["score"] == 1.0
    assert failing["status"] == st.MISMATCH
    assert failing["score"] == pytest.approx(0.9 * rouge_l(REFERENCE, failing["text"]))
    assert multi["score"] == -1.0
    no_tb = rows[1]["candidates"][0]  # no testbench: paper score
    assert no_tb["status"] == "ok" and no_tb["score"] == pytest.approx(rouge_l(REFERENCE, no_tb["text"]))
    assert score_stats(rows, records, cfg)["functional_unavailable"] == 1


def test_stats(icarus):
    rows = score_groups([_record(), _record("r2")], [[CLOSE, MULTI], [BROKEN, REFERENCE]], ScoreConfig())
    stats = score_stats(rows)
    assert stats["sampled"] == 4 and stats["groups"] == 2
    assert stats["syntax_valid_rate"] == 0.5 and stats["multi_module_rate"] == 0.25
    assert stats["mean_rouge_l"] == pytest.approx((rouge_l(REFERENCE, CLOSE) + 1.0) / 2, abs=1e-6)
    assert stats["score_histogram"] == {"-1.0": 1, "0.0": 1, f"{rouge_l(REFERENCE, CLOSE):.1f}": 1, "1.0": 1}


def test_config_validation():
    with pytest.raises(UserError, match="mode"):
        ScoreConfig(mode="vibes")
    with pytest.raises(UserError, match="functional_scale"):
        ScoreConfig(functional_scale=float("nan"))
