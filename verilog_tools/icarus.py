"""Icarus Verilog: syntax checks and simulation against a trusted testbench, with verdict categories.

Unforgeable verdict: before compiling, the testbench's own `$display("Mismatches: %1d in %1d samples",
...)` format literal (and a `"TIMEOUT"` literal, if any) is prefixed with a fresh random nonce, and only
output lines starting with that nonce are read. The design cannot print the nonce: it is new per run,
lives only in tb.sv, and the policy (`policy.py`) stops the design from reading files or reaching into
the testbench. If the testbench prints several verdict lines the LAST one counts (the end-of-run
summary comes last). A verdict covering zero samples, or not `expected_samples`, is not a pass: the
design may have ended the simulation early.
"""
from __future__ import annotations

import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from verilog_tools import status as st
from verilog_tools.policy import check_policy, testbench_names
from verilog_tools.runner import GiB, MiB, Limits, RunResult, run_sandboxed, sample_dir
from verilog_tools.text import normalize_code, rewrite_strings, tokenize
from verilog_tools.tools import find_tool

IVERILOG_FLAGS = ["-Wall", "-Winfloop", "-Wno-timescale", "-g2012"]
LOG_TAIL_CHARS = 2000
# Parser messages: anything else that fails is an elaboration (compile) error.
_SYNTAX_MARKERS = ("syntax error", "I give up", "Syntax in assignment", "Malformed statement",
                   "Invalid module item", "Invalid module instantiation", "Incomprehensible",
                   "Errors in port declarations", "Unterminated", "unmatched character")
_ERROR_LINE = re.compile(r"(error:|syntax error|I give up|sorry:)", re.I)


