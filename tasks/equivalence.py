"""Equivalence checking of candidates against a reference by differential simulation (SCORE=equivalence).

`check_group(reference, candidates)` renames every module apart (`tasks.ports`, slang), writes one
differential testbench for the whole group (`tasks.difftb`) and runs it through the verifier
(`verilog_tools.icarus.simulate`: policy, container, nonce-marked verdict). The untrusted `design` is a
generated wrapper, the candidates and a renamed copy of the reference; the trusted `testbench` is the
renamed reference and the generated tb module.

Every module of the run (the reference on the testbench side, its copy and the candidates on the
design side) has the time unit 1ns/1ps, so a reference's `#1` means the same on both sides.

One simulation scores a group. Its first two slots check the reference itself: its copy on the design
side must match it everywhere (else it is nondeterministic, or the policy or the testbench cannot take
it), and at least one output bit must be 0/1 in at least one sample (else nothing is compared). When
no output bit is ever 0/1 and `StimulusConfig.start` is "auto" (the default), the group runs again with
every variable of every design starting at 0 (`tasks.difftb`: registers without a reset become
comparable; the candidates' text is untouched, their own initial values still count). A reference
failing either check (from a zero start too: undriven outputs, several drivers) is excluded with a
counted reason (`excluded`), and so are references whose ports cannot be driven and references with no
inputs whose outputs only a zero start defines. When the group's run fails as a whole (a candidate
that hangs, or one whose ports do not fit breaks the compile) the reference check and each candidate
run alone. A candidate with compiler directives (`define, `timescale...) always runs alone: its macros
would reach the candidates after it.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tasks import difftb
from tasks.difftb import Slot, StimulusConfig
from tasks.ports import InterfaceError, module_declarations, read_interface, read_variables, rename_modules
from verilog_tools import checker
from verilog_tools import status as st
from verilog_tools.text import tokenize

_EXCLUDED_BECAUSE = {
    st.SYNTAX_ERROR: "reference does not compile in the differential testbench",
    st.COMPILE_ERROR: "reference does not compile in the differential testbench",
    st.REJECTED: "reference refused by the design policy (system tasks, includes...)",
    st.TIMEOUT: "reference simulation does not finish (combinational loop, or too slow)",
    st.RUNTIME_ERROR: "reference simulation fails or ends without a verdict",
}


@dataclass
class Verdict:
    """One candidate's outcome: a verifier status, and the mismatching and compared samples when simulated."""

    status: str
    mismatches: int | None = None
    samples: int | None = None

    @property
    def match_fraction(self) -> float:
        if self.status == st.PASS:
            return 1.0
        if self.status == st.MISMATCH and self.samples:
            return 1.0 - self.mismatches / self.samples
        return 0.0


@dataclass
class GroupResult:
    excluded: str | None                 # why the reference cannot be used (then verdicts are all None)
    verdicts: list[Verdict | None]
    simulations: int = 0
    grouped: bool = True                 # False when the group run failed and candidates ran alone
    zero_start: bool = False             # True when every variable started at 0 (tasks.difftb docstring)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Reference:
    tag: str
    name: str             # the reference's top module (original name)
    roles: difftb.Roles
    tb_text: str          # the reference with its modules renamed for the testbench
    ref_top: str
    copy: str             # the reference renamed again for the design side (slot 0)
    copy_top: str


@dataclass(frozen=True)
class _Design:
    text: str             # a candidate (or the reference's copy) with its modules renamed
    top: str

    def variables(self) -> tuple:
        """What a zero start sets in it, read by slang in a bounded checker worker (the text is a model's);
        nothing when slang cannot elaborate it in time (iverilog judges it)."""
        ok, found = checker.call_bounded(read_variables, self.text, self.top)
        return tuple(found) if ok else ()


def _tag(*texts: str) -> str:
    return hashlib.sha256("\0".join(texts).encode("utf-8", "replace")).hexdigest()[:10]


def _has_directive(code: str) -> bool:
    return any(t.kind == "dir" for t in tokenize(code))


def _renamed(code: str, prefix: str, top: str | None) -> _Design:
    """`code` with its modules renamed under `prefix` (its top module becomes `prefix` itself)."""
    names = module_declarations(code)
    if not names:
        raise InterfaceError("no module declaration found")
    top = top if top in names else names[0] if len(names) == 1 else names[-1]
    renames = {n: prefix if n == top else f"{prefix}_{n}" for n in names}
    return _Design(rename_modules(code, renames), prefix)


