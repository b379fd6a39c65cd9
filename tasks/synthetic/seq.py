"""Sequential families: D flip-flops, counters, shift registers, edge detectors and small
Moore/Mealy sequence detectors. Each `make_*` maps (rng, level) to a `Design`."""
from __future__ import annotations

import random

from tasks.synthetic.design import (INDENT, VECTOR_NAMES, Design, Port, Reset, Stimulus,
                                    clock_sentence, const, describe, pick, pick_reset)

I2, I3, I4 = INDENT * 2, INDENT * 3, INDENT * 4


def clocked_block(reset: Reset, clock: str, reset_stmt: str, rest: list[str]) -> str:
    """An always block: reset branch first, then `rest` (already indented one level)."""
    lines = [f"{INDENT}always @({reset.sensitivity(clock)}) begin",
             f"{I2}if ({reset.condition()})", f"{I3}{reset_stmt}", *rest, f"{INDENT}end"]
    return "\n".join(lines) + "\n"


def reset_kind(reset: Reset) -> str:
    return ("async" if reset.asynchronous else "sync") + ("_low" if reset.active_low else "_high")


def make_dff(rng: random.Random, level: int) -> Design:
    width = {1: rng.choice((1, 1, 4, 8)), 2: rng.randint(1, 8), 3: rng.randint(4, 16)}[level]
    reset = pick_reset(rng, level)
    enable = level == 3 or (level == 2 and rng.random() < 0.5)
    init = 0 if level == 1 else rng.randrange(1 << width)
    d, q, en = pick(rng, ("d", "data", "din")), pick(rng, ("q", "dout", "qout")), "en"
    ports = [Port("clk", "input"), Port(reset.name, "input"), Port(d, "input", width)]
    ports += [Port(en, "input")] if enable else []
    ports.append(Port(q, "output", width, reg=True))
    init_text = const(width, init, "h" if width > 4 else "b")
    rest = [f"{I2}else if ({en})" if enable else f"{I2}else", f"{I3}{q} <= {d};"]
    body = clocked_block(reset, "clk", f"{q} <= {init_text};", rest)
    what = f"{width} D flip-flop{'s' if width > 1 else ''}"
    details = [clock_sentence("clk"),
               f"On each rising edge {q} takes the value of {d}"
               + (f" when {en} is 1; when {en} is 0, {q} keeps its value." if enable else "."),
               reset.sentence(f"{q} becomes {init_text} (decimal {init})")]
    return Design("dff", level, ("dff", str(width), reset_kind(reset), str(enable), str(init == 0)),
                  describe(ports, rng, f"holds a {width}-bit value in {what}", *details), tuple(ports),
                  body, clock="clk", reset=reset,
                  stimulus=Stimulus(enables=(en,) if enable else ()))


def _count_step(direction: str, q: str, width: int, modulus: int | None) -> str:
    one, zero = const(width, 1), const(width, 0)
    if modulus is None:
        return f"{q} <= {q} {'+' if direction == 'up' else '-'} {one};"
    top = const(width, modulus - 1)
    if direction == "up":
        return f"{q} <= ({q} == {top}) ? {zero} : {q} + {one};"
    return f"{q} <= ({q} == {zero}) ? {top} : {q} - {one};"


def make_counter(rng: random.Random, level: int) -> Design:
    direction = {1: "up", 2: rng.choice(("up", "down")), 3: rng.choice(("up", "down", "updown"))}[level]
    width = rng.randint(*{1: (3, 4), 2: (4, 6), 3: (4, 8)}[level])
    modulus = None if level == 1 or rng.random() < 0.3 else rng.randint(3, (1 << width) - 1)
    enable = level == 3 or rng.random() < 0.5
    reset = pick_reset(rng, level)
    q = pick(rng, ("count", "q", "cnt"))
    ports = [Port("clk", "input"), Port(reset.name, "input")] + ([Port("en", "input")] if enable else [])
    ports += [Port("up", "input")] if direction == "updown" else []
    ports.append(Port(q, "output", width, reg=True))
    if direction == "updown":
        rest = [f"{I2}else if (en) begin" if enable else f"{I2}else begin", f"{I3}if (up)",
                f"{I4}{_count_step('up', q, width, modulus)}", f"{I3}else",
                f"{I4}{_count_step('down', q, width, modulus)}", f"{I2}end"]
    else:
        rest = [f"{I2}else if (en)" if enable else f"{I2}else", f"{I3}{_count_step(direction, q, width, modulus)}"]
    body = clocked_block(reset, "clk", f"{q} <= {const(width, 0)};", rest)
    span = modulus or (1 << width)
    steps = {"up": "counts up by 1", "down": "counts down by 1",
             "updown": "counts up by 1 when up is 1 and down by 1 when up is 0"}[direction]
    wrap = (f"It counts modulo {span}: the value after {span - 1} is 0 when counting up, and the "
            f"value after 0 is {span - 1} when counting down." if direction == "updown" else
            f"After {span - 1} it wraps to 0." if direction == "up" else f"After 0 it wraps to {span - 1}.")
    details = [clock_sentence("clk"), f"On each rising edge {q} {steps}"
               + (" if en is 1 (when en is 0 it holds its value)." if enable else "."),
               wrap, reset.sentence(f"{q} becomes 0")]
    summary = f"implements a {width}-bit {'up/down' if direction == 'updown' else direction} counter"
    return Design("counter", level, ("counter", direction, str(width), str(modulus), str(enable),
                                     reset_kind(reset)),
                  describe(ports, rng, summary, *details), tuple(ports), body, clock="clk", reset=reset,
                  stimulus=Stimulus(warmup=span * 3 // 2 + 10, reset_every=40,
                                    enables=("en",) if enable else ()))