@dataclass
class SimLimits:
    """Limits for the two steps of a simulation (compile with iverilog, run with vvp)."""

    compile_wall_seconds: float = field(default=60.0, metadata={"help": "wall-clock limit of iverilog"})
    sim_wall_seconds: float = field(default=60.0, metadata={"help": "wall-clock limit of vvp (VerilogEval sims take < 1 s)"})
    cpu_seconds: float = field(default=60.0, metadata={"help": "CPU-time limit of each process"})
    memory_bytes: int = field(default=4 * GiB, metadata={"help": "address-space limit of each process"})
    output_bytes: int = field(default=1 * MiB, metadata={"help": "stdout/stderr cap; more is a runtime_error"})
    file_bytes: int = field(default=64 * MiB, metadata={"help": "largest file a step may write (sim.vvp, wave.vcd, logs)"})

    def __post_init__(self):
        for name in ("compile_wall_seconds", "sim_wall_seconds", "cpu_seconds", "memory_bytes", "output_bytes",
                     "file_bytes"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SimLimits.{name} must be a positive number, got {value!r}")
        self.sim_limits()   # cross-field checks (output_bytes <= file_bytes)

    def _limits(self, wall: float) -> Limits:
        return Limits(wall_seconds=wall, cpu_seconds=self.cpu_seconds, memory_bytes=self.memory_bytes,
                      output_bytes=self.output_bytes, file_bytes=self.file_bytes)

    def compile_limits(self) -> Limits:
        return self._limits(self.compile_wall_seconds)

    def sim_limits(self) -> Limits:
        return self._limits(self.sim_wall_seconds)

    @classmethod
    def from_limits(cls, limits: Limits) -> "SimLimits":
        """The same `Limits` for both steps (what `TIMEOUT=` on the command line sets)."""
        return cls(limits.wall_seconds, limits.wall_seconds, limits.cpu_seconds, limits.memory_bytes,
                   limits.output_bytes, limits.file_bytes)


def as_sim_limits(limits: SimLimits | Limits | None) -> SimLimits:
    if limits is None:
        return SimLimits()
    if isinstance(limits, Limits):
        return SimLimits.from_limits(limits)
    if isinstance(limits, SimLimits):
        return limits
    raise TypeError(f"limits must be SimLimits, Limits or None, got {type(limits).__name__}")


@dataclass
class SyntaxResult:
    ok: bool
    status: str          # pass, syntax_error, compile_error, timeout, rejected
    log: str
    cpu_seconds: float


@dataclass
class SimResult:
    status: str
    passed: bool
    mismatches: int | None
    checks: int | None
    seconds: float       # wall time of the whole call
    cpu_seconds: float   # CPU of the iverilog and vvp processes
    log_tail: str

    @property
    def clean_tb_timeout(self) -> bool:
        """The testbench's own time limit ended a run whose verdict so far is clean (see `_judge_run`)."""
        return (self.status == st.TIMEOUT and self.mismatches == 0 and bool(self.checks)
                and TB_TIMEOUT_REASON in self.log_tail)


def _tail(text: str, chars: int = LOG_TAIL_CHARS) -> str:
    text = text.strip("\n")
    return text if len(text) <= chars else "[...]\n" + text[-chars:]


def classify_compile_failure(result: RunResult) -> str:
    """The status of a failed iverilog run: timeout, syntax_error or compile_error."""
    if result.timed_out:
        return st.TIMEOUT
    log = result.stderr + result.stdout
    return st.SYNTAX_ERROR if any(m in log for m in _SYNTAX_MARKERS) else st.COMPILE_ERROR


def _compiled_ok(result: RunResult) -> bool:
    """Exit code 0 and no error line: warnings on stderr are not errors."""
    return result.ok and not _ERROR_LINE.search(result.stderr + result.stdout)


def check_syntax(code: str, limits: SimLimits | Limits | None = None) -> SyntaxResult:
    """Parse and elaborate `code` alone (`iverilog -t null`, every root module): does it compile?"""
    if any(t.kind == "dir" and t.text == "`include" for t in tokenize(code)):
        return SyntaxResult(False, st.REJECTED, "`include is not allowed: a design must be self-contained", 0.0)
    with sample_dir() as d:
        _write_source(d / "design.sv", code)
        r = run_sandboxed([find_tool("iverilog"), *IVERILOG_FLAGS, "-t", "null", "design.sv"], d,
                          as_sim_limits(limits).compile_limits())
    log = _tail(r.stderr + r.stdout)
    if _compiled_ok(r):
        return SyntaxResult(True, st.PASS, log, r.cpu_seconds)
    return SyntaxResult(False, classify_compile_failure(r), log, r.cpu_seconds)


def check_syntax_many(codes: list[str], workers: int = 1,
                      limits: SimLimits | Limits | None = None) -> list[SyntaxResult]:
    """`check_syntax` for each code, `workers` at a time; texts equal after `normalize_code` run once."""
    keys = [normalize_code(c) for c in codes]
    first = {}
    for key, code in zip(keys, codes):
        first.setdefault(key, code)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = dict(zip(first, pool.map(lambda c: check_syntax(c, limits), first.values())))
    return [results[k] for k in keys]


def _write_source(path: Path, code: str) -> None:
    """Write Verilog text; characters UTF-8 cannot encode (lone surrogates from JSON escapes or
    surrogateescape-decoded bytes) become '?', so odd bytes give a syntax verdict, never a crash."""
    path.write_bytes(code.encode("utf-8", errors="replace"))


def _expanded_violations(d: Path, iverilog: str, limits: SimLimits, forbidden) -> list[str]:
    """Policy violations of the design after its own macros are expanded (`iverilog -E`): a macro can
    spell a testbench name (`define G good1 ... `G.y) that the token scan of the source cannot see."""
    pre = run_sandboxed([iverilog, "-E", "-o", "design.pre.sv", "design.sv"], d, limits.compile_limits())
    out = d / "design.pre.sv"
    if not pre.ok or not out.is_file():
        return []   # the compile step reports the preprocessor's error with its own verdict
    expanded = out.read_bytes().decode("utf-8", errors="replace")
    out.unlink()
    return check_policy(expanded, forbidden_names=forbidden)


def mark_verdict(testbench: str, nonce: str) -> str | None:
    """The testbench with its `"Mismatches:` and `"TIMEOUT"` literals prefixed by `nonce`; None if it
    prints no verdict."""
    found = False

    def rewrite(literal: str) -> str:
        nonlocal found
        if literal.startswith('"Mismatches:'):
            found = True
            return f'"{nonce} {literal[1:]}'
        return f'"{nonce} TIMEOUT"' if literal == '"TIMEOUT"' else literal
    marked = rewrite_strings(testbench, rewrite)
    return marked if found else None


def _result(status, started, cpu, log, mismatches=None, checks=None) -> SimResult:
    return SimResult(status=status, passed=status == st.PASS, mismatches=mismatches, checks=checks,
                     seconds=time.monotonic() - started, cpu_seconds=cpu, log_tail=_tail(log))


TB_TIMEOUT_REASON = "the testbench reported TIMEOUT"


def _judge_run(run: RunResult, nonce: str, expected_samples: int | None) -> tuple[str, str, int | None, int | None]:
    """(status, reason, mismatches, checks) of a finished vvp run, read from the nonce lines only."""
    lines = [line[len(nonce) + 1:] for line in run.stdout.splitlines() if line.startswith(nonce + " ")]
    verdicts = [m for m in (re.match(r"Mismatches:\s*(\d+)\s+in\s+(\d+)\s+samples", l) for l in lines) if m]
    mismatches, checks = (int(verdicts[-1].group(1)), int(verdicts[-1].group(2))) if verdicts else (None, None)
    if run.timed_out:
        return st.TIMEOUT, "simulation stopped at the wall-clock or CPU limit", mismatches, checks
    if run.output_exceeded:
        return (st.RUNTIME_ERROR, "simulation output exceeded the cap (stdout/stderr or file size limit)",
                mismatches, checks)
    if any(l.strip() == "TIMEOUT" for l in lines):
        # Some upstream stimuli outlast their testbench's own time limit (VerilogEval v2's Prob082,
        # Prob141, Prob156: the reference times out too). Reaching that limit is then a pass only when
        # the verdict is clean and covers exactly the samples the reference's run covered.
        if (verdicts and mismatches == 0 and checks and expected_samples is not None
                and checks == expected_samples and run.returncode == 0):
            return st.PASS, "", mismatches, checks
        return st.TIMEOUT, TB_TIMEOUT_REASON, mismatches, checks
    if run.returncode != 0:
        how = f"signal {run.signal}" if run.signal else f"exit code {run.returncode}"
        return st.RUNTIME_ERROR, f"vvp failed ({how})", mismatches, checks
    if not verdicts:
        return st.RUNTIME_ERROR, "simulation ended without a verdict", None, None
    if mismatches:
        return st.MISMATCH, f"{mismatches} mismatches in {checks} samples", mismatches, checks
    if checks == 0:
        return st.RUNTIME_ERROR, "the testbench checked no samples (simulation ended early?)", mismatches, checks
    if expected_samples is not None and checks != expected_samples:
        return (st.RUNTIME_ERROR, f"verdict covers {checks} samples, expected {expected_samples} "
                f"(simulation ended early?)", mismatches, checks)
    return st.PASS, "", mismatches, checks


def simulate(design: str, testbench: str, *, top: str = "tb", dut_module: str = "top_module",
             limits: SimLimits | Limits | None = None, expected_samples: int | None = None) -> SimResult:
    """Run untrusted `design` against trusted `testbench` (policy check, compile, simulate) and judge it."""
    started = time.monotonic()
    violations = check_policy(design, forbidden_names=testbench_names(testbench, dut_module))
    if violations:
        return _result(st.REJECTED, started, 0.0, "design rejected by policy:\n" + "\n".join(violations))
    nonce = secrets.token_hex(16)
    marked = mark_verdict(testbench, nonce)
    if marked is None:
        return _result(st.INFRA_ERROR, started, 0.0, 'testbench has no verdict line ($display("Mismatches: ...))')
    limits = as_sim_limits(limits)
    iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
    with sample_dir() as d:
        _write_source(d / "tb.sv", marked)
        _write_source(d / "design.sv", design)
        if "`define" in design:
            violations = _expanded_violations(d, iverilog, limits, testbench_names(testbench, dut_module))
            if violations:
                return _result(st.REJECTED, started, 0.0, "design rejected by policy (after macro expansion):\n"
                               + "\n".join(violations))
        comp = run_sandboxed([iverilog, *IVERILOG_FLAGS, "-s", top, "-o", "sim.vvp", "tb.sv", "design.sv"],
                             d, limits.compile_limits())
        if not _compiled_ok(comp) or not (d / "sim.vvp").is_file():
            log = comp.stderr + comp.stdout
            if comp.output_exceeded and not comp.timed_out:
                return _result(st.COMPILE_ERROR, started, comp.cpu_seconds, log + "\n[compiler output exceeded the cap]")
            return _result(classify_compile_failure(comp), started, comp.cpu_seconds, log)
        run = run_sandboxed([vvp, "-n", "sim.vvp"], d, limits.sim_limits())
    status, reason, mismatches, checks = _judge_run(run, nonce, expected_samples)
    log = (run.stderr + "\n" + run.stdout).replace(nonce + " ", "[tb] ")
    if reason:
        log = f"{log.rstrip()}\n[{status}] {reason}"
    return _result(status, started, comp.cpu_seconds + run.cpu_seconds, log, mismatches, checks)
