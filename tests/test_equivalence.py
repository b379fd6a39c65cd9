"""SCORE=equivalence: the differential testbench (tasks.difftb), group scoring (tasks.equivalence), its use in
harness.objective.scoring, the paper's live rules (training stop rule, -1 for multi-module samples) and the
code-aware Rouge-L. Default-suite tests use a handful of designs; the calibration floors on whole sets
are the slow tests at the end (figures in BENCHMARKS.md)."""
from __future__ import annotations

import random

import pytest

from harness.objective.scoring import ScoreConfig, score_groups, score_stats
from tasks import difftb
from tasks.equivalence import check_group
from tasks.ports import read_interface, rename_modules
from tasks.records import TrainingRecord
from tasks.rewrites import REWRITES
from tasks.rouge import rouge_l
from tasks.synthetic.mutate import mutate
from verilog_tools import status as st

COUNTER = """module counter(input clk, input rst_n, input en, output reg [3:0] q, output wrap);
  always @(posedge clk or negedge rst_n)
    if (!rst_n) q <= 4'd0;
    else if (en) q <= q + 4'd1;
  assign wrap = en & (q == 4'd15);
endmodule
"""
ADDER = """module add(input [7:0] a, input [7:0] b, output [8:0] s);
  assign s = a + b;
endmodule
"""


@pytest.fixture(scope="module")
def icarus():
    return pytest.importorskip("verilog_tools.icarus")


def test_ports_and_roles_come_from_slang():
    iface = read_interface("module m #(parameter W = 3)(input CLK, input reset_n, input [W-1:0] d,\n"
                           "  output reg [W:0] q); always @(posedge CLK) q <= d; endmodule")
    assert [(p.name, p.direction, p.width) for p in iface.ports] == [
        ("CLK", "input", 1), ("reset_n", "input", 1), ("d", "input", 3), ("q", "output", 4)]
    roles = difftb.recognise_roles(iface)
    assert (roles.clock, roles.reset, roles.reset_active_low) == ("CLK", "reset_n", True)
    # used as an edge, not named like a clock; an active-high reset by use
    roles = difftb.recognise_roles(read_interface(
        "module m(input tick, input clear, input d, output reg q);\n"
        "always @(posedge tick or posedge clear) if (clear) q <= 0; else q <= d; endmodule"))
    assert (roles.clock, roles.reset, roles.reset_active_low) == ("tick", "clear", False)
    assert difftb.recognise_roles(read_interface(ADDER)).clock is None


def test_variables_come_from_slang_through_instances_and_named_blocks():
    from tasks.ports import read_variables

    code = ("module sub(input c, output reg [2:0] r); reg [1:0] mem [0:3]; always @(posedge c) r <= r + 1; endmodule\n"
            "module top(input clk, output [2:0] z); reg [0:7] a; integer i; real x; wire w; bit b2;\n"
            "  sub u1(.c(clk), .r(z));\n  genvar g; for (g = 0; g < 2; g = g + 1) begin : gb reg t; end\n"
            "  always @(posedge clk) begin : blk reg inner; inner <= 1; end\nendmodule")
    found = {(v.path, v.width, v.words) for v in read_variables(code, "top")}
    assert found == {("a", 8, None), ("i", 32, None), ("u1.r", 3, None), ("u1.mem", 2, (0, 3)),
                     ("gb[0].t", 1, None), ("gb[1].t", 1, None), ("blk.inner", 1, None)}


def test_rename_uses_the_parsed_names_only():
    code = "module a(input x, output y); b u(.p(x), .q(y)); endmodule : a\nmodule b(input p, output q);\n" \
           "wire a_b = p; // module b\nassign q = a_b; endmodule"
    renamed = rename_modules(code, {"a": "A1", "b": "B1"})
    assert "module A1" in renamed and "endmodule : A1" in renamed and "B1 u(" in renamed
    assert "wire a_b" in renamed and "// module b" in renamed and "module B1" in renamed


