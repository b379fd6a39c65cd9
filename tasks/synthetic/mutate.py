"""Single-fault mutation of Verilog designs: one operator or one constant changed.

Used to check that a testbench catches wrong designs (a mutated reference should fail) and
reusable for any benchmark. Only module bodies are touched, never headers, declarations,
`localparam`/`parameter` values (renumbering states is usually an equivalent mutant),
sensitivity lists, delays or `for` headers (a changed loop bound can hang the simulator).
Replacements keep the text well-formed: part-select bounds stay ordered and non-negative.
"""
from __future__ import annotations

import random
import re

_TOKEN = re.compile(r"""
    (?P<num>\d+\s*'[sS]?[bBoOdDhH]\s*[0-9a-fA-F_xXzZ?]+|'[sS]?[bBoOdDhH][0-9a-fA-F_]+|'[01xXzZ]|\d[\d_]*)
  | (?P<id>[A-Za-z_$][\w$]*)
  | (?P<op>===|!==|==|!=|<=|>=|<<<|>>>|<<|>>|&&|\|\||~\^|\^~|~&|~\||->|\+:|-:|[-+*/%&|^~!<>?:=(){}\[\];,.\#@])
  | (?P<other>\S)
""", re.VERBOSE)
_BLOCK = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\"", re.DOTALL)
_SWAPS = {"&": ("|",), "|": ("&",), "^": ("~^",), "~^": ("^",), "^~": ("^",), "&&": ("||",),
          "||": ("&&",), "+": ("-",), "-": ("+",), "==": ("!=",), "!=": ("==",), "===": ("!==",),
          "!==": ("===",), "<": ("<=", ">"), ">": (">=", "<"), "<=": ("<",), ">=": (">",),
          "<<": (">>",), ">>": ("<<",)}
_DECLARATIONS = {"localparam", "parameter", "reg", "wire", "integer", "logic", "input", "output",
                 "inout", "genvar", "bit", "int", "function", "task"}
_SKIP_PARENS = {"for", "@", "#"}


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def _bodies(masked: str) -> list[tuple[int, int]]:
    """(start, end) of every module body: after the header's ';' up to 'endmodule'."""
    spans = []
    for found in re.finditer(r"\b(?:module|macromodule)\b", masked):
        start = masked.find(";", found.end())
        end = masked.find("endmodule", start)
        if start >= 0 and end > start:
            spans.append((start + 1, end))
    return spans


def _number_options(text: str, low: int = 0, high: int | None = None) -> list[str]:
    """Other values for the literal `text` (same size and base); [] for x/z literals."""
    sized = re.fullmatch(r"(\d+)?\s*'([sS]?)([bBoOdDhH])\s*([0-9a-fA-F_]+)", text)
    if sized:
        width, signed, base, digits = sized.groups()
        radix = {"b": 2, "o": 8, "d": 10, "h": 16}[base.lower()]
        value, bits = int(digits.replace("_", ""), radix), int(width or 32)
        ndigits = len(digits.replace("_", "")) if radix != 10 else 0
        news = sorted({(value + 1) % (1 << bits), (value - 1) % (1 << bits),
                       value ^ (1 << (bits - 1))} - {value})
        spell = {2: "b", 8: "o", 10: "d", 16: "x"}[radix]
        return [f"{width or ''}'{signed}{base}{new:0{ndigits}{spell}}" for new in news]
    if text in ("'0", "'1"):   # SystemVerilog fill literals
        return ["'1" if text == "'0" else "'0"]
    if not re.fullmatch(r"\d[\d_]*", text):
        return []
    value = int(text.replace("_", ""))
    return [str(v) for v in (value - 1, value + 1) if v >= low and (high is None or v <= high)]


def _match_back(tokens: list[tuple[str, str, int, int]], index: int, close: str, open_: str) -> int:
    """Index of the bracket opening the one that closes at `index` (or -1)."""
    depth = 0
    for j in range(index, -1, -1):
        depth += tokens[j][1] == close
        depth -= tokens[j][1] == open_
        if depth == 0:
            return j
    return -1


def _match_forward(tokens: list[tuple[str, str, int, int]], index: int) -> int:
    depth = 0
    for j in range(index, len(tokens)):
        depth += tokens[j][1] == "("
        depth -= tokens[j][1] == ")"
        if depth == 0:
            return j
    return -1


