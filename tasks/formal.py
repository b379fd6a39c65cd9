"""A formal second opinion on equivalence with Yosys (Debian's `yosys` 0.23): miter + SAT.

Not on the training path: the calibration (`tasks.equivalence_calibration --formal`) reports how often it
agrees with the differential simulation and what it costs. Both designs are renamed apart with slang
(`tasks.ports`), read by Yosys, flattened (`proc; flatten; async2sync`), joined by `miter -equiv
-ignore_gold_x` (an X of the reference is a don't-care, as in simulation) and handed to `sat -enable_undef`
(without it Yosys 0.23 proves `-ignore_gold_x` miters of different designs equivalent):
- no clock (as `tasks.difftb` recognises it): a proof over all inputs (`sat -prove trigger 0`);
- a clock: a bounded proof over `bound` cycles from reset: registers start at zero, the reset is
  asserted in the first cycle (when there is one) and outputs are compared from the second on.
Yosys runs through the verifier's contained runner (`verilog_tools.runner.run_sandboxed`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from tasks import difftb
from tasks.ports import InterfaceError, read_interface
from tasks.equivalence import _renamed

EQUIVALENT, DIFFERENT, UNKNOWN = "equivalent", "different", "unknown"


@dataclass
class FormalVerdict:
    status: str         # equivalent | different | unknown
    seconds: float
    log_tail: str = ""


def _script(roles: difftb.Roles, bound: int) -> str:
    sat = "sat -verify -enable_undef -prove trigger 0"   # -ignore_gold_x needs the undef model
    if roles.clock:
        sat += f" -seq {bound} -set-init-zero -prove-skip 1"
        if roles.reset:
            sat += f" -set-at 1 in_{roles.reset} {0 if roles.reset_active_low else 1}"
    return ("read_verilog -sv gold.v\nread_verilog -sv gate.v\nproc\nflatten\nasync2sync\nopt_clean\n"
            "miter -equiv -flatten -make_outputs -ignore_gold_x itertl_gold itertl_gate itertl_miter\n"
            f"hierarchy -top itertl_miter\n{sat}\n")


def formal_check(reference: str, candidate: str, *, module: str | None = None, bound: int = 20,
                 timeout: float = 60.0) -> FormalVerdict:
    """Is `candidate` equivalent to `reference` (module `module`)? See the module docstring."""
    from verilog_tools.runner import Limits, run_sandboxed, sample_dir
    from verilog_tools.tools import find_tool

    from verilog_tools.checker import check_design

    started = time.monotonic()
    checked = check_design(candidate)   # the same verifier as every other run of generated Verilog
    if checked.rejected:
        return FormalVerdict(UNKNOWN, time.monotonic() - started, checked.reason())
    candidate = checked.text
    try:
        iface = read_interface(reference, module)
        gold = _renamed(reference, "itertl_gold", iface.name).text
        gate = _renamed(candidate, "itertl_gate", iface.name).text
    except InterfaceError as exc:
        return FormalVerdict(UNKNOWN, time.monotonic() - started, str(exc))
    roles = difftb.recognise_roles(iface)
    with sample_dir() as d:
        (d / "gold.v").write_text(gold)
        (d / "gate.v").write_text(gate)
        (d / "check.ys").write_text(_script(roles, bound))
        run = run_sandboxed([find_tool("yosys"), "-q", "-s", "check.ys"], d,
                            Limits(wall_seconds=timeout, cpu_seconds=timeout), proc=True)
    log = (run.stdout + run.stderr)[-1500:]
    if run.ok:
        status = EQUIVALENT
    elif "proof did fail" in log:
        status = DIFFERENT
    else:
        status = UNKNOWN
    return FormalVerdict(status, time.monotonic() - started, log)
