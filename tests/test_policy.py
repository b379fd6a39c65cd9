"""The design policy (allowlist over slang's tree) and the canonical text it reads."""
from __future__ import annotations

import pytest

from verilog_tools import policy
from verilog_tools.canonical import DesignRefused, canonical_text, design_key
from verilog_tools.policy import PolicyContext, check_policy

TESTBENCH = """`timescale 1 ps/1 ps
module reference_module(input a, output y); assign y = a; endmodule
module stimulus_gen(input clk, output reg a); initial a = 0; endmodule
module tb();
  reg clk = 0;
  wire a, y_ref, y_dut;
  stimulus_gen stim1(.clk, .a);
  reference_module good1(.a, .y(y_ref));
  top_module top_module1(.a, .y(y_dut));
  final $display("Mismatches: %1d in %1d samples", 0, 1);
endmodule
"""
CONTEXT = PolicyContext(reserved_modules=policy.testbench_modules(TESTBENCH))


def design(body: str, extra: str = "", ports: str = "input a, output y") -> str:
    return f"module top_module({ports});\n{body}\nendmodule\n{extra}"


def refused(text: str, context: PolicyContext = CONTEXT) -> list[str]:
    result = check_policy(text, context)
    assert not result.parse_errors, result.parse_errors
    return result.violations


def test_testbench_modules_are_read_with_the_parser():
    assert CONTEXT.reserved_modules == {"reference_module", "stimulus_gen", "tb"}


@pytest.mark.parametrize("body", [
    "assign y = ~a;",
    "reg r; always @(posedge a) r <= ~r; assign y = r;",
    "localparam W = $clog2(16); wire [W-1:0] v = {W{a}}; assign y = ^v;",
    "function automatic f(input x); f = ~x; endfunction\nassign y = f(a);",
    "task automatic t(output o); o = 1; endtask\nreg r; always @* t(r); assign y = r;",
    "genvar i; wire [3:0] w; generate for (i = 0; i < 4; i = i + 1) begin : g assign w[i] = a; end endgenerate assign y = &w;",
    "typedef enum logic [1:0] {S0, S1} st_t; st_t s; always_comb s = a ? S1 : S0; assign y = s == S1;",
    "wire w; and g1(w, a, a); assign y = w; // a comment with `backticks` and caf\u00e9",
    "integer i; reg [3:0] r; always @* begin r = 0; for (i = 0; i < 4; i++) r[i] = a; end assign y = r[0];",
    "assign y = $signed(a) >>> 1;",
])
def test_real_rtl_is_allowed(body):
    assert refused(design(body)) == []


def test_a_module_may_instantiate_the_modules_it_defines():
    text = design("sub s(.i(a), .o(y));", "module sub(input i, output o); assign o = i; endmodule\n")
    assert refused(text) == []


@pytest.mark.parametrize("body, reason", [
    ("initial force a = 1'bx; assign y = a;", "force"),
    ("initial release a; assign y = a;", "release"),
    ("reg r; initial begin assign r = 0; deassign r; end assign y = r;", "procedural `assign`"),
    ("assign a = 1'bx; assign y = 0;", "drives input port a"),
    ("buf (a, 1'bx); assign y = 0;", "drives input port a"),
    ("pullup (a); assign y = a;", "pullup"),
    ("assign y = tb.y_ref;", "hierarchical"),
    ("assign y = good1.y;", "hierarchical"),
    ("assign y = $root.tb.y_ref;", "hierarchical"),
    ("reference_module r(.a(a), .y(y));", "instantiates testbench module reference_module"),
    ("assign y = a; defparam tb.stim1.N = 1;", "defparam"),
    ("initial $display(\"Mismatches: 0 in 10 samples\"); assign y = a;", "$display"),
    ("reg r; always @(a) r = $random; assign y = r;", "$random"),
    ("integer s; initial s = $urandom(1); assign y = a;", "$urandom"),
    ("initial $finish; assign y = a;", "$finish"),
    ("integer f; initial f = $fopen(\"/etc/passwd\", \"r\"); assign y = a;", "$fopen"),
    ("final y_r = 0; reg y_r; assign y = a;", "final"),
    ("reg r; initial fork r = 0; join assign y = r;", "fork"),
])
def test_cheats_are_refused_with_the_construct_and_line(body, reason):
    found = refused(design(body))
    assert found and any(reason in v for v in found), found
    assert found[0].startswith("line ")


