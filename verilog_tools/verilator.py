"""Verilator lint: an optional second opinion on a design, run through the sandboxed runner.

Flags: `--lint-only -Wall -Wno-fatal -Wno-DECLFILENAME`: every warning is reported in the log but none
fails the check (DECLFILENAME is noise here: the file is always design.sv); ok means exit code 0
and no `%Error` line.
"""
from __future__ import annotations

from dataclasses import dataclass

from verilog_tools.runner import Limits, run_sandboxed, sample_dir
from verilog_tools.text import tokenize
from verilog_tools.tools import find_tool

VERILATOR_FLAGS = ["--lint-only", "-Wall", "-Wno-fatal", "-Wno-DECLFILENAME"]
LINT_LIMITS = Limits(wall_seconds=60, cpu_seconds=60)


@dataclass
class LintResult:
    ok: bool
    log: str


def lint(code: str, top: str | None = None, limits: Limits | None = None) -> LintResult:
    """Lint `code` with Verilator (`top` names the top module when there are several)."""
    if any(t.kind == "dir" and t.text == "`include" for t in tokenize(code)):
        return LintResult(False, "`include is not allowed: a design must be self-contained")
    argv = [find_tool("verilator"), *VERILATOR_FLAGS, *(["--top-module", top] if top else []), "design.sv"]
    with sample_dir() as d:
        (d / "design.sv").write_text(code)
        r = run_sandboxed(argv, d, limits or LINT_LIMITS)
    log = (r.stderr + r.stdout).strip()
    if r.timed_out:
        log += "\n[verilator stopped at the time limit]"
    ok = r.ok and not any(line.startswith("%Error") for line in log.splitlines())
    return LintResult(ok, log)