def test_per_slot_verdicts_are_parsed_strictly():
    lines = ["Mismatches: 0 in 512 samples of slot 0", "Mismatches: 512 in 512 samples of slot 1",
             "Mismatches: 3 in 512 samples of slot 2", "Mismatches: 515 in 1536 samples"]
    assert difftb.parse_slot_counts(lines, 512, 3, 515) == [0, 512, 3]
    assert difftb.parse_slot_counts(lines, 512, 3, 514) is None          # sum differs from the verdict
    assert difftb.parse_slot_counts(lines, 512, 4, 515) is None          # a slot has no line
    assert difftb.parse_slot_counts(lines[1:2] + lines[:1] + lines[2:], 512, 3, 515) is None   # order
    assert difftb.parse_slot_counts(lines[:1] + lines, 512, 3, 515) is None                     # repeated
    assert difftb.parse_slot_counts(["Mismatches: 600 in 512 samples of slot 0"], 512, 1, 600) is None
    assert difftb.parse_slot_counts(["Mismatches: 1 in 512 samples of slot 0 x"], 512, 1, 1) is None


def test_many_slots_keep_exact_counts(icarus):
    """One run of 40 candidates: every count comes back on its own line, none packed into another."""
    mutants = [ADDER.replace("a + b", f"a + b + 8'd{k}") for k in range(1, 40)]
    result = check_group(ADDER, [ADDER, *mutants], module="add")
    assert result.simulations == 1 and result.grouped
    assert result.verdicts[0].status == st.PASS
    assert all(v.status == st.MISMATCH and 0 < v.mismatches <= v.samples for v in result.verdicts[1:])


def test_group_scores_self_mutants_and_rewrites(icarus):
    rng = random.Random(0)
    for reference, top in ((COUNTER, "counter"), (ADDER, "add")):
        mutants = [m for m in (mutate(reference, rng) for _ in range(6)) if m and m != reference][:3]
        rewrites = [r for r in (fn(reference) if name in ("reformat", "swap_operands") else fn(reference, top)
                                for name, fn in REWRITES.items()) if r and r != reference]
        result = check_group(reference, [reference, *rewrites, *mutants], module=top)
        assert result.excluded is None and result.simulations == 1
        statuses = [v.status for v in result.verdicts]
        assert statuses[:1 + len(rewrites)] == [st.PASS] * (1 + len(rewrites))
        assert all(s == st.MISMATCH for s in statuses[1 + len(rewrites):]), (top, statuses)


def test_a_candidate_that_breaks_the_group_run_falls_back_to_single_runs(icarus):
    wrong_ports = ADDER.replace("input [7:0] b", "input [7:0] c").replace("a + b", "a + c")
    result = check_group(ADDER, [ADDER, wrong_ports, ADDER.replace("a + b", "a - b")], module="add")
    assert not result.grouped and result.excluded is None
    assert [v.status for v in result.verdicts] == [st.PASS, st.COMPILE_ERROR, st.MISMATCH]
    assert 0 < result.verdicts[2].match_fraction < 1


def test_unusable_references_are_excluded_with_a_reason(icarus):
    no_outputs = check_group("module m(input a); endmodule", ["module m(input a); endmodule"])
    assert "no outputs" in no_outputs.excluded
    undriven = "module m(input [3:0] a, output [3:0] y); endmodule"
    result = check_group(undriven, [undriven])
    assert "even from a zero start" in result.excluded and result.verdicts == [None]
    two_drivers = "module m(input a, output y); assign y = a; assign y = ~a; endmodule"
    assert "even from a zero start" in check_group(two_drivers, [two_drivers]).excluded
    never_runs = "module m(output reg y); always @* y = 1'b1; endmodule"
    assert "no inputs" in check_group(never_runs, [never_runs]).excluded


NO_RESET = "module c(input clk, input en, output reg [3:0] q); always @(posedge clk) if (en) q <= q + 4'd1; endmodule"


