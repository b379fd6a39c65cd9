"""The design policy: each forbidden construct is caught, and harmless look-alikes are not."""
from __future__ import annotations

import json

import pytest

from verilog_tools import policy
from verilog_tools.policy import check_policy

# (imported through the module: pytest would collect a bare `testbench_names` as a test)

TESTBENCH = """`timescale 1 ps/1 ps
module reference_module(input a, output y); assign y = a; endmodule
module stimulus_gen(input clk, output reg a); initial a = 0; endmodule
module tb();
  typedef struct packed { int errors; int clocks; } stats;
  stats stats1;
  reg clk = 0;
  wire a, y_ref, y_dut;
  stimulus_gen stim1(.clk, .a);
  reference_module good1(.a, .y(y_ref));
  top_module top_module1(.a, .y(y_dut));
  final $display("Mismatches: %1d in %1d samples", stats1.errors, stats1.clocks);
endmodule
"""
NAMES = policy.testbench_names(TESTBENCH, "top_module")


def design(body: str, extra: str = "") -> str:
    return f"module top_module(input a, output y);\n{body}\nendmodule\n{extra}"


def test_testbench_names_hold_modules_instances_and_signals_but_not_the_dut():
    assert {"tb", "reference_module", "stimulus_gen", "good1", "stim1", "stats1", "errors", "clk"} <= NAMES
    assert "top_module" not in NAMES and "module" not in NAMES and "reg" not in NAMES


@pytest.mark.parametrize("task", [
    '$fopen("/tmp/x", "w")', "$fclose(1)", '$fwrite(1, "x")', '$fdisplayh(1, "x")', '$fstrobe(1, "x")',
    '$fmonitor(1, "x")', "$fgets(s, 1)", "$fgetc(1)", "$ungetc(1, 1)", '$fscanf(1, "%d", x)',
    "$fread(x, 1)", "$fseek(1, 0, 0)", "$rewind(1)", "$fflush(1)", "$feof(1)", "$ferror(1, s)",
    '$readmemh("f", m)', '$readmemb("f", m)', '$writememh("f", m)', '$writememb("f", m)',
    '$sreadmemh(m, 0, 1, "0")', '$value$plusargs("x=%d", x)', '$test$plusargs("x")', '$system("ls")',
    '$dumpfile("w.vcd")', "$dumpvars", "$dumpall", "$dumpports", "$finish", "$finish(0)", "$stop", "$exit",
    '$fatal(1, "x")', "$root.tb.clk", "$unit::x", "$mystery_vpi_task",
])
def test_forbidden_system_tasks(task):
    violations = check_policy(design(f"initial begin {task}; end"))
    assert violations and task.split("(")[0].split(".")[0].split(":")[0] in violations[0]


@pytest.mark.parametrize("code", [
    '`include "/etc/passwd"',
    "`define CAT(a, b) a``b\nwire `CAT(x, y);",
    "`define CALL(f) $f(\"x\", \"w\")\ninteger d = `CALL(fopen);",
    "bind tb checker_m c();",
])
def test_forbidden_directives_and_keywords(code):
    assert check_policy(design(code))


@pytest.mark.parametrize("code", [
    "initial tb.stats1.errors = 0;",
    "assign y = good1.y;",
    "assign y = \\good1 .y;",
    "initial stats1.errors = 0;",          # upward name resolution reaches tb.stats1
    "initial force stim1.a = 1;",
    "assign y = good1 . y;",
    "defparam tb.x = 1;",
])
def test_hierarchical_references_into_the_testbench(code):
    assert any("hierarchical" in v for v in check_policy(design(code), forbidden_names=NAMES))


@pytest.mark.parametrize("code,extra", [
    ("reference_module r(.a(a), .y(y));", ""),
    ("reference_module #(1) r(a, y);", ""),
    ("\\reference_module  r(.a(a), .y(y));", ""),
    ("stimulus_gen s[1:0] (.clk());", ""),
    ("", "module tb(); endmodule"),
    ("", "module reference_module(input a, output y); assign y = 0; endmodule"),
])
def test_testbench_modules_cannot_be_used_or_redefined(code, extra):
    assert check_policy(design(code, extra), forbidden_names=NAMES)


@pytest.mark.parametrize("code", [
    'initial $display("$fopen tb.stats1 `include $finish");',
    "// $fopen(\"x\") tb.stats1.errors = 0; `include\n/* $finish reference_module r(); */",
    'always @(*) begin $write("%d", a); $strobe("x"); $monitor(a); $displayh(a); end',
    "localparam W = $clog2(8); wire [W:0] r = $random; real q = $sqrt(2.0);",
    "sub u(.i(a), .o(y)); wire z = u.o;",   # references into the design's own instances
    "reg [3:0] clk_q; wire a2 = a; always @(posedge a) clk_q <= {clk_q[2:0], a};",
    "`define WIDTH 4\nwire [`WIDTH-1:0] v;",
    "assign y = 1.5e3 > 2 ? a : 1'b0;",
], ids=range(8))
def test_harmless_designs_pass(code):
    extra = "module sub(input i, output o); assign o = i; endmodule"
    assert check_policy(design(code, extra), forbidden_names=NAMES) == []


def test_violations_are_listed_once_each_in_order():
    v = check_policy(design("initial begin $finish; $fopen(\"a\"); $finish; end"))
    assert len(v) == 2 and "$finish" in v[0] and "$fopen" in v[1]


def test_no_verilog_eval_reference_solution_is_rejected(v1_dir):
    """False positives would turn correct designs into `rejected`: none of VerilogEval's may trip it."""
    for line in (v1_dir / "data" / "VerilogEval_Human.jsonl").read_text().splitlines():
        problem = json.loads(line)
        names = policy.testbench_names(problem["test"], "top_module")
        assert check_policy(problem["prompt"] + problem["canonical_solution"], forbidden_names=names) == [], problem["task_id"]
