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

Verdict: the testbench prints ONE `Mismatches: N in M samples` line (the verifier reads only the last
nonce-marked line). For a group of n slots each compared S times, M = n*S and N packs the per-slot
mismatch counts c_i in base S+1: N = sum_i c_i * (S+1)^i (`decode_counts`). With one slot it is the
plain count. A slot may instead count the samples where the reference's outputs have an X/Z bit
(`Slot.UNKNOWN`: every output bit X/Z), which tells a reference whose outputs are never defined.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tasks.ports import ModuleInterface, Port
from verilog_tools.config import option as _f

VERDICT_BITS = 256
_CLOCK_PART = re.compile(r"^(clk\d*|clock\d*)$")
_RESET_PART = re.compile(r"^(a?s?rst|a?s?reset|a?rstn|a?s?resetn|nrst|nreset|clr|clear)$")


@dataclass
class StimulusConfig:
    cycles: int = _f(256, "stimulus vectors after reset (one clock cycle each for a clocked design)")
    reset_cycles: int = _f(2, "vectors with reset asserted at the start")
    reset_rate: float = _f(1 / 32, "chance of reset being asserted again on a later vector")
    seed: int = _f(0, "seed of the random stimulus")

    def __post_init__(self):
        if self.cycles < 1 or self.reset_cycles < 0:
            raise ValueError(f"StimulusConfig: cycles must be >= 1 and reset_cycles >= 0, got "
                             f"{self.cycles}, {self.reset_cycles}")
        if not 0 <= self.reset_rate <= 1:
            raise ValueError(f"StimulusConfig.reset_rate must be in [0, 1], got {self.reset_rate}")


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


def samples_per_slot(roles: Roles, cfg: StimulusConfig) -> int:
    vectors = cfg.cycles + (cfg.reset_cycles if roles.reset else 0)
    return vectors * (2 if roles.clock else 1)


def max_slots(samples: int) -> int:
    """How many slots one verdict can pack (see the module docstring)."""
    return max(1, (VERDICT_BITS - 1) // (samples + 1).bit_length())


def decode_counts(mismatches: int, samples: int, n_slots: int) -> list[int]:
    """Per-slot mismatch counts from a packed verdict."""
    base = samples + 1
    return [(mismatches // base ** i) % base for i in range(n_slots)]


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
              cfg: StimulusConfig) -> str:
    """The tb module `top`: the reference `ref_module` and the wrapper `wrapper` side by side."""
    vectors = stimulus(roles, cfg)
    samples = samples_per_slot(roles, cfg)
    if len(slots) > max_slots(samples):
        raise ValueError(f"{len(slots)} slots do not fit one verdict of {samples} samples each")
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
    lines.append(f"  reg itertl_reset_bit;\n  integer itertl_i, itertl_samples;\n  reg [{VERDICT_BITS - 1}:0] itertl_verdict;")
    lines += [f"  integer itertl_err{i};" for i in range(len(slots))]
    conns = [f".{p.name}({p.name})" for p in inputs]
    lines.append(f"  {ref_module} itertl_ref (" + ", ".join(conns + [f".{p.name}(itertl_ref_{p.name})"
                                                                    for p in roles.outputs]) + ");")
    wrap_conns = conns + [f".{_out(i, p.name)}({_out(i, p.name)})" for i, s in enumerate(slots)
                          if s.module != Slot.UNKNOWN for p in roles.outputs]
    lines.append(f"  {wrapper} itertl_group (" + ", ".join(wrap_conns) + ");")
    out_bits = sum(p.width for p in roles.outputs)
    lines.append(f"  reg [{out_bits - 1}:0] itertl_refv;")
    ref_cat = "itertl_refv"   # the reference's outputs with Z turned into X (`^ 1'b0`): both don't-cares
    check = ["  task itertl_check;", "    begin", "      itertl_samples = itertl_samples + 1;",
             "      itertl_refv = {" + ", ".join(f"itertl_ref_{p.name}" for p in roles.outputs) + "} ^ 1'b0;"]
    for i, slot in enumerate(slots):
        if slot.module == Slot.UNKNOWN:
            check.append(f"      if (({ref_cat} ^ {ref_cat}) === {{{out_bits}{{1'bx}}}}) itertl_err{i} = itertl_err{i} + 1;")
        else:
            dut_cat = "{" + ", ".join(_out(i, p.name) for p in roles.outputs) + "}"
            check.append(f"      if ({ref_cat} !== ({ref_cat} ^ {dut_cat} ^ {ref_cat})) "
                         f"itertl_err{i} = itertl_err{i} + 1;")
    lines += check + ["    end", "  endtask"]
    reset_value = "itertl_reset_bit" if not roles.reset_active_low else "!itertl_reset_bit"
    data_cat = "{" + ", ".join(["itertl_reset_bit"] + [p.name for p in roles.data]) + "}"
    body = ["  initial begin"]
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
    body.append("    itertl_verdict = 0;")
    body += [f"    itertl_verdict = itertl_verdict * {samples + 1} + itertl_err{i};"
             for i in reversed(range(len(slots)))]
    body.append(f'    $display("Mismatches: %1d in %1d samples", itertl_verdict, itertl_samples * {len(slots)});')
    body += ["    $finish;", "  end", "endmodule"]
    return "\n".join(lines + body) + "\n"


def _pack(ports: tuple[Port, ...], values: list[int]) -> int:
    packed = 0
    for p, v in zip(ports, values):
        packed = (packed << p.width) | (v & ((1 << p.width) - 1))
    return packed