def test_a_reference_without_reset_is_compared_from_a_zero_start(icarus):
    """Auto start: X first; outputs never defined, so every variable of both sides starts at 0. A
    candidate's own initial value still counts: 0 is equivalent, 1 is not."""
    init = "module c(input clk, input en, output reg [3:0] q); initial q = 4'd{};\n" \
           "  always @(posedge clk) if (en) q <= q + 4'd1; endmodule"
    candidates = [NO_RESET, init.format(0), init.format(1), NO_RESET.replace("q + 4'd1", "q + 4'd2"),
                  # the same counter behind an output driven by a continuous assignment to a variable
                  "module c(input clk, input en, output reg [3:0] q); reg [3:0] n; assign q = n;\n"
                  "  always @(posedge clk) if (en) n <= n + 4'd1; endmodule"]
    result = check_group(NO_RESET, candidates, module="c")
    assert result.excluded is None and result.zero_start and result.simulations == 2
    assert [v.status for v in result.verdicts] == [st.PASS, st.PASS, st.MISMATCH, st.MISMATCH, st.PASS]
    x_start = check_group(NO_RESET, [NO_RESET], module="c", cfg=difftb.StimulusConfig(start="x"))
    assert "X/Z" in x_start.excluded


def test_a_zero_start_the_testbench_cannot_compile_is_unscorable_not_wrong(icarus, monkeypatch):
    from tasks import equivalence
    from tasks.ports import Variable

    real = equivalence._Design.variables

    def bogus_for_candidates(self):   # as if slang listed a variable iverilog does not know
        return (Variable("no_such_reg", 1),) if self.top.startswith("itertl_c") else real(self)
    monkeypatch.setattr(equivalence._Design, "variables", bogus_for_candidates)
    result = check_group(NO_RESET, [NO_RESET], module="c")
    assert result.excluded is None and result.verdicts[0].status == st.INFRA_ERROR


def test_a_missing_reset_is_still_caught_when_the_reference_has_one(icarus):
    no_reset = COUNTER.replace("if (!rst_n) q <= 4'd0;\n    else if (en)", "if (en)")
    result = check_group(COUNTER, [COUNTER, no_reset], module="counter")
    assert not result.zero_start and [v.status for v in result.verdicts] == [st.PASS, st.MISMATCH]


def test_delays_have_the_same_time_unit_on_both_sides(icarus):
    delayed = "module d(input a, b, output y); wire t; assign #1 t = a & b; assign #1 y = ~t; endmodule"
    result = check_group(delayed, [delayed, "module d(input a, b, output y); assign y = ~(a & b); endmodule"])
    assert result.excluded is None and [v.status for v in result.verdicts] == [st.PASS, st.PASS]


def _record(reference, rid="r1"):
    header = reference.split(";")[0] + ";"
    return TrainingRecord(id=rid, instruction="build it", header=header, reference=reference, source="test")


def test_equivalence_mode_in_score_groups_and_the_multi_module_rule(icarus):
    rec = _record(ADDER)
    helper_first = ("```verilog\nmodule helper(input [7:0] x, output [7:0] y); assign y = x; endmodule\n"
                    + ADDER + "```")
    samples = [ADDER.replace("a + b", "b + a"), ADDER.replace("a + b", "a | b"), "module add(input [7:0] a, b, output [8:0] s); assign s = a + ; endmodule", helper_first]
    cfg = ScoreConfig(mode="equivalence")
    rows = score_groups([rec], [samples], cfg)
    cands = rows[0]["candidates"]
    assert [c["status"] for c in cands] == [st.PASS, st.MISMATCH, st.SYNTAX_ERROR, "multi_module", "reference"]
    assert cands[0]["score"] == 1.0 and cfg.equivalence_floor < cands[1]["score"] < cfg.equivalence_ceiling
    assert cands[2]["score"] == 0.0 and cands[3]["score"] == -1.0 and cands[4]["score"] == 1.0
    binary = score_groups([rec], [samples[:2]], ScoreConfig(mode="equivalence", equivalence_partial=False))
    assert [c["score"] for c in binary[0]["candidates"][:2]] == [1.0, 0.0]
    excluded = score_groups([_record("module add(input a); endmodule")], [["module add(input a); endmodule"]], cfg)
    assert excluded[0]["candidates"][0]["score"] is None
    assert "no outputs" in next(iter(score_stats(excluded, cfg=cfg)["equivalence_excluded"]))


