"""Read a module's ports and rename modules, with pyslang (the slang SystemVerilog compiler) doing the work.

slang parses and elaborates the text as a compiler does: ports declared ANSI or non-ANSI style, widths
from parameters (`input [W-1:0] a` with `W` at its default), signedness, `output reg`. This module is the
glue: it turns slang's elaborated ports into `Port` rows, collects which signals the design uses as an
edge (`posedge x` / `negedge x`), and renames a module by splicing the name tokens slang located (never a
regex over the text). Failures are `InterfaceError`s whose message is the exclusion reason.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_PORT_BITS = 4096   # wider ports make testbench vectors unwieldy; such references are excluded


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


def read_interface(code: str, module: str | None = None) -> ModuleInterface:
    """The ports of `module` (default: the last module declared, the usual top) elaborated by slang."""
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
    # Icarus accepts a parameter declared after the port that uses it (`output [w-1:0] q); parameter w`),
    # and merged ANSI port declarations; so must the reader of its ports
    flags = ps.ast.CompilationFlags
    options.flags = options.flags | flags.AllowUseBeforeDeclare | flags.AllowMergingAnsiPorts
    comp = ps.ast.Compilation(ps.Bag([options]))
    comp.addSyntaxTree(tree)
    body = next((inst.body for inst in comp.getRoot().topInstances if inst.name == module), None)
    if body is None:
        raise InterfaceError(f"module {module} could not be elaborated")
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
