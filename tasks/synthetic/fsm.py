"""Sequence-detector family: a Moore or Mealy machine that spots a 3- or 4-bit pattern on a
serial input, with overlapping or non-overlapping matches. States count the matched prefix
length (a KMP automaton), so the reference is the minimal textbook FSM."""
from __future__ import annotations

import random

from tasks.synthetic.design import INDENT, Design, Port, Stimulus, clock_sentence, describe, pick, pick_reset
from tasks.synthetic.seq import clocked_block, reset_kind

I2, I3 = INDENT * 2, INDENT * 3


def _longest_prefix_suffix(text: str, pattern: str, limit: int) -> int:
    """Length k <= limit of the longest prefix of `pattern` that `text` ends with."""
    for k in range(min(limit, len(text)), 0, -1):
        if text.endswith(pattern[:k]):
            return k
    return 0


def transitions(pattern: str, moore: bool, overlap: bool) -> list[tuple[int, int]]:
    """next state for input 0 and 1, per state (state = number of pattern bits matched)."""
    size = len(pattern)
    table = []
    for state in range(size + 1 if moore else size):
        row = []
        for bit in "01":
            if state == size:   # Moore detect state
                text = pattern + bit if overlap else bit
                row.append(_longest_prefix_suffix(text, pattern, size))
                continue
            k = _longest_prefix_suffix(pattern[:state] + bit, pattern, size)
            if k == size and not moore:   # Mealy: the match is reported on the transition
                k = _longest_prefix_suffix(pattern[1:], pattern, size - 1) if overlap else 0
            row.append(k)
        table.append(tuple(row))
    return table


def make_seqdet(rng: random.Random, level: int) -> Design:
    size = 3 if level == 1 else (rng.choice((3, 4)) if level == 2 else 4)
    pattern = "".join(rng.choice("01") for _ in range(size))
    moore = level == 1 or rng.random() < 0.5
    overlap = rng.random() < 0.5
    reset = pick_reset(rng, level)
    x, z = pick(rng, ("x", "in", "din", "s")), pick(rng, ("z", "detect", "match", "found"))
    ports = (Port("clk", "input"), Port(reset.name, "input"), Port(x, "input"), Port(z, "output"))
    table = transitions(pattern, moore, overlap)
    bits = (len(table) - 1).bit_length()
    names = ", ".join(f"S{i} = {bits}'d{i}" for i in range(len(table)))
    arms = "".join(f"{I3}S{s}: next_state = " + (f"{x} ? S{one} : S{zero};\n" if one != zero else f"S{one};\n")
                   for s, (zero, one) in enumerate(table))
    body = (f"{INDENT}localparam {names};\n\n{INDENT}reg [{bits - 1}:0] state, next_state;\n\n"
            + clocked_block(reset, "clk", "state <= S0;", [f"{I2}else", f"{I3}state <= next_state;"])
            + f"\n{INDENT}always @(*) begin\n{I2}case (state)\n{arms}{I3}default: next_state = S0;\n"
            f"{I2}endcase\n{INDENT}end\n\n")
    if moore:
        body += f"{INDENT}assign {z} = (state == S{size});\n"
    else:
        body += f"{INDENT}assign {z} = (state == S{size - 1}) && {'' if pattern[-1] == '1' else '!'}{x};\n"
    order = ", then ".join(pattern)
    details = [clock_sentence("clk"),
               f"The serial input {x} is sampled on every rising edge; the pattern {pattern} arrives "
               f"first bit first ({order}).",
               (f"{z} is a Moore output: it depends only on the state and is 1 during the clock cycle "
                f"that follows the rising edge at which the last bit of the pattern was sampled." if moore else
                f"{z} is a Mealy output: it is 1, combinationally, whenever the bits sampled at the "
                f"previous rising edges followed by the current value of {x} complete the pattern."),
               ("Matches may overlap: the last bits of one occurrence can be the first bits of the next."
                if overlap else "Matches do not overlap: after a detection, matching starts over with "
                "the bit that follows the detected pattern."),
               reset.sentence("the detector returns to its initial state, in which no bit of the "
                              "pattern has been matched")]
    summary = f"detects the bit pattern {pattern} on a serial input with a {'Moore' if moore else 'Mealy'} FSM"
    return Design("seqdet", level, ("seqdet", pattern, "moore" if moore else "mealy", str(overlap),
                                    reset_kind(reset)),
                  describe(list(ports), rng, summary, *details), ports, body, clock="clk", reset=reset,
                  stimulus=Stimulus(cycles=160, reset_every=48, pattern=(x, pattern)))