def _undefines(code: str) -> str:
    """`undef lines for the macros `code` defines, so they stop at the end of the reference."""
    tokens = tokenize(code)
    names = [tokens[i + 1].name for i, t in enumerate(tokens[:-1]) if t.kind == "dir" and t.text == "`define"]
    return "".join(f"`undef {n}\n" for n in dict.fromkeys(names))


def prepare_reference(reference: str, module: str | None, tag: str) -> _Reference:
    """Read the reference's ports and rename it for both sides; InterfaceError says why it cannot be used."""
    iface = read_interface(reference, module)
    roles = difftb.recognise_roles(iface)
    if not roles.outputs:
        raise InterfaceError("no outputs")
    tb = _renamed(reference, f"itertl_ref_{tag}", iface.name)
    copy = _renamed(reference, f"itertl_self_{tag}", iface.name)
    return _Reference(tag, iface.name, roles, tb.text, tb.top, copy.text, copy.top)


def _simulate(ref: _Reference, designs: list[_Design], with_self: bool, cfg: StimulusConfig,
              limits, run_id: str, zero: bool):
    """One run: slots [self, unknown] (when with_self) + `designs`, from a zero start when `zero`.
    Returns (status, per-slot mismatch counts or None, samples)."""
    from verilog_tools import icarus

    copy = _Design(ref.copy, ref.copy_top)
    slot_designs = ([copy, None] if with_self else []) + list(designs)
    slots = [Slot(Slot.UNKNOWN) if d is None else Slot(d.top, d.variables() if zero else ())
             for d in slot_designs]
    ref_variables = _Design(ref.tb_text, ref.ref_top).variables() if zero else None
    wrapper, tb_top = f"itertl_group_{ref.tag}{run_id}", f"itertl_tb_{ref.tag}{run_id}"
    samples = difftb.samples_per_slot(ref.roles, cfg)
    # The reference shares the candidates' time unit: iverilog's default (1 s) would stretch its `#1`
    tb = ("`timescale 1ns/1ps\n" + ref.tb_text.rstrip() + "\n" + _undefines(ref.tb_text)
          + "`resetall\n`timescale 1ns/1ps\n"
          + difftb.testbench(tb_top, ref.ref_top, wrapper, ref.roles, slots, cfg, ref_variables))
    parts = [difftb.group_wrapper(wrapper, ref.roles, slots)] + [d.text for d in designs]
    if with_self:
        parts.append(ref.copy)   # last: its macros must not reach the candidates
    result = icarus.simulate("\n".join(parts), tb, top=tb_top, dut_module=wrapper, limits=limits,
                             expected_samples=samples * len(slots))
    counts = None
    if result.status in (st.PASS, st.MISMATCH) and result.checks == samples * len(slots):
        counts = difftb.parse_slot_counts(result.verdict_lines, samples, len(slots), result.mismatches)
    return result.status, counts, samples


def _self_verdict(ref: _Reference, counts: list[int], samples: int, zero: bool) -> str | None:
    if counts[0]:
        return f"reference differs from its own copy in {counts[0]} of {samples} samples (nondeterministic)"
    if counts[1] == samples and not zero:
        return NEVER_DEFINED
    if counts[1] == samples:
        return ("reference outputs are X/Z in every bit of every sample, even from a zero start (undriven "
                "outputs, several drivers on one net)")
    if zero and not (ref.roles.data or ref.roles.clock or ref.roles.reset):
        return ("reference outputs are defined only by a zero start and it has no inputs (an always @* that "
                "reads no signal never runs in simulation)")
    return None


NEVER_DEFINED = "reference outputs are X/Z in every bit of every sample from an X start (no reset, or undriven)"


def default_limits():
    """A differential run takes well under a second (a few hundred cycles); 10 s of CPU is ample, and a
    hanging candidate then costs its group 10 s of CPU, not the verifier's general 60. The wall-clock
    limit is 30 s so that a loaded machine does not time out a slow reference: measured, the 7b
    references 824 (a 64M-word memory) and 1244 (a 307,200-word memory cleared on each reset) take 2.7 and 4.5 s
    of CPU and ran past a 10 s wall-clock limit at a load average of 12 on 2 cores."""
    from verilog_tools.icarus import SimLimits
    return SimLimits(compile_wall_seconds=30.0, sim_wall_seconds=30.0, cpu_seconds=10.0)


