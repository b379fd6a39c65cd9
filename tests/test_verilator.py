"""Verilator lint through the sandbox (skipped where Verilator is not installed)."""
from __future__ import annotations

import shutil

import pytest

from verilog_tools.verilator import lint

pytestmark = pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator not installed")


def test_lint_passes_clean_code_and_keeps_warnings_in_the_log():
    r = lint("module top_module(input a, input b, output y);\n  wire [3:0] w = {a, a, a, a};\n"
             "  assign y = a & b & w[0];\nendmodule\n", top="top_module")
    assert r.ok and "%Warning" in r.log


@pytest.mark.parametrize("code", [
    "module top_module(input a, output y);\n  assign y = a &;\nendmodule\n",
    "module top_module(input a, output y);\n  nosuch u(.a(a));\nendmodule\n",
    '`include "/etc/hostname"\nmodule top_module(input a, output y); assign y = a; endmodule\n',
])
def test_lint_fails_on_errors(code):
    r = lint(code)
    assert not r.ok and r.log
