"""Equivalent rewrites of a reference, for calibrating the equivalence score (each must still pass).

Four rewrites, each returning None where it finds nothing to change:
- `reformat`: comments dropped, blank lines doubled, every line re-indented, spaces collapsed;
- `rename_internals`: every net/variable/parameter of the module that is not a port renamed (slang
  lists them; every token with that name is renamed, so scoping is kept);
- `swap_operands`: `x & y` -> `y & x` for one-character commutative operators between two plain
  names, only where the pair stands alone between `=`/`(` and `;`/`)` (so precedence cannot change);
- `assign_to_always`: `assign out = e;` of an output port -> a `reg` driven by `always @*`, where `e`
  reads a signal and the module gives no variable an initial value. `always @*` first runs when an
  operand changes, so a constant `e`, or one whose operands keep their initial value for a while,
  leaves the output X at first: a real difference in simulation (the calibration met both), and
  `always_comb`, which runs at time 0, is refused by Icarus on constant part-selects.
Tokens come from `verilog_tools.text.tokenize` (comments removed); texts with string literals are left
alone (tokenize blanks strings).
"""
from __future__ import annotations

from tasks.ports import InterfaceError, read_interface
from verilog_tools.text import strip_comments, tokenize

_COMMUTATIVE = {"&", "|", "^", "+", "*"}


def _no_strings(code: str) -> bool:
    return not any(t.kind == "str" for t in tokenize(code))


def reformat(code: str) -> str | None:
    if not _no_strings(code):
        return None
    out, prev_end = [], 0
    text = strip_comments(code)
    for tok in tokenize(text):
        gap = text[prev_end:tok.start]
        out.append("\n" * (2 * gap.count("\n")) + "    " if "\n" in gap else " " if gap else "")
        out.append(tok.text)
        prev_end = tok.end
    return "".join(out).lstrip() + "\n"


def _internal_names(code: str, module: str | None) -> set[str]:
    import pyslang

    iface = read_interface(code, module)
    ports = {p.name for p in iface.ports}
    kinds = {pyslang.ast.SymbolKind.Variable, pyslang.ast.SymbolKind.Net, pyslang.ast.SymbolKind.Parameter}
    tree = pyslang.syntax.SyntaxTree.fromText(code)
    options = pyslang.ast.CompilationOptions()
    options.topModules = {iface.name}
    comp = pyslang.ast.Compilation(pyslang.Bag([options]))
    comp.addSyntaxTree(tree)
    body = comp.getRoot().topInstances[0].body
    return {m.name for m in body if m.kind in kinds and m.name and m.name not in ports}


def _replace_tokens(code: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, reverse=True):
        code = code[:start] + new + code[end:]
    return code


def rename_internals(code: str, module: str | None = None) -> str | None:
    if not _no_strings(code):
        return None
    try:
        names = _internal_names(code, module)
    except (InterfaceError, IndexError):
        return None
    edits = [(t.start, t.end, f"itertl_rn_{t.text}") for t in tokenize(code) if t.kind == "id" and t.text in names]
    return _replace_tokens(code, edits) if edits else None


def swap_operands(code: str) -> str | None:
    tokens = tokenize(code)
    edits = []
    for i in range(2, len(tokens) - 4):
        before2, before, a, op, b, after = tokens[i - 2:i + 4]
        if (before.text in ("=", "(") and before2.kind != "op" and op.text in _COMMUTATIVE
                and a.kind == "id" and b.kind == "id" and after.text in (";", ")")
                and a.end < op.start and op.end < b.start):   # spaced: `a&&b` style runs are not touched
            edits.append((a.start, b.end, f"{b.text} {op.text} {a.text}"))
    return _replace_tokens(code, edits) if edits else None


def assign_to_always(code: str, module: str | None = None) -> str | None:
    try:
        outputs = {p.name: p.width for p in read_interface(code, module).outputs}
    except InterfaceError:
        return None
    tokens = tokenize(code)
    if _initial_values(tokens):
        return None
    edits = []
    for i, tok in enumerate(tokens[:-3]):
        target, eq = tokens[i + 1], tokens[i + 2]
        if tok.text != "assign" or target.text not in outputs or eq.text != "=":
            continue
        end = next((j for j in range(i + 3, len(tokens)) if tokens[j].text == ";"), None)
        if end is None:
            continue
        if not any(t.kind == "id" for t in tokens[i + 3:end]):
            continue   # a constant: `always @*` would never run
        expr = code[eq.end:tokens[end].start]
        width = outputs[target.text]
        reg = f"itertl_aw_{target.text}"
        decl = f"reg [{width - 1}:0] {reg};" if width > 1 else f"reg {reg};"
        edits.append((tok.start, tokens[end].end,
                      f"{decl}\n  always @* {reg} ={expr};\n  assign {target.text} = {reg};"))
    return _replace_tokens(code, edits) if edits else None


def _initial_values(tokens) -> bool:
    """An `initial` block, or a variable declaration with `=` before its `;`."""
    declaring = False
    for tok in tokens:
        if tok.text == "initial":
            return True
        if tok.text in ("reg", "logic", "integer", "bit", "int"):
            declaring = True
        elif tok.text == ";":
            declaring = False
        elif declaring and tok.text == "=":
            return True
    return False


REWRITES = {"reformat": reformat, "rename_internals": rename_internals, "swap_operands": swap_operands,
            "assign_to_always": assign_to_always}
