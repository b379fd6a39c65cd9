"""Read a module's ports and rename modules, with pyslang (the slang SystemVerilog compiler) doing the work.

slang parses and elaborates the text as a compiler does: ports declared ANSI or non-ANSI style, widths
from parameters (`input [W-1:0] a` with `W` at its default), signedness, `output reg`. This module is the
glue: it turns slang's elaborated ports into `Port` rows, collects which signals the design uses as an
edge (`posedge x` / `negedge x`), and renames a module by splicing the name tokens slang located (never a
regex over the text). Failures are `InterfaceError`s whose message is the exclusion reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PORT_BITS = 4096   # wider ports make testbench vectors unwieldy; such references are excluded
MAX_GENERATE_STEPS = 1 << 14   # slang's generate-loop budget here (its default is 131,072): candidates are untrusted
MAX_VARIABLES = 4096   # read_variables stops listing after this many (a design's registers, not a memory's words)
MAX_ARRAY_WORDS = 1 << 16   # larger memories are not listed


class InterfaceError(ValueError):
    """The module's interface cannot be read or driven (the message says why)."""


@dataclass(frozen=True)
class Port:
    name: str
    direction: str   # "input" | "output"
    width: int
    signed: bool = False


@dataclass(frozen=True)
class ModuleInterface:
    name: str
    ports: tuple[Port, ...]
    edges: dict            # signal name -> frozenset of "posedge"/"negedge" it is used with

    @property
    def inputs(self) -> list[Port]:
        return [p for p in self.ports if p.direction == "input"]

    @property
    def outputs(self) -> list[Port]:
        return [p for p in self.ports if p.direction == "output"]


def _pyslang():
    try:
        import pyslang
    except ImportError as exc:   # a base dependency; a clear message if an old venv lacks it
        raise InterfaceError("pyslang is not installed (pip install pyslang)") from exc
    return pyslang


def _tree(code: str):
    return _pyslang().syntax.SyntaxTree.fromText(code)


def _declarations(tree):
    kind = _pyslang().syntax.SyntaxKind.ModuleDeclaration
    if tree.root.kind == kind:   # slang makes a lone module the root itself
        return [tree.root]
    return [m for m in getattr(tree.root, "members", ()) if m.kind == kind]


def module_declarations(code: str) -> list[str]:
    """Names of the modules `code` declares, in order, as slang parses them."""
    tree = _tree(code)   # keep it referenced: its nodes die with it
    return [m.header.name.valueText for m in _declarations(tree)]


def _elaborate(code: str, module: str | None):
    """(tree, compilation, body) of `module` (default: the last declared) elaborated as the top by slang.
    Keep all three referenced: slang's nodes die with their owner."""
    ps = _pyslang()
    tree = _tree(code)
    names = [m.header.name.valueText for m in _declarations(tree)]
    if not names:
        raise InterfaceError("no module declaration found")
    module = module if module in names else names[-1] if module is None else None
    if module is None:
        raise InterfaceError(f"module not found among {names}")
    options = ps.ast.CompilationOptions()
    options.topModules = {module}   # elaborate this module as the top, whoever instantiates it
    options.maxGenerateSteps = MAX_GENERATE_STEPS
    # Icarus accepts a parameter declared after the port that uses it (`output [w-1:0] q); parameter w`),
    # and merged ANSI port declarations; so must the reader of its ports
    flags = ps.ast.CompilationFlags
    options.flags = options.flags | flags.AllowUseBeforeDeclare | flags.AllowMergingAnsiPorts
    comp = ps.ast.Compilation(ps.Bag([options]))
    comp.addSyntaxTree(tree)
    body = next((inst.body for inst in comp.getRoot().topInstances if inst.name == module), None)
    if body is None:
        raise InterfaceError(f"module {module} could not be elaborated")
    return tree, comp, body


def read_interface(code: str, module: str | None = None) -> ModuleInterface:
    """The ports of `module` (default: the last module declared, the usual top) elaborated by slang."""
    ps = _pyslang()
    tree, _comp, body = _elaborate(code, module)
    module = body.name
    ports = []
    for p in body.portList:
        if p.kind != ps.ast.SymbolKind.Port:
            raise InterfaceError(f"port {p.name!r} is an interface or multi-port, not a plain port")
        direction = {ps.ast.ArgumentDirection.In: "input", ps.ast.ArgumentDirection.Out: "output"}.get(p.direction)
        if direction is None:
            raise InterfaceError(f"port {p.name!r} is {str(p.direction).split('.')[-1].lower()} (inout/ref "
                                 "ports cannot be compared)")
        if not p.type.isIntegral:
            raise InterfaceError(f"port {p.name!r} has non-integral type {p.type} (unpacked array, real...)")
        width = int(p.type.bitWidth)
        if not 1 <= width <= MAX_PORT_BITS:
            raise InterfaceError(f"port {p.name!r} is {width} bits wide (limit {MAX_PORT_BITS})")
        ports.append(Port(p.name, direction, width, bool(p.type.isSigned)))
    if not ports:
        raise InterfaceError(f"module {module} has no ports")
    return ModuleInterface(module, tuple(ports), _edge_signals(tree))


