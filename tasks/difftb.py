"""Differential testbenches: a reference and one or more candidates driven by the same stimulus, compared.

The testbench is generated from the reference's ports as slang elaborates them (`tasks.ports`).

Clock and reset, recognised from names and use (lower-cased, split at `_`):
- clock: the first 1-bit input named clk / clock / clk<digits> (alone or as one `_` part: `i_clk`,
  `clk_in`, `sys_clock`); failing that, the first 1-bit input the reference uses as an edge
  (`posedge x` / `negedge x`) whose name does not look like a reset. None: the design is driven as
  combinational (a new vector, a settle delay, a comparison).
- reset: the first other 1-bit input named rst / reset / areset / arst / srst / clr / clear or with those
  as a `_` part, also `rstn`, `resetn`, `nrst`, `nreset`, `aresetn`. Active low when the reference uses it
  with `negedge`, else active high when used with `posedge`, else by name: active low when the name
  (or its reset part) ends in `n`, `_n`, `_b`, `_l` or starts with `n`.
Wrong guesses cost stimulus quality, never correctness: reference and candidates always see the same
waveform, so equivalent designs still agree. A missed clock is driven as random data (its edges still
come); a missed reset is random data (half the time asserted); a reset with the wrong polarity holds
the design in reset most of the time, and mutants then survive (the calibration measures this).

Stimulus (seeded, `StimulusConfig.seed`): `reset_cycles` vectors with reset asserted and data zero, then
corner vectors (all zeros, all ones, each single bit set in every input at once; at most a quarter of
`cycles`, spread over the bits of wide inputs), then random vectors:
uniform, sparse (a few low bits) and all-ones/zeros in a 6:2:1:1 mix; after the first `reset_cycles`
the reset is asserted again with probability `reset_rate` per vector.

Timing per vector, sequential: clock falls; 1 later the inputs change; 2 later compare; 2 later clock
rises; 2 later compare; 3 later the clock falls again (2 comparisons per vector). Combinational: the
inputs change, compare 5 later (1 comparison). Comparisons never share a time step with a change.

Comparison: all outputs concatenated, `ref !== (ref ^ dut ^ ref)`, VerilogEval's rule: an X/Z bit of the
candidate where the reference has 0/1 is a mismatch; an X or Z bit of the reference is a don't-care
(Z is first turned into X: `z !== x` would count an undriven reference bit as a mismatch).

Start state (`StimulusConfig.start`, chosen per group by `tasks.equivalence`): every variable starts as
Verilog says, X, and a reset must define it. From a zero start (`testbench(..., ref_variables=...)`) the
testbench first sets every X or Z bit of every 4-state variable of the reference and of each candidate
to 0, at time 0 through hierarchical names (`tasks.ports.read_variables`
lists them; the candidates' text is not touched), as an FPGA after configuration or Verilator's
`--x-initial 0` starts. It copies each variable through a 2-state `bit` vector, which keeps 0/1 bits and
turns X/Z into 0, so a design's own initial value (`reg q = 1`, `initial q = 1`) survives whichever
initial block runs first at time 0 (an X that a design's initial block writes itself may become 0 or
stay). The copy goes back by `force` and `release`, which leaves a plain variable at the new value and
hands a variable that a continuous assignment drives (`output reg y; assign y = t;`) back to its
driver; memory words are assigned directly. Nets are not variables and are left alone (an undriven
output stays Z, two drivers stay X). What it cannot see: variables `read_variables` does not list (unnamed
`begin` blocks, instance arrays, enums, multi-dimensional memories) keep X; a variable going from X to
0 is a negative edge at time 0 for `always @(negedge v)`; an `always @*` that reads no signal never
runs in simulation, so its output keeps its start value where synthesis would give the constant.

Verdict: the testbench prints one line per slot, `Mismatches: c in S samples of slot i` (i = 0..n-1, in
order), then the total `Mismatches: N in M samples` with N = sum c_i and M = n*S, which the verifier
reads as the run's verdict (the last nonce-marked line). Every line starts with the `Mismatches:`
literal, so the verifier marks each with its nonce and the design cannot print one
(`verilog_tools.icarus`); `parse_slot_counts` reads the per-slot lines strictly from the nonce-marked
lines the verifier returns. A slot may instead count the samples where the reference's outputs have no
0/1 bit (`Slot.UNKNOWN`), which tells a reference whose outputs are never defined.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tasks.ports import MAX_PORT_BITS, ModuleInterface, Port, Variable
from verilog_tools.config import option as _f
from verilog_tools.errors import UserError

STARTS = ("auto", "x", "zero")
MAX_SLOTS = 256   # a group run compares at most this many slots (its verdict total stays far below 2**31)
_SLOT_LINE = re.compile(r"Mismatches: (\d+) in (\d+) samples of slot (\d+)")
_CLOCK_PART = re.compile(r"^(clk\d*|clock\d*)$")
_RESET_PART = re.compile(r"^(a?s?rst|a?s?reset|a?rstn|a?s?resetn|nrst|nreset|clr|clear)$")


@dataclass
class StimulusConfig:
    cycles: int = _f(256, "stimulus vectors after reset (one clock cycle each for a clocked design)")
    reset_cycles: int = _f(2, "vectors with reset asserted at the start")
    reset_rate: float = _f(1 / 32, "chance of reset being asserted again on a later vector")
    seed: int = _f(0, "seed of the random stimulus")
    start: str = _f("auto", "start state of every variable: 'x' (Verilog's X until a reset defines it), "
                    "'zero' (0, as an FPGA after configuration), 'auto' (x; zero when the reference's "
                    "outputs are never defined from x)")

    def __post_init__(self):
        if self.start not in STARTS:
            raise UserError(f"StimulusConfig.start must be one of {STARTS}, got {self.start!r}")
        if self.cycles < 1 or self.reset_cycles < 0:
            raise UserError(f"StimulusConfig: cycles must be >= 1 and reset_cycles >= 0, got "
                            f"{self.cycles}, {self.reset_cycles}")
        if not 0 <= self.reset_rate <= 1:
            raise UserError(f"StimulusConfig.reset_rate must be in [0, 1], got {self.reset_rate}")


@dataclass(frozen=True)
class Roles:
    clock: str | None
    reset: str | None
    reset_active_low: bool
    data: tuple[Port, ...]       # every other input, in port order
    outputs: tuple[Port, ...]


def _parts(name: str) -> list[str]:
    return [p for p in name.lower().split("_") if p]


def _reset_like(name: str) -> bool:
    return any(_RESET_PART.match(p) for p in _parts(name))


def recognise_roles(iface: ModuleInterface) -> Roles:
    """Clock, reset and data inputs of a reference (the rules are in the module docstring)."""
    bits = [p for p in iface.inputs if p.width == 1]
    clock = next((p.name for p in bits if any(_CLOCK_PART.match(x) for x in _parts(p.name))), None)
    if clock is None:
        clock = next((p.name for p in bits if p.name in iface.edges and not _reset_like(p.name)), None)
    reset = next((p.name for p in bits if p.name != clock and _reset_like(p.name)), None)
    low = False
    if reset is not None:
        edges = iface.edges.get(reset, frozenset())
        if "negedge" in edges:
            low = True
        elif "posedge" not in edges:
            part = next(x for x in _parts(reset) if _RESET_PART.match(x))
            last = _parts(reset)[-1]
            low = part.endswith("n") or part.startswith("n") or last in ("n", "b", "l", "low")
    data = tuple(p for p in iface.inputs if p.name not in (clock, reset))
    return Roles(clock, reset, low, data, tuple(iface.outputs))


def stimulus(roles: Roles, cfg: StimulusConfig) -> list[tuple[int, list[int]]]:
    """(reset asserted?, one value per data input) for every vector."""
    rng = random.Random(f"difftb:{cfg.seed}")
    widths = [p.width for p in roles.data]
    vectors = [(1, [0] * len(widths)) for _ in range(cfg.reset_cycles if roles.reset else 0)]
    corners = [[0] * len(widths), [(1 << w) - 1 for w in widths]]
    widest = max(widths, default=0)
    walk = min(widest, max(1, cfg.cycles // 4))   # wide inputs: single bits spread over the width
    corners += [[(1 << b) if b < w else 0 for w in widths] for b in sorted({k * widest // walk for k in range(walk)})]

    def draw(w: int) -> int:
        kind = rng.random()
        if kind < 0.6:
            return rng.getrandbits(w)
        if kind < 0.8:
            return rng.getrandbits(min(w, 3))
        return (1 << w) - 1 if kind < 0.9 else 0
    for i in range(cfg.cycles):
        values = corners[i] if i < len(corners) else [draw(w) for w in widths]
        vectors.append((int(roles.reset is not None and rng.random() < cfg.reset_rate), values))
    return vectors


@dataclass(frozen=True)
class Slot:
    """One compared thing in a testbench: a candidate module's outputs, or the reference's unknown bits."""

    UNKNOWN = "<unknown>"
    module: str                   # the candidate's module name in the design, or Slot.UNKNOWN
    variables: tuple[Variable, ...] = ()   # what a zero start sets (read_variables of the candidate)


def samples_per_slot(roles: Roles, cfg: StimulusConfig) -> int:
    vectors = cfg.cycles + (cfg.reset_cycles if roles.reset else 0)
    return vectors * (2 if roles.clock else 1)


def parse_slot_counts(lines, samples: int, n_slots: int, total: int | None) -> list[int] | None:
    """Per-slot mismatch counts from the verifier's nonce-marked lines (nonce removed), or None unless
    there is exactly one well-formed line per slot, in slot order, each over `samples` samples with at
    most `samples` mismatches, and their sum equals the run's verdict `total`."""
    counts: list[int] = []
    for line in lines:
        if not line.startswith("Mismatches:") or " of slot " not in line:
            continue   # the total line, read by the verifier
        m = _SLOT_LINE.fullmatch(line.strip())
        if m is None or int(m.group(3)) != len(counts) or int(m.group(2)) != samples or int(m.group(1)) > samples:
            return None
        counts.append(int(m.group(1)))
    if len(counts) != n_slots or total is None or sum(counts) != total:
        return None
    return counts


