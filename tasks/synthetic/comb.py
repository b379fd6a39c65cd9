"""Combinational families: gates, multiplexers, decoders, priority encoders, adders,
comparators, parity and population count. Each `make_*` maps (rng, level) to a `Design`."""
from __future__ import annotations

import random

from tasks.synthetic.design import (INDENT, OUT_NAMES, VECTOR_NAMES, Design, Port, Stimulus,
                                    const, describe, join_words, pick, pick_inputs)

_OPS = {"AND": "&", "OR": "|", "XOR": "^"}


def _tree(rng: random.Random, leaves: list[int]):
    """A random binary expression tree over input indices `leaves` (in order), optional NOTs."""
    if len(leaves) == 1:
        node = ("leaf", leaves[0])
    else:
        cut = rng.randrange(1, len(leaves))
        node = (rng.choice(list(_OPS)), _tree(rng, leaves[:cut]), _tree(rng, leaves[cut:]))
    return ("NOT", node) if rng.random() < 0.25 else node


def _render(node, words: bool, names: list[str]) -> str:
    kind = node[0]
    if kind == "leaf":
        return names[node[1]]
    if kind == "NOT":
        inner = _render(node[1], words, names)
        inner = inner if node[1][0] in ("leaf", "NOT") else f"({inner})"
        return f"NOT {inner}" if words else f"~{inner}"
    parts = [_render(child, words, names) for child in node[1:]]
    parts = [p if c[0] in ("leaf", "NOT") else f"({p})" for p, c in zip(parts, node[1:])]
    return f" {kind if words else _OPS[kind]} ".join(parts)


def make_gates(rng: random.Random, level: int) -> Design:
    count = level + 1
    width = rng.choice((1, 1, 2, 4)) if level == 1 else rng.randint(1, 4 * level)
    names = pick_inputs(rng, count)
    out = pick(rng, OUT_NAMES, names)
    tree = _tree(rng, list(range(count)))
    if level == 1:   # one named gate
        gate = rng.choice(("AND", "OR", "XOR", "NAND", "NOR", "XNOR"))
        base = {"NAND": "AND", "NOR": "OR", "XNOR": "XOR"}.get(gate, gate)
        tree = (base, ("leaf", 0), ("leaf", 1))
        tree = ("NOT", tree) if base != gate else tree
    ports = [Port(n, "input", width) for n in names] + [Port(out, "output", width)]
    shape = _render(tree, False, [f"v{i}" for i in range(count)])
    scope = (f"The operations are bitwise: each bit of {out} is computed from the same bit "
             f"of every input." if width > 1 else "")
    summary = f"computes {out} = {_render(tree, True, names)}"
    return Design("gates", level, ("gates", str(width), shape),
                  describe(ports, rng, summary, scope).strip(), tuple(ports),
                  f"{INDENT}assign {out} = {_render(tree, False, names)};\n",
                  stimulus=Stimulus(walking=width > 1))


def make_mux(rng: random.Random, level: int) -> Design:
    options = {1: [(2, (1, 4))], 2: [(4, (1, 8)), (2, (5, 16))], 3: [(8, (1, 8)), (4, (9, 16))]}
    ways, widths = rng.choice(options[level])
    width = rng.randint(*widths)
    prefix = rng.choice("di")
    names = pick_inputs(rng, ways) if ways <= 4 else [f"{prefix}{i}" for i in range(ways)]
    sel_bits = ways.bit_length() - 1
    sel = pick(rng, ("sel", "s", "select"), names)
    out = pick(rng, OUT_NAMES, names)
    ports = [Port(n, "input", width) for n in names] + [Port(sel, "input", sel_bits)]
    if ways == 2:
        ports.append(Port(out, "output", width))
        body = f"{INDENT}assign {out} = {sel} ? {names[1]} : {names[0]};\n"
    else:
        ports.append(Port(out, "output", width, reg=True))
        items = "".join(f"{INDENT * 3}{const(sel_bits, i)}: {out} = {n};\n" for i, n in enumerate(names))
        body = (f"{INDENT}always @(*) begin\n{INDENT * 2}case ({sel})\n{items}"
                f"{INDENT * 2}endcase\n{INDENT}end\n")
    choices = join_words([f"{n} when {sel} is {i}" for i, n in enumerate(names)])
    summary = f"is a {ways}-to-1 multiplexer of {width}-bit values"
    detail = f"The output {out} equals {choices}."
    return Design("mux", level, ("mux", str(ways), str(width)), describe(ports, rng, summary, detail),
                  tuple(ports), body)