def _reference_run(ref, designs, together, cfg, limits, result: GroupResult):
    """The group run (reference check + `together`), or the reference check alone when the group run
    fails; again from a zero start when the reference's outputs are never defined from X and `cfg.start`
    is "auto". Returns (counts, together, zero); counts is None when the reference is unusable."""
    zero = cfg.start == "zero"
    while True:
        status, counts, samples = _simulate(ref, [designs[i] for i in together], True, cfg, limits,
                                            "z" if zero else "", zero)
        result.simulations += 1
        if counts is None and together:
            result.grouped = False
            result.notes.append(f"group run ended {status}: candidates ran alone")
            status, counts, _ = _simulate(ref, [], True, cfg, limits, "zs" if zero else "s", zero)
            result.simulations += 1
            together = []
        if counts is None or zero or cfg.start != "auto" or counts[1] != samples:
            break
        zero = True
        result.notes.append("reference outputs never defined from X: every variable starts at 0")
    if counts is None:
        result.excluded = _EXCLUDED_BECAUSE.get(status, f"reference check ended {status}")
    else:
        result.excluded = _self_verdict(ref, counts, samples, zero)
    return counts, together, zero


def _alone(ref, design: _Design, cfg, limits, run_id: str, zero: bool, result: GroupResult) -> Verdict:
    """One candidate in a run of its own. From a zero start, a compile error that the same run from X
    does not have is the testbench's (a variable slang listed and iverilog does not know): unscorable."""
    status, counts, samples = _simulate(ref, [design], False, cfg, limits, run_id, zero)
    result.simulations += 1
    if zero and status == st.COMPILE_ERROR:
        plain, _, _ = _simulate(ref, [design], False, cfg, limits, run_id + "x", False)
        result.simulations += 1
        if plain != st.COMPILE_ERROR:
            result.notes.append(f"{run_id}: the zero start of this candidate does not compile")
            return Verdict(st.INFRA_ERROR)
    return Verdict(status, counts[0], samples) if counts else Verdict(status)


def check_group(reference: str, candidates: list[str], *, module: str | None = None,
                cfg: StimulusConfig | None = None, limits=None, group: bool = True) -> GroupResult:
    """Verdicts of `candidates` (compilable Verilog) against `reference` (module `module`, default its
    last); `limits` (icarus.SimLimits or runner.Limits) default to `default_limits()`."""
    cfg = cfg or StimulusConfig()
    limits = limits or default_limits()
    tag = _tag(reference, *candidates)
    try:
        ref = prepare_reference(reference, module, tag)
    except InterfaceError as exc:
        return GroupResult(f"reference ports: {exc}", [None] * len(candidates))
    verdicts: list[Verdict | None] = [None] * len(candidates)
    designs: dict[int, _Design] = {}
    for i, cand in enumerate(candidates):
        ok, design = checker.call_bounded(_renamed, cand, f"itertl_c{i}_{tag}", ref.name)   # a model's text
        if ok:
            designs[i] = design
        else:
            verdicts[i] = Verdict(st.COMPILE_ERROR)
    samples = difftb.samples_per_slot(ref.roles, cfg)
    together = [i for i in designs if group and not _has_directive(candidates[i])][:difftb.MAX_SLOTS - 2]
    result = GroupResult(None, verdicts)
    counts, together, zero = _reference_run(ref, designs, together, cfg, limits, result)
    if result.excluded:
        result.verdicts = [None] * len(candidates)
        return result
    for i, c in zip(together, counts[2:]):
        verdicts[i] = Verdict(st.PASS if c == 0 else st.MISMATCH, c, samples)
    for i in designs:
        if verdicts[i] is None:
            verdicts[i] = _alone(ref, designs[i], cfg, limits, f"c{i}", zero, result)
    result.zero_start = zero
    return result


def check_groups(items: list[tuple[str, list[str], str | None]], *, cfg: StimulusConfig | None = None,
                 limits=None, workers: int = 1, group: bool = True) -> list[GroupResult]:
    """`check_group` for each (reference, candidates, module), `workers` groups at a time."""
    def one(item):
        reference, candidates, module = item
        return check_group(reference, candidates, module=module, cfg=cfg, limits=limits, group=group)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, items))