def _zero_start(prefix: str, variables) -> list[str]:
    """Testbench lines that turn the X/Z bits of each variable under `prefix` into 0 (module docstring)."""
    lines = []
    for v in variables:
        name = f"{prefix}.{v.path}"
        if v.words is None:
            lines.append(f"    itertl_zero = {name}; force {name} = itertl_zero; release {name};")
        else:
            lines.append(f"    for (itertl_k = {v.words[0]}; itertl_k <= {v.words[1]}; itertl_k = itertl_k + 1) "
                         f"begin itertl_zero = {name}[itertl_k]; {name}[itertl_k] = itertl_zero; end")
    return lines


def _decl(p: Port, prefix: str = "") -> str:
    return f"[{p.width - 1}:0] {prefix}{p.name}" if p.width > 1 else f"{prefix}{p.name}"


def _out(i: int, name: str) -> str:
    return f"itertl_o{i}_{name}"


def group_wrapper(name: str, roles: Roles, slots: list[Slot]) -> str:
    """A module `name` with the reference's inputs and each slot's outputs, instantiating each candidate
    slot by named ports (the design side of a group run)."""
    inputs = [p for p in roles.data] + [Port(n, "input", 1) for n in (roles.clock, roles.reset) if n]
    ports = [f"input {_decl(p)}" for p in inputs]
    body = []
    for i, slot in enumerate(slots):
        if slot.module == Slot.UNKNOWN:
            continue
        ports += [f"output {_decl(Port(_out(i, p.name), 'output', p.width))}" for p in roles.outputs]
        conns = [f".{p.name}({p.name})" for p in inputs] + [f".{p.name}({_out(i, p.name)})" for p in roles.outputs]
        body.append(f"  {slot.module} itertl_u{i} ({', '.join(conns)});")
    return f"module {name} (\n  " + ",\n  ".join(ports) + "\n);\n" + "\n".join(body) + "\nendmodule\n"