def make_decoder(rng: random.Random, level: int) -> Design:
    bits = level + 1
    enable = rng.random() < 0.5
    active_low = level == 3 and rng.random() < 0.5
    sel = pick(rng, ("a", "sel", "code", "in"))
    out = pick(rng, ("y", "out", "dec") if not active_low else ("y_n", "out_n", "dec_n"))
    en = pick(rng, ("en", "enable"))
    n = 1 << bits
    ports = [Port(sel, "input", bits)] + ([Port(en, "input")] if enable else []) + [Port(out, "output", n)]
    onehot = f"{const(n, 1, 'b')} << {sel}"
    expr = f"{en} ? ({onehot}) : {const(n, 0, 'b')}" if enable else onehot
    expr = f"~({expr})" if active_low else expr
    value = "0" if active_low else "1"
    detail = (f"Output bit {out}[i] is {value} exactly when {sel} equals i"
              + (f" and {en} is 1" if enable else "") + "; every other output bit is "
              + ("1." if active_low else "0."))
    if enable:
        detail += f" When {en} is 0, all output bits are {'1' if active_low else '0'}."
    summary = f"is a {bits}-to-{n} decoder with {'active-low' if active_low else 'one-hot'} outputs"
    return Design("decoder", level, ("decoder", str(bits), str(enable), str(active_low)),
                  describe(ports, rng, summary, detail), tuple(ports),
                  f"{INDENT}assign {out} = {expr};\n")


def make_prienc(rng: random.Random, level: int) -> Design:
    width = {1: 4, 2: 8, 3: rng.choice((8, 16))}[level]
    highest = rng.random() < 0.5
    with_valid = level > 1 and rng.random() < 0.6
    vec = pick(rng, VECTOR_NAMES)
    pos = pick(rng, ("pos", "idx", "index", "code"))
    bits = (width - 1).bit_length()
    ports = [Port(vec, "input", width), Port(pos, "output", bits, reg=True)]
    loop = (f"for (i = 0; i < {width}; i = i + 1)" if highest else
            f"for (i = {width - 1}; i >= 0; i = i - 1)")
    body = (f"{INDENT}integer i;\n\n{INDENT}always @(*) begin\n{INDENT * 2}{pos} = {const(bits, 0)};\n"
            f"{INDENT * 2}{loop}\n{INDENT * 3}if ({vec}[i])\n{INDENT * 4}{pos} = i;\n{INDENT}end\n")
    rank = "highest" if highest else "lowest"
    details = [f"{pos} is the index of the {rank}-numbered bit of {vec} that is 1 "
               f"(bit {width - 1 if highest else 0} has the highest priority); if no bit of "
               f"{vec} is 1, {pos} is 0."]
    if with_valid:
        ports.append(Port("valid", "output"))
        body += f"\n{INDENT}assign valid = |{vec};\n"
        details.append(f"valid is 1 when at least one bit of {vec} is 1, otherwise 0.")
    summary = f"is a {width}-bit priority encoder"
    return Design("prienc", level, ("prienc", str(width), rank, str(with_valid)),
                  describe(ports, rng, summary, *details), tuple(ports), body,
                  stimulus=Stimulus(walking=True))


_ADDERS = {1: ("add", "sub"), 2: ("add_cout", "sub_borrow", "add_cin"), 3: ("add_cin_cout", "addsub")}
# variant: (extra input, carry output, right-hand side, behaviour); {a} {b} {r} {w} {w1} filled in
_ADDER_SPECS = {
    "add": (None, None, "{a} + {b}", "{r} is the sum {a} + {b}, truncated to {w} bits (the carry is dropped)."),
    "sub": (None, None, "{a} - {b}", "{r} is the difference {a} - {b} modulo 2^{w} (unsigned, wrapping)."),
    "add_cout": (None, "cout", "{a} + {b}", "{{cout, {r}}} is the {w1}-bit unsigned sum {a} + {b}: {r} "
                 "holds the low {w} bits and cout the carry out."),
    "sub_borrow": (None, "borrow", "{a} - {b}", "{r} is {a} - {b} modulo 2^{w}, and borrow is 1 exactly "
                   "when {a} < {b} (unsigned)."),
    "add_cin": ("cin", None, "{a} + {b} + cin", "{r} is {a} + {b} + cin, truncated to {w} bits."),
    "add_cin_cout": ("cin", "cout", "{a} + {b} + cin", "{{cout, {r}}} is the {w1}-bit unsigned sum "
                     "{a} + {b} + cin: {r} holds the low {w} bits and cout the carry out."),
    "addsub": ("sub", None, "sub ? {a} - {b} : {a} + {b}", "When sub is 0, {r} is {a} + {b}; when sub "
               "is 1, {r} is {a} - {b}; both modulo 2^{w} (unsigned, wrapping)."),
}