def test_data_command_with_score_equivalence_lists_unusable_references(icarus, tmp_path):
    import json

    from harness.commands.data import main_data

    rows = [{"instruction": "Write an 8-bit adder.", "output": ADDER},
            {"instruction": "Write a stub.", "output": "module c(input [3:0] a, output [3:0] q); endmodule"}]
    data = tmp_path / "user.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "prepared"
    assert main_data(["--data", str(data), "--out", str(out), "--score", "equivalence", "--decontaminate", "0",
                      "--valid-fraction", "0"]) == 0
    excluded = json.loads((out / "equivalence_excluded.json").read_text())
    assert len(excluded) == 1 and "zero start" in next(iter(excluded.values()))


def test_training_sampling_keeps_text_after_endmodule():
    from harness.sample.sampling import SamplingConfig, training_sampling_config, truncate_at_fence

    cfg = training_sampling_config(num_samples=3)
    assert (cfg.stop_at_endmodule, cfg.stop_at_fence) == (False, True)
    assert SamplingConfig().stop_at_endmodule and not SamplingConfig().stop_at_fence   # evaluation's rule
    text = "```verilog\nmodule h; endmodule\nmodule top; endmodule\n```\nMore prose ```x```"
    assert truncate_at_fence(text) == text[:text.index("```\nMore") + 3]


def test_stop_after_fence_per_row():
    torch = pytest.importorskip("torch")
    from harness.sample.sampling import StopAfterFence

    class CharTokenizer:   # token id = character code
        def decode(self, ids, skip_special_tokens=True):
            return "".join(map(chr, ids))

        def batch_decode(self, rows, skip_special_tokens=True):
            return [self.decode(r) for r in rows]

    rows = ["P```v\nmodule a; endmodule\n```", "P```v\nmodule a; endmodule\nmod"]
    ids = torch.tensor([[ord(c) for c in r] for r in rows])
    assert StopAfterFence(CharTokenizer(), prompt_len=1)(ids, None).tolist() == [True, False]


def test_code_aware_rouge_sees_operators():
    ref = "module m(input a, b, output y); assign y = a & b; endmodule"
    mutant = ref.replace("&", "|")
    assert rouge_l(ref, mutant) == 1.0
    assert rouge_l(ref, mutant, "code") < 1.0
    assert rouge_l(ref, ref, "code") == 1.0


# ---- calibration floors on whole sets (figures and exception lists: BENCHMARKS.md) ----

@pytest.mark.slow
def test_calibration_floors_synthetic(icarus):
    from tasks.equivalence_calibration import mutants_caught, rewrites_pass, self_pass, synthetic_items

    items = synthetic_items()
    assert self_pass(items)["pass_rate_all"] == 1.0
    assert mutants_caught(items)["caught_rate"] >= 0.95
    assert rewrites_pass(items)["pass_rate"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["verilog-eval-v1-human", "verilog-eval-v2-spec-to-rtl"])
def test_calibration_floors_verilog_eval(icarus, v1_dir, v2_dir, bench):
    from tasks.equivalence_calibration import benchmark_items, mutants_caught, rewrites_pass, self_pass

    items = benchmark_items(bench)
    report = self_pass(items)
    assert report["pass_rate"] == 1.0 and report["excluded"] <= 3, report["exceptions"]
    assert mutants_caught(items)["caught_rate"] >= 0.95
    assert rewrites_pass(items)["pass_rate"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name, floor", [("randomized_filtered_data_7b", 0.98), ("randomized_filtered_data_fixed", 0.99)])
def test_calibration_floor_rtlcoder_small(icarus, rtlcoder_dir, name, floor):
    from tasks.equivalence import NEVER_DEFINED
    from tasks.equivalence_calibration import rtlcoder_items, self_pass

    report = self_pass(rtlcoder_items(str(rtlcoder_dir / f"{name}.jsonl")))
    # Every usable reference passes. Measured (BENCHMARKS.md): 7b 1,087 of 1,105 (98.4%: the 99%
    # is not met there), fixed 1,257 of 1,264 (99.4%); the rest are stubs with undriven outputs, several
    # drivers on one net, loops that never end, no outputs, or no inputs, each excluded with its reason.
    # A register without reset no longer excludes its reference: it is compared from a zero start.
    assert report["pass_rate"] == 1.0, report["exceptions"]
    assert report["pass_rate_all"] >= floor, report["excluded_reasons"]
    assert NEVER_DEFINED not in report["excluded_reasons"] and report["zero_start"] >= 10