@pytest.mark.parametrize("body, reason", [
    ("initial tb_task; assign y = a;", "`tb_task` does not resolve inside the design"),
    ("stranger s(.a(a), .y(y));", "`stranger` is a module the design does not define"),
    ("assign y = typo;", "`typo` does not resolve inside the design"),
])
def test_unresolved_names_are_left_for_the_compiler_to_confirm(body, reason):
    """A typo fails to compile (compile_error); a name the compiler resolves outside the design is
    refused by the caller (verilog_tools.icarus)."""
    result = check_policy(design(body), CONTEXT)
    assert not result.violations and not result.ok
    assert any(reason in u for u in result.unresolved), result.unresolved


def test_defining_a_testbench_module_is_refused():
    found = refused(design("assign y = a;", "module stimulus_gen(input clk, output a); endmodule\n"))
    assert any("stimulus_gen, a name the testbench uses" in v for v in found)


def test_external_modules_may_be_instantiated_when_the_problem_provides_them():
    ctx = PolicyContext(reserved_modules=frozenset({"tb", "add16"}), external_modules=frozenset({"add16"}))
    assert refused(design("add16 u(.a(a), .y(y));"), ctx) == []


def test_inout_ports_are_refused():
    assert any("inout" in v for v in refused(design("assign a = 1'bz; assign y = 0;", ports="inout a, output y")))


@pytest.mark.parametrize("text, reason", [
    ('`include "tb.sv"\n' + design("assign y = a;"), "`include"),
    ("// `include \"/etc/passwd\"\n" + design("assign y = a;"), "`include"),
    ("`define CAT(a, b) a``b\n" + design("assign y = a;"), "token pasting"),
    ('`define S(x) `"x`"\n' + design("assign y = a;"), "token pasting"),
    ("`ifdef __ICARUS__\n`endif\n" + design("assign y = a;"), "does not define"),
    ("`pragma protect\n" + design("assign y = a;"), "`pragma"),
])
def test_directives_are_read_on_the_raw_text(text, reason):
    found = check_policy(text, CONTEXT).violations
    assert any(reason in v for v in found), found


def test_macros_the_design_defines_are_expanded_before_the_check():
    assert refused("`define W 2\n`ifdef W\n`endif\n" + design("wire [`W-1:0] v = {`W{a}}; assign y = &v;")) == []
    found = refused("`define GOLD good1\n" + design("assign y = `GOLD.y;"))
    assert any("hierarchical" in v for v in found)


def test_non_ascii_outside_comments_is_refused_and_inside_allowed():
    assert refused(design("assign y = a; // \u2265 \u00e9")) == []
    result = check_policy(design('localparam S = "\u00e9"; assign y = a;'), CONTEXT)
    assert result.violations or result.parse_errors


def test_parse_errors_are_reported_apart_from_refusals():
    result = check_policy(design("assign y = a + ;"), CONTEXT)
    assert result.parse_errors and not result.violations and not result.ok


# --- canonical text ---------------------------------------------------------------------------------
def test_canonical_text_turns_crlf_into_lf_and_keeps_everything_else():
    assert canonical_text("module m;\r\nendmodule\r\n") == "module m;\nendmodule\n"
    assert canonical_text("// caf\u00e9 \u2265\n\tx") == "// caf\u00e9 \u2265\n\tx"


@pytest.mark.parametrize("char", ["\r", "\x00", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\u0085", "\u2028",
                                  "\u2029", "\ufeff", "\u200b", "\u202e", "\ud800", "\x9b"])
def test_canonical_text_refuses_characters_lexers_disagree_on(char):
    with pytest.raises(DesignRefused, match="line 2, column 4"):
        canonical_text(f"module m;\n// {char} hidden\nendmodule\n")


def test_canonical_text_refuses_what_is_too_large():
    with pytest.raises(DesignRefused, match="too large"):
        canonical_text("x" * 101, max_bytes=100)
    with pytest.raises(DesignRefused, match="too large"):
        canonical_text("\u00e9" * 60, max_bytes=100)   # 120 bytes in UTF-8


def test_design_key_is_the_exact_bytes():
    assert design_key("assign y = a;") != design_key("assign y = a; ")
    assert design_key("x") == design_key("x")