def make_adder(rng: random.Random, level: int) -> Design:
    variant = rng.choice(_ADDERS[level])
    width = rng.randint(*{1: (2, 4), 2: (4, 8), 3: (8, 16)}[level])
    a, b = pick_inputs(rng, 2)
    res = "diff" if variant.startswith("sub") else pick(rng, ("sum", "s", "result"), (a, b))
    extra_in, carry, rhs, text = _ADDER_SPECS[variant]
    ports = [Port(a, "input", width), Port(b, "input", width)]
    ports += [Port(extra_in, "input")] if extra_in else []
    ports += [Port(res, "output", width)] + ([Port(carry, "output")] if carry else [])
    names = {"a": a, "b": b, "r": res, "w": width, "w1": width + 1}
    lhs = f"{{{carry}, {res}}}" if carry else res
    kind = {"addsub": "adder/subtractor", "sub": "subtractor", "sub_borrow": "subtractor"}.get(variant, "adder")
    return Design("adder", level, ("adder", variant, str(width)),
                  describe(ports, rng, f"is a {width}-bit {kind}", text.format(**names)), tuple(ports),
                  f"{INDENT}assign {lhs} = {rhs.format(**names)};\n",
                  stimulus=Stimulus(equal_pairs=((a, b),), walking=True))


_RELATIONS = {"eq": ("==", "equal to"), "neq": ("!=", "not equal to"), "lt": ("<", "less than"),
              "gt": (">", "greater than"), "le": ("<=", "less than or equal to"),
              "ge": (">=", "greater than or equal to")}


def make_compare(rng: random.Random, level: int) -> Design:
    width = rng.randint(*{1: (1, 4), 2: (4, 8), 3: (8, 16)}[level])
    signed = level == 3 and rng.random() < 0.5
    names = list(_RELATIONS)
    outs = [rng.choice(("eq", "neq"))] if level == 1 else sorted(rng.sample(names, rng.randint(2, 3)), key=names.index)
    a, b = pick_inputs(rng, 2)
    ports = [Port(a, "input", width), Port(b, "input", width)] + [Port(o, "output") for o in outs]
    wrap = (lambda s: f"$signed({s})") if signed else (lambda s: s)
    body = "".join(f"{INDENT}assign {o} = ({wrap(a)} {_RELATIONS[o][0]} {wrap(b)});\n" for o in outs)
    kind = "two's-complement signed" if signed else "unsigned"
    details = [f"{o} is 1 when {a} is {_RELATIONS[o][1]} {b}, otherwise 0." for o in outs]
    summary = f"compares two {width}-bit {kind} numbers"
    return Design("compare", level, ("compare", str(width), "+".join(outs), str(signed)),
                  describe(ports, rng, summary, *details), tuple(ports), body,
                  stimulus=Stimulus(equal_pairs=((a, b),), walking=True))


def make_parity(rng: random.Random, level: int) -> Design:
    width = rng.randint(*{1: (2, 4), 2: (5, 8), 3: (9, 16)}[level])
    odd = rng.random() < 0.5
    vec = pick(rng, VECTOR_NAMES)
    out = pick(rng, ("p", "parity", "par"))
    ports = [Port(vec, "input", width), Port(out, "output")]
    kind = "odd" if odd else "even"
    detail = (f"{out} is the {kind} parity bit of {vec}: it is chosen so that the {width + 1} bits "
              f"of {vec} and {out} together contain an {kind} number of 1s.")
    return Design("parity", level, ("parity", str(width), kind),
                  describe(ports, rng, f"computes the {kind} parity of a {width}-bit input", detail),
                  tuple(ports), f"{INDENT}assign {out} = {'~^' if odd else '^'}{vec};\n",
                  stimulus=Stimulus(walking=True))


def make_popcount(rng: random.Random, level: int) -> Design:
    width = rng.randint(*{1: (3, 4), 2: (5, 8), 3: (9, 16)}[level])
    zeros = rng.random() < 0.3
    vec = pick(rng, VECTOR_NAMES)
    out = pick(rng, ("count", "cnt", "ones" if not zeros else "zeros"))
    bits = width.bit_length()
    ports = [Port(vec, "input", width), Port(out, "output", bits, reg=True)]
    term = f"!{vec}[i]" if zeros else f"{vec}[i]"
    body = (f"{INDENT}integer i;\n\n{INDENT}always @(*) begin\n{INDENT * 2}{out} = 0;\n"
            f"{INDENT * 2}for (i = 0; i < {width}; i = i + 1)\n"
            f"{INDENT * 3}{out} = {out} + {term};\n{INDENT}end\n")
    what = "0s" if zeros else "1s"
    detail = f"{out} is the number of bits of {vec} that are {what[0]}, as a {bits}-bit unsigned number."
    return Design("popcount", level, ("popcount", str(width), what),
                  describe(ports, rng, f"counts the {what} in a {width}-bit input", detail),
                  tuple(ports), body, stimulus=Stimulus(walking=True))
