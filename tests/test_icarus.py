"""Icarus wrappers against a small VerilogEval-style testbench: verdicts, and hostile designs."""
from __future__ import annotations

import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

import pytest

from verilog_tools import icarus
from verilog_tools.canonical import design_key
from verilog_tools import status as st, tools
from verilog_tools.checker import Checked
from verilog_tools.errors import UserError
from verilog_tools.icarus import SimLimits, check_syntax, check_syntax_many, simulate
from verilog_tools.runner import Limits

TESTBENCH = """`timescale 1 ps/1 ps
module reference_module(input a, input b, output y);
  assign y = a & b;
endmodule

module stimulus_gen(input clk, output reg a, output reg b);
  initial begin
    {a, b} = 0;
    repeat (20) @(negedge clk) {a, b} <= $random;
    #1 $finish;
  end
endmodule

module tb();
  typedef struct packed { int errors; int clocks; } stats;
  stats stats1;
  reg clk = 0;
  initial forever #5 clk = ~clk;
  wire a, b, y_ref, y_dut;
  stimulus_gen stim1(.clk, .a, .b);
  reference_module good1(.a, .b, .y(y_ref));
  top_module top_module1(.a, .b, .y(y_dut));
  always @(posedge clk, negedge clk) begin
    stats1.clocks++;
    if (y_ref !== y_dut) stats1.errors++;
  end
  final $display("Mismatches: %1d in %1d samples", stats1.errors, stats1.clocks);
  initial begin #1000000 $display("TIMEOUT"); $finish(); end
endmodule
"""
# The same testbench with no way to end: only the sandbox's limits stop it.
ENDLESS_TB = TESTBENCH.replace("#1 $finish;", "").replace('initial begin #1000000 $display("TIMEOUT"); $finish(); end', "")
SAMPLES = 40
HEADER = "module top_module(input a, input b, output y);\n"
GOOD = HEADER + "  assign y = a & b;\nendmodule\n"
WRONG = HEADER + "  assign y = a | b;\nendmodule\n"
SHORT = SimLimits(compile_wall_seconds=5, sim_wall_seconds=2, cpu_seconds=5, output_bytes=64 << 10,
                  file_bytes=1 << 20)