@dataclass(frozen=True)
class Variable:
    """A 4-state variable inside a module instance: `path` is its hierarchical name below the instance,
    as Verilog text (escaped where needed), `words` the (lower, upper) index bounds of a memory."""
    path: str
    width: int
    words: tuple[int, int] | None = None


_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def _verilog_name(name: str) -> str:
    return name if _SIMPLE_NAME.match(name) else f"\\{name} "


def read_variables(code: str, module: str | None = None) -> list[Variable]:
    """The 4-state variables (reg, logic, integer, 1-D memories of them) of `module` and of every module
    instance, named generate block and named statement block below it, as slang elaborates them
    (parameters at their defaults). Not listed: unnamed statement blocks, instance arrays, enum and
    unpacked-struct variables, automatic variables, multi-dimensional memories, anything wider than
    MAX_PORT_BITS, memories over MAX_ARRAY_WORDS; the list stops at MAX_VARIABLES."""
    _tree_ref, _comp, body = _elaborate(code, module)
    found: list[Variable] = []
    _collect(body, "", found)
    return found


def _collect(scope, prefix: str, found: list[Variable]) -> None:
    kinds = _pyslang().ast.SymbolKind
    for m in scope:
        if len(found) >= MAX_VARIABLES:
            return
        if m.kind == kinds.Variable:
            var = _variable(m, prefix)
            if var is not None:
                found.append(var)
        elif m.kind == kinds.Instance:
            _collect(m.body, f"{prefix}{_verilog_name(m.name)}.", found)
        elif m.kind in (kinds.GenerateBlock, kinds.StatementBlock) and m.name and not m.isUninstantiated:
            _collect(m, f"{prefix}{_verilog_name(m.name)}.", found)
        elif m.kind == kinds.GenerateBlockArray and m.name:
            for block in m:
                if not block.isUninstantiated:
                    _collect(block, f"{prefix}{_verilog_name(m.name)}[{block.arrayIndex}].", found)


def _variable(m, prefix: str) -> Variable | None:
    ps = _pyslang()
    if m.lifetime != ps.ast.VariableLifetime.Static:
        return None
    t, words = m.type, None
    if t.isUnpackedArray:
        if not t.hasFixedRange:
            return None
        lo, hi = int(t.fixedRange.lower), int(t.fixedRange.upper)
        words, t = (lo, hi), t.elementType
        if hi - lo + 1 > MAX_ARRAY_WORDS:
            return None
    if not t.isIntegral or not t.isFourState or t.isEnum or t.isUnpackedArray:
        return None
    width = int(t.bitWidth)
    if not 1 <= width <= MAX_PORT_BITS:
        return None
    return Variable(prefix + _verilog_name(m.name), width, words)


def _edge_signals(tree) -> dict:
    ps = _pyslang()
    edges: dict[str, set] = {}

    def visit(node):
        if isinstance(node, ps.syntax.SyntaxNode) and node.kind == ps.syntax.SyntaxKind.SignalEventExpression:
            edge = node.edge.valueText
            if edge in ("posedge", "negedge"):
                edges.setdefault(str(node.expr).strip(), set()).add(edge)
        return True
    tree.root.visit(visit)
    return {name: frozenset(kinds) for name, kinds in edges.items()}


def rename_modules(code: str, renames: dict[str, str]) -> str:
    """`code` with each declared module in `renames` renamed (its header and `endmodule : label`), and
    every instantiation of it inside `code` too. Offsets come from slang's tokens; a name that comes from
    a macro expansion is refused."""
    ps = _pyslang()
    tree = _tree(code)
    data = code.encode("utf-8", errors="surrogateescape")
    buffer = None
    spots: list[tuple[int, int, str]] = []

    def add(token):
        nonlocal buffer
        loc = token.location
        if buffer is None:
            buffer = loc.buffer
        if loc.buffer != buffer or data[loc.offset:loc.offset + len(token.rawText.encode())] != token.rawText.encode():
            raise InterfaceError(f"module name {token.valueText!r} does not come from the text (macro?)")
        spots.append((loc.offset, len(token.rawText.encode()), renames[token.valueText]))

    for decl in _declarations(tree):
        name = decl.header.name
        if name.valueText in renames:
            add(name)
            if decl.blockName is not None and decl.blockName.name.valueText == name.valueText:
                add(decl.blockName.name)

    def visit(node):
        if isinstance(node, ps.syntax.SyntaxNode) and node.kind == ps.syntax.SyntaxKind.HierarchyInstantiation:
            if node.type.valueText in renames:
                add(node.type)
        return True
    tree.root.visit(visit)
    for offset, length, new in sorted(set(spots), reverse=True):
        data = data[:offset] + new.encode() + data[offset + length:]
    return data.decode("utf-8", errors="surrogateescape")