def testbench(top: str, ref_module: str, wrapper: str, roles: Roles, slots: list[Slot],
              cfg: StimulusConfig, ref_variables: tuple[Variable, ...] | None = None) -> str:
    """The tb module `top`: the reference `ref_module` and the wrapper `wrapper` side by side. With
    `ref_variables` (a tuple, maybe empty) both sides start from zero: the reference's listed variables
    and each slot's `variables` (module docstring)."""
    vectors = stimulus(roles, cfg)
    if len(slots) > MAX_SLOTS:
        raise ValueError(f"{len(slots)} slots in one testbench (at most {MAX_SLOTS})")
    data_bits = sum(p.width for p in roles.data)
    width = data_bits + 1   # the reset bit (kept even without a reset; it stays 0)
    inputs = [p for p in roles.data] + [Port(n, "input", 1) for n in (roles.clock, roles.reset) if n]
    lines = [f"module {top};"]
    lines += [f"  reg {_decl(p)};" for p in inputs]
    lines += [f"  wire {_decl(p, 'itertl_ref_')};" for p in roles.outputs]
    for i, slot in enumerate(slots):
        if slot.module != Slot.UNKNOWN:
            lines += [f"  wire {_decl(Port(_out(i, p.name), 'output', p.width))};" for p in roles.outputs]
    lines.append(f"  reg [{width - 1}:0] itertl_stim [0:{len(vectors) - 1}];")
    lines.append("  reg itertl_reset_bit;\n  integer itertl_i, itertl_k, itertl_samples, itertl_total;")
    lines.append(f"  bit [{MAX_PORT_BITS - 1}:0] itertl_zero;   // 2-state: X/Z bits become 0 on assignment")
    lines += [f"  integer itertl_err{i};" for i in range(len(slots))]
    conns = [f".{p.name}({p.name})" for p in inputs]
    lines.append(f"  {ref_module} itertl_ref (" + ", ".join(conns + [f".{p.name}(itertl_ref_{p.name})"
                                                                    for p in roles.outputs]) + ");")
    wrap_conns = conns + [f".{_out(i, p.name)}({_out(i, p.name)})" for i, s in enumerate(slots)
                          if s.module != Slot.UNKNOWN for p in roles.outputs]
    lines.append(f"  {wrapper} itertl_group (" + ", ".join(wrap_conns) + ");")
    lines += _check_task(roles, slots)
    reset_value = "itertl_reset_bit" if not roles.reset_active_low else "!itertl_reset_bit"
    data_cat = "{" + ", ".join(["itertl_reset_bit"] + [p.name for p in roles.data]) + "}"
    body = ["  initial begin"]
    if ref_variables is not None:
        body += _zero_start("itertl_ref", ref_variables)
        body += [line for i, s in enumerate(slots) if s.module != Slot.UNKNOWN
                 for line in _zero_start(f"itertl_group.itertl_u{i}", s.variables)]
    body += [f"    itertl_stim[{k}] = {width}'h{(rst << data_bits | _pack(roles.data, values)):x};"
             for k, (rst, values) in enumerate(vectors)]
    body += ["    itertl_samples = 0;"] + [f"    itertl_err{i} = 0;" for i in range(len(slots))]
    if roles.clock:
        body.append(f"    {roles.clock} = 0;")
    body.append(f"    for (itertl_i = 0; itertl_i < {len(vectors)}; itertl_i = itertl_i + 1) begin")
    apply = [f"{data_cat} = itertl_stim[itertl_i];"] + ([f"{roles.reset} = {reset_value};"] if roles.reset else [])
    if roles.clock:
        body += [f"      #1 {apply[0]}"] + [f"      {a}" for a in apply[1:]]
        body += ["      #2 itertl_check;", f"      #2 {roles.clock} = 1;", "      #2 itertl_check;",
                 f"      #3 {roles.clock} = 0;"]
    else:
        body += [f"      {a}" for a in apply] + ["      #5 itertl_check;", "      #5;"]
    body.append("    end")
    body += _verdict(len(slots)) + ["    $finish;", "  end", "endmodule"]
    return "\n".join(lines + body) + "\n"


