"""What a synthetic family produces (`Design`) and the phrasing helpers the families share.

A `Design` is everything needed to render a task: ports, the reference body, clocking, the
stimulus plan and the natural-language specification. Reference code follows one house style
(4-space indent, ANSI headers, sized constants, non-blocking assignments in clocked blocks) so
that a small model trained on it sees consistent idioms.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

INDENT = "    "


@dataclass(frozen=True)
class Port:
    name: str
    direction: str            # "input" | "output"
    width: int = 1
    reg: bool = False         # output assigned in an always block: declared `output reg`

    def declaration(self) -> str:
        kind = "output reg" if self.reg else self.direction
        bits = f" [{self.width - 1}:0]" if self.width > 1 else ""
        return f"{kind}{bits} {self.name}"

    def phrase(self) -> str:
        return f"{self.name} ({self.width} bit{'s' if self.width > 1 else ''})"


@dataclass(frozen=True)
class Reset:
    name: str
    active_low: bool
    asynchronous: bool

    def condition(self) -> str:
        return f"!{self.name}" if self.active_low else self.name

    def sensitivity(self, clock: str) -> str:
        if not self.asynchronous:
            return f"posedge {clock}"
        edge = "negedge" if self.active_low else "posedge"
        return f"posedge {clock} or {edge} {self.name}"

    def sentence(self, effect: str) -> str:
        level = "0" if self.active_low else "1"
        polarity = "active-low" if self.active_low else "active-high"
        if self.asynchronous:
            return (f"The reset {self.name} is {polarity} and asynchronous: whenever {self.name} "
                    f"is {level}, {effect} immediately, without waiting for a clock edge.")
        return (f"The reset {self.name} is {polarity} and synchronous: when {self.name} is "
                f"{level} at a rising clock edge, {effect}.")


@dataclass(frozen=True)
class Stimulus:
    """How the testbench drives the inputs (clocked designs: per clock cycle)."""
    cycles: int = 120                       # random cycles (combinational: random vectors)
    warmup: int = 0                         # cycles after the first reset with no random reset
    reset_every: int = 16                   # a random reset about once per this many cycles
    enables: tuple[str, ...] = ()           # inputs held high 3/4 of the time
    equal_pairs: tuple[tuple[str, str], ...] = ()   # (a, b): some vectors drive b = a
    walking: bool = False                   # one-hot and all-zero/all-one corner vectors
    pattern: tuple[str, str] = ("", "")     # (input, bits): feed bits often, back to back


@dataclass(frozen=True)
class Design:
    family: str
    level: int
    signature: tuple[str, ...]   # family + key parameters; decides the held-out split
    description: str
    ports: tuple[Port, ...]
    body: str                    # module body: the lines between the header and endmodule
    clock: str | None = None
    reset: Reset | None = None
    stimulus: Stimulus = field(default_factory=Stimulus)

    def header(self, name: str = "top_module") -> str:
        lines = ",\n".join(INDENT + port.declaration() for port in self.ports)
        return f"module {name}(\n{lines}\n);"

    def module(self, name: str = "top_module") -> str:
        return f"{self.header(name)}\n{self.body}endmodule\n"

    @property
    def inputs(self) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.direction == "input")

    @property
    def outputs(self) -> tuple[Port, ...]:
        return tuple(p for p in self.ports if p.direction == "output")


# Name pools avoid Verilog keywords and the testbench's own names (clk, stats1, stim1, ...).
DATA_NAMES = (("a", "b", "c", "d"), ("x", "y", "z", "w"), ("in0", "in1", "in2", "in3"),
              ("p", "q", "r", "s"), ("i0", "i1", "i2", "i3"))
OUT_NAMES = ("out", "y", "f", "result", "o")
VECTOR_NAMES = ("in", "data", "din", "vec", "x")
RESET_NAMES = {(False, False): ("reset", "rst", "srst"), (False, True): ("areset", "arst", "rst"),
               (True, False): ("resetn", "rst_n", "srst_n"), (True, True): ("aresetn", "arst_n",
                                                                            "rst_n")}


def pick_inputs(rng: random.Random, count: int, avoid: tuple[str, ...] = ()) -> list[str]:
    """`count` distinct input names from one pool, avoiding names already in use."""
    pools = [pool for pool in DATA_NAMES if not set(pool[:count]) & set(avoid)]
    return list(rng.choice(pools)[:count])


def pick(rng: random.Random, names: tuple[str, ...], avoid: tuple[str, ...] | list[str] = ()) -> str:
    return rng.choice([n for n in names if n not in avoid])


def pick_reset(rng: random.Random, level: int) -> Reset:
    """Level 1: synchronous active-high; higher levels vary polarity and synchronicity."""
    active_low = level > 1 and rng.random() < 0.5
    asynchronous = level > 1 and rng.random() < 0.5
    return Reset(rng.choice(RESET_NAMES[(active_low, asynchronous)]), active_low, asynchronous)


def opening(rng: random.Random, summary: str) -> str:
    templates = ("Implement a module named top_module that {}.",
                 "Design a circuit that {}.",
                 "Write a Verilog module top_module that {}.",
                 "Create a module that {}.",
                 "Build a digital block that {}.")
    return rng.choice(templates).format(summary)


def port_sentence(rng: random.Random, design_ports: list[Port]) -> str:
    ins = [p.phrase() for p in design_ports if p.direction == "input"]
    outs = [p.phrase() for p in design_ports if p.direction == "output"]
    ins_text, outs_text = join_words(ins), join_words(outs)
    if rng.random() < 0.5:
        return (f"The input{'s are' if len(ins) > 1 else ' is'} {ins_text}; the "
                f"output{'s are' if len(outs) > 1 else ' is'} {outs_text}.")
    return f"It has input{'s' if len(ins) > 1 else ''} {ins_text} and output{'s' if len(outs) > 1 else ''} {outs_text}."


def clock_sentence(clock: str) -> str:
    return f"All flip-flops are triggered by the rising edge of {clock}."


def join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def const(width: int, value: int, base: str = "d") -> str:
    """A sized literal, e.g. const(4, 9) -> 4'd9; binary and hex keep the full width."""
    value &= (1 << width) - 1
    if base == "b":
        return f"{width}'b{value:0{width}b}"
    if base == "h":
        return f"{width}'h{value:0{(width + 3) // 4}x}"
    return f"{width}'d{value}"


def describe(design_ports: list[Port], rng: random.Random, summary: str, *details: str) -> str:
    text = " ".join([opening(rng, summary), port_sentence(rng, design_ports), *details])
    return re.sub(r"\ba (?=(?:8|11|18)\D)", "an ", text)   # "an 8-bit", "an 11-bit"