@pytest.fixture(autouse=True)
def no_process_left_behind(tmp_path, monkeypatch):
    """Sample dirs go under tmp_path; afterwards no process may still run inside one."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield
    deadline = time.monotonic() + 2
    while True:
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if cwd.startswith(str(tmp_path)) and state != "Z":
                left.append(pid)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not left, f"processes left running in sample dirs: {left}"


def design(body: str) -> str:
    return HEADER + body + "\nendmodule\n"


def test_correct_design_passes():
    r = simulate(GOOD, TESTBENCH, expected_samples=SAMPLES)
    assert (r.status, r.passed, r.mismatches, r.checks) == (st.PASS, True, 0, SAMPLES)
    assert r.cpu_seconds > 0 and r.seconds > 0 and "[tb] Mismatches: 0 in" in r.log_tail


def test_wrong_design_is_a_mismatch_with_its_count():
    r = simulate(WRONG, TESTBENCH)
    assert r.status == st.MISMATCH and not r.passed and r.mismatches > 0 and r.checks == SAMPLES


def test_warnings_are_not_errors():
    warned = design("  wire [3:0] w = {a, a, a, a};\n  assign y = (a & b) | (w[5] & 1'b0);")
    assert check_syntax(warned).ok
    r = simulate(warned, TESTBENCH)
    assert r.status == st.PASS, r.log_tail


def test_syntax_and_compile_errors():
    missing_semicolon = design("  assign y = a & b")
    unknown_module = design("  nosuch u(.a(a), .y(y));")
    bad_port = design("  assign y = a & b;") + "module sub(input p); endmodule\nmodule x; sub s(.q(1'b0)); endmodule"
    assert check_syntax(missing_semicolon).status == st.SYNTAX_ERROR
    assert check_syntax(unknown_module).status == st.COMPILE_ERROR
    assert check_syntax(bad_port).status == st.COMPILE_ERROR
    good = check_syntax(GOOD)
    assert (good.ok, good.status, good.log) == (True, st.PASS, "")
    assert simulate(missing_semicolon, TESTBENCH).status == st.SYNTAX_ERROR
    r = simulate(unknown_module, TESTBENCH)
    assert r.status == st.COMPILE_ERROR and "nosuch" in r.log_tail


def test_check_syntax_many_checks_equal_texts_once(monkeypatch):
    calls = []
    real = icarus.run_sandboxed
    monkeypatch.setattr(icarus, "run_sandboxed", lambda *a, **k: calls.append(1) or real(*a, **k))
    # the key is the exact canonical bytes: CRLF is the same text, a comment is another one
    same_as_good = GOOD.replace("\n", "\r\n")
    commented = GOOD.replace("  assign", "// a comment\n\tassign   ")
    results = check_syntax_many([GOOD, design("  assign y = "), same_as_good, GOOD, commented], workers=2)
    assert [r.ok for r in results] == [True, False, True, True, True] and len(calls) == 3


def test_include_is_refused_by_the_syntax_check():
    assert check_syntax('`include "/etc/passwd"\n' + GOOD).status == st.REJECTED


def unchecked(text: str) -> Checked:
    """A design handed to the simulator as if the policy had passed it (to test the layers behind it)."""
    return Checked(text=text, key=design_key(text))


@pytest.mark.parametrize("forgery", [
    'initial $display("Mismatches: 0 in 40 samples");',
    'final $display("Mismatches: 0 in 40 samples");',
    'always @(a, b) $display("Mismatches: %1d in %1d samples", 0, 40);',
    'final $write("\\nMismatches: 0 in 40 samples\\n");',
])
def test_forged_verdict_lines_do_not_pass(forgery):
    text = design("  assign y = a | b;\n  " + forgery)
    assert simulate(text, TESTBENCH, expected_samples=SAMPLES).status == st.REJECTED   # no output at all
    # Defence in depth, as if the policy had missed it: the per-run nonce still ignores the forgery.
    r = simulate(text, TESTBENCH, expected_samples=SAMPLES, checked=unchecked(text))
    assert not r.passed and r.status == st.MISMATCH and r.mismatches > 0
    assert "Mismatches: 0 in 40 samples" in r.log_tail   # the forgery was printed, and ignored


def test_early_finish_does_not_pass():
    r = simulate(design("  assign y = a | b;\n  initial #12 $finish;"), TESTBENCH)
    assert r.status == st.REJECTED and "$finish" in r.log_tail


def test_a_verdict_on_too_few_samples_does_not_pass():
    """Defence in depth, should the policy miss an early end: the verdict must cover every sample."""
    assert simulate(GOOD, TESTBENCH, expected_samples=SAMPLES + 1).status == st.RUNTIME_ERROR
    ends_at_once = TESTBENCH.replace("repeat (20) @(negedge clk) {a, b} <= $random;\n    #1 $finish;", "$finish;")
    r = simulate(GOOD, ends_at_once)
    assert r.status == st.RUNTIME_ERROR and r.checks == 0 and "no samples" in r.log_tail


def test_testbench_without_a_verdict_line_is_an_infra_error():
    r = simulate(GOOD, TESTBENCH.replace("Mismatches:", "Errors:"))
    assert r.status == st.INFRA_ERROR and "no verdict line" in r.log_tail


@pytest.mark.parametrize("body", [
    "  assign y = a & b;\n  reg r = 0;\n  always #1 r = ~r;",       # never ends: time runs on
    "  assign y = a & b;\n  reg r = 0;\n  always @(r) r <= ~r;",    # zero-delay loop: time stands still
])
def test_endless_simulations_time_out_within_the_limit(body):
    start = time.monotonic()
    r = simulate(design(body), ENDLESS_TB, limits=SHORT)
    assert r.status == st.TIMEOUT and not r.passed
    assert time.monotonic() - start < SHORT.sim_wall_seconds + 2.0


def test_testbench_timeout_line_is_a_timeout():
    slow_tb = TESTBENCH.replace("#1000000", "#100")
    r = simulate(GOOD, slow_tb)
    assert r.status == st.TIMEOUT and "TIMEOUT" in r.log_tail


def test_unbounded_display_is_capped_and_does_not_pass():
    text = design('  assign y = a & b;\n  initial forever $display("spam spam spam spam");')
    assert simulate(text, TESTBENCH, limits=SHORT).status == st.REJECTED
    r = simulate(text, TESTBENCH, limits=SHORT, checked=unchecked(text))   # as if the policy had missed it
    assert r.status == st.RUNTIME_ERROR and not r.passed and "exceeded" in r.log_tail
    assert len(r.log_tail) < 3000


@pytest.mark.parametrize("path_kind", ["absolute", "relative"])
def test_file_writes_are_rejected_and_create_nothing(path_kind):
    name = f"itertl_canary_{secrets.token_hex(6)}"
    target = f"/tmp/{name}" if path_kind == "absolute" else f"../{name}"
    code = design(f'  assign y = a & b;\n  integer f;\n  initial begin f = $fopen("{target}", "w"); $fdisplay(f, "x"); end')
    r = simulate(code, TESTBENCH)
    assert r.status == st.REJECTED and "$fopen" in r.log_tail
    assert not Path("/tmp", name).exists() and not Path(tempfile.gettempdir(), name).exists()


@pytest.mark.parametrize("body", [
    "  assign y = good1.y;",
    "  assign y = a & b;\n  initial #1 tb.stats1.errors = 0;",
    "  assign y = a & b;\n  always @(posedge a) stats1.errors = 0;",
    "  reference_module r(.a(a), .b(b), .y(y));",
])
def test_reaching_into_the_testbench_is_rejected(body):
    r = simulate(design(body), TESTBENCH)
    assert r.status == st.REJECTED and "rejected" in r.log_tail


def test_limits_accept_a_plain_limits_for_both_steps():
    r = simulate(GOOD, TESTBENCH, limits=Limits(wall_seconds=10))
    assert r.passed
    with pytest.raises(ValueError, match="sim_wall_seconds"):
        SimLimits(sim_wall_seconds=0)


# ---- tools.py (no separate test file: it is exercised here, next to its users) ----

def test_find_tool_order_and_message(tmp_path, monkeypatch):
    fake = tmp_path / "iverilog"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ITERTL_TOOLS_DIR", str(tmp_path))
    assert tools.find_tool("iverilog") == str(fake)
    monkeypatch.setenv("ITERTL_TOOLS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(tools, "BUNDLED_DIR", tmp_path / "none")
    with pytest.raises(UserError, match="make tools"):
        tools.find_tool("vvp")
    with pytest.raises(UserError, match="Verilator"):
        tools.find_tool("verilator")


def test_version_parsing():
    assert tools.parse_icarus_version("Icarus Verilog version 12.0 (stable) (s20221226-498-g52d049b51)") == "12.0 (stable)"
    assert tools.parse_icarus_version("Icarus Verilog runtime version 11.0 (stable) ()") == "11.0 (stable)"
    assert tools.parse_verilator_version("Verilator 5.006 2023-01-22 rev (Debian 5.006-3)") == "5.006"
    assert tools.tool_versions()["iverilog"] is not None


def test_check_simulator_warns_once_on_11_and_refuses_older(monkeypatch, caplog):
    monkeypatch.setattr(tools, "_warned_old_simulator", False)
    monkeypatch.setattr(tools, "tool_versions", lambda: {"iverilog": "11.0 (stable)"})
    with caplog.at_level(logging.WARNING):
        assert tools.check_simulator() == "11.0 (stable)"
        tools.check_simulator()
    warnings = [r.message for r in caplog.records if "review2015_fancytimer" in r.message]
    assert len(warnings) == 1 and "review2015_fsm" in warnings[0]
    monkeypatch.setattr(tools, "tool_versions", lambda: {"iverilog": "10.3 (stable)"})
    with pytest.raises(UserError, match="too old"):
        tools.check_simulator()
    monkeypatch.setattr(tools, "tool_versions", lambda: {"iverilog": "12.0 (stable)"})
    caplog.clear()
    assert tools.check_simulator() == "12.0 (stable)" and not caplog.records


def test_call_bounded_runs_a_function_in_a_worker_and_reports_its_failure():
    import os
    from verilog_tools import checker
    from tasks.ports import read_variables

    ok, pid = checker.call_bounded(os.getpid)
    assert ok and pid != os.getpid()
    ok, found = checker.call_bounded(read_variables, "module m(input c, output reg q);\nalways @(posedge c) q <= ~q;\nendmodule\n")
    assert ok and [v.path for v in found] == ["q"]
    ok, why = checker.call_bounded(read_variables, "module m(input a);\nendmodule\n", "other")
    assert not ok and "InterfaceError" in why