def _check_task(roles: Roles, slots: list[Slot]) -> list[str]:
    """The task that compares every slot once (the comparison rule is in the module docstring)."""
    out_bits = sum(p.width for p in roles.outputs)
    ref_cat = "itertl_refv"   # the reference's outputs with Z turned into X (`^ 1'b0`): both don't-cares
    check = [f"  reg [{out_bits - 1}:0] itertl_refv;", "  task itertl_check;", "    begin",
             "      itertl_samples = itertl_samples + 1;",
             "      itertl_refv = {" + ", ".join(f"itertl_ref_{p.name}" for p in roles.outputs) + "} ^ 1'b0;"]
    for i, slot in enumerate(slots):
        if slot.module == Slot.UNKNOWN:
            check.append(f"      if (({ref_cat} ^ {ref_cat}) === {{{out_bits}{{1'bx}}}}) itertl_err{i} = itertl_err{i} + 1;")
        else:
            dut_cat = "{" + ", ".join(_out(i, p.name) for p in roles.outputs) + "}"
            check.append(f"      if ({ref_cat} !== ({ref_cat} ^ {dut_cat} ^ {ref_cat})) "
                         f"itertl_err{i} = itertl_err{i} + 1;")
    return check + ["    end", "  endtask"]


def _verdict(n_slots: int) -> list[str]:
    """One line per slot, then the total the verifier judges (module docstring, "Verdict")."""
    body = ["    itertl_total = 0;"]
    for i in range(n_slots):
        body.append(f'    $display("Mismatches: %1d in %1d samples of slot %1d", itertl_err{i}, itertl_samples, {i});')
        body.append(f"    itertl_total = itertl_total + itertl_err{i};")
    body.append(f'    $display("Mismatches: %1d in %1d samples", itertl_total, itertl_samples * {n_slots});')
    return body


def _pack(ports: tuple[Port, ...], values: list[int]) -> int:
    packed = 0
    for p, v in zip(ports, values):
        packed = (packed << p.width) | (v & ((1 << p.width) - 1))
    return packed