def _operand_start(tokens, index: int) -> int:
    """Start of the primary expression ending at token `index` (or -1)."""
    kind, text = tokens[index][0], tokens[index][1]
    while True:
        if text == ")":
            index = _match_back(tokens, index, ")", "(")
            if index > 0 and tokens[index - 1][0] == "id":
                return -1   # function call: leave it alone
            return index
        if text == "]":
            index = _match_back(tokens, index, "]", "[") - 1
            if index < 0:
                return -1
            kind, text = tokens[index][0], tokens[index][1]
            continue
        return index if kind in ("id", "num") else -1


def _number_bounds(tokens, i: int) -> tuple[int, int | None]:
    """(low, high) for a number inside [...] so part-selects stay ordered and non-negative."""
    prev, nxt = tokens[i - 1][1], tokens[i + 1][1] if i + 1 < len(tokens) else ""
    if nxt == ":" and i + 2 < len(tokens) and tokens[i + 2][0] == "num" and tokens[i + 2][1].isdigit():
        # msb of [msb:lsb]: only shrink; widening a select that is then truncated is invisible
        lsb = int(tokens[i + 2][1])
        msb = tokens[i][1]
        return lsb, (int(msb) if msb.isdigit() and int(msb) > lsb else None)
    if prev == ":" and tokens[i - 2][0] == "num" and tokens[i - 2][1].isdigit():
        return 0, int(tokens[i - 2][1])               # lsb of [msb:lsb]
    if prev in ("+:", "-:") or nxt == "{":
        return 1, None                                # part-select width, replication count
    if prev == "[" and nxt == "]" and tokens[i][1].isdigit() and int(tokens[i][1]) > 0:
        return 0, int(tokens[i][1])                   # bit index: lower it, raising may leave the range
    return 0, None


def mutation_sites(code: str) -> list[tuple[int, int, list[str]]]:
    """(start, end, replacements) for every place `mutate` may change in `code`."""
    masked = _BLOCK.sub(_blank, code)
    sites = []
    for body_start, body_end in _bodies(masked):
        tokens = [(m.lastgroup, m.group(), m.start(), m.end())
                  for m in _TOKEN.finditer(masked, body_start, body_end)]
        sites += _body_sites(code, tokens)
    return sites


def _body_sites(code: str, tokens) -> list[tuple[int, int, list[str]]]:
    sites, parens, brackets, in_decl = [], [], 0, False
    for i, (kind, text, start, end) in enumerate(tokens):
        prev = tokens[i - 1][1] if i else ";"
        glued_next = tokens[i + 1][1] if i + 1 < len(tokens) and tokens[i + 1][2] == end else ""
        skipping = in_decl or "skip" in parens or prev == "#"
        if text in _DECLARATIONS:
            in_decl = True
        elif text == ";":
            in_decl = in_decl and bool(parens)
        elif text == "(":
            parens.append("skip" if prev in _SKIP_PARENS else "expr")
        elif text == ")" and parens:
            parens.pop()
        elif text in ("[", "]"):
            brackets += 1 if text == "[" else -1
        if skipping:
            continue
        if kind == "num":
            low, high = _number_bounds(tokens, i) if brackets else (0, None)
            options = _number_options(text, low, high)
            sites += [(start, end, options)] if options else []
        elif kind == "op" and text in _SWAPS and not (text == "<=" and not parens) \
                and not (glued_next == "=" and text not in ("<=", ">=")):   # x ^= y, x <<= 1
            sites.append((start, end, list(_SWAPS[text])))
        elif kind == "op" and text in ("~", "!") and i + 1 < len(tokens) and tokens[i + 1][0] != "op" \
                or text in ("~", "!") and tokens[i + 1][1] == "(":
            sites.append((start, end, [""]))
        elif text == "?" and i:
            first = _operand_start(tokens, i - 1)
            if first >= 0 and tokens[first - 1][1] not in ("!", "~"):
                at = tokens[first][2]
                sites.append((at, at, ["!"]))
        elif text == "if" and i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            close = _match_forward(tokens, i + 1)
            if close > 0:
                group = code[tokens[i + 1][2]:tokens[close][3]]
                sites.append((tokens[i + 1][2], tokens[close][3], [f"(!{group})"]))
    return sites


def mutate(code: str, rng: random.Random) -> str | None:
    """`code` with one operator or constant changed in a module body, or None if there is no
    place to change. The choice is drawn from `rng`, so a seeded rng gives a fixed mutant."""
    sites = mutation_sites(code)
    if not sites:
        return None
    start, end, options = rng.choice(sites)
    return code[:start] + rng.choice(options) + code[end:]