def make_shiftreg(rng: random.Random, level: int) -> Design:
    width = rng.randint(*{1: (4, 8), 2: (4, 12), 3: (8, 16)}[level])
    left = rng.random() < 0.5
    enable = level > 1 and rng.random() < 0.5
    load = level == 3 and rng.random() < 0.7
    reset = pick_reset(rng, level)
    q, sin = pick(rng, ("q", "data", "sr")), pick(rng, ("sin", "serial_in", "din"))
    ports = [Port("clk", "input"), Port(reset.name, "input"), Port(sin, "input")]
    ports += [Port("en", "input")] if enable else []
    ports += [Port("load", "input"), Port("d", "input", width)] if load else []
    ports.append(Port(q, "output", width, reg=True))
    shifted = f"{{{q}[{width - 2}:0], {sin}}}" if left else f"{{{sin}, {q}[{width - 1}:1]}}"
    rest = [f"{I2}else if (load)", f"{I3}{q} <= d;"] if load else []
    rest += [f"{I2}else if (en)" if enable else f"{I2}else", f"{I3}{q} <= {shifted};"]
    body = clocked_block(reset, "clk", f"{q} <= {const(width, 0)};", rest)
    enters, leaves = (f"{q}[0]", f"{q}[{width - 1}]") if left else (f"{q}[{width - 1}]", f"{q}[0]")
    details = [clock_sentence("clk"),
               f"On each rising edge{' with en equal to 1' if enable else ''}, {q} shifts "
               f"{'left' if left else 'right'} by one bit: {enters} takes the value of {sin} and the "
               f"old {leaves} is discarded." + (f" When en is 0, {q} holds its value." if enable else "")]
    if load:
        details.append(f"When load is 1 at a rising edge, {q} is loaded with d instead; load has "
                       f"priority over shifting{' and does not depend on en' if enable else ''}.")
    details.append(reset.sentence(f"{q} becomes 0"))
    summary = f"implements a {width}-bit {'left' if left else 'right'}-shift register with serial input"
    return Design("shiftreg", level, ("shiftreg", "left" if left else "right", str(width), str(enable),
                                      str(load), reset_kind(reset)),
                  describe(ports, rng, summary, *details), tuple(ports), body, clock="clk", reset=reset,
                  stimulus=Stimulus(enables=("en",) if enable else (), reset_every=32))


_EDGES = {"rising": ("{v} & ~{p}", "changes from 0 to 1", "{v}[i] is 1 and prev[i] is 0"),
          "falling": ("~{v} & {p}", "changes from 1 to 0", "{v}[i] is 0 and prev[i] is 1"),
          "both": ("{v} ^ {p}", "changes value (in either direction)", "{v}[i] differs from prev[i]")}


def make_edge(rng: random.Random, level: int) -> Design:
    kind = {1: "rising", 2: rng.choice(("rising", "falling")), 3: rng.choice(list(_EDGES))}[level]
    width = rng.randint(*{1: (1, 4), 2: (1, 8), 3: (1, 16)}[level])
    registered = level < 3 or rng.random() < 0.5
    vec = pick(rng, VECTOR_NAMES)
    out = pick(rng, {"rising": ("rise", "pedge"), "falling": ("fall", "nedge"), "both": ("anyedge", "toggle")}[kind])
    ports = (Port("clk", "input"), Port(vec, "input", width), Port(out, "output", width, reg=registered))
    expr = _EDGES[kind][0].format(v=vec, p="prev")
    bits = f"[{width - 1}:0] " if width > 1 else ""
    if registered:
        body = (f"{INDENT}reg {bits}prev;\n\n{INDENT}always @(posedge clk) begin\n"
                f"{I2}prev <= {vec};\n{I2}{out} <= {expr};\n{INDENT}end\n")
        rule = (f"At each rising edge of clk, {out}[i] is set to 1 if {vec}[i] {_EDGES[kind][1]} "
                f"between the previous rising edge and this one, and to 0 otherwise; so {out}[i] "
                f"is 1 for the one cycle after the change.")
    else:
        body = (f"{INDENT}reg {bits}prev;\n\n{INDENT}always @(posedge clk)\n{I2}prev <= {vec};\n\n"
                f"{INDENT}assign {out} = {expr};\n")
        rule = (f"A register prev captures {vec} on every rising edge of clk. {out}[i] is "
                f"combinational (no extra register): it is 1 whenever "
                f"{_EDGES[kind][2].format(v=vec)}, and 0 otherwise.")
    summary = f"detects {kind} edges{' on each bit' if width > 1 else ''} of a {width}-bit input"
    details = [rule.replace("[i]", "") if width == 1 else rule, "There is no reset."]
    return Design("edge", level, ("edge", kind, str(width), str(registered)),
                  describe(list(ports), rng, summary, *details), ports, body, clock="clk")
