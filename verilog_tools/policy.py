"""The design policy: an allowlist of synthesizable RTL over a real parser's syntax tree.

A DESIGN (model-written Verilog) is compiled with a trusted testbench that shares its nets, its
simulator and its output. The policy keeps a design from cheating inside that simulation: it may only
compute. The heavy part is done by slang (`pyslang`, MIT licence, pinned in pyproject.toml), a
standard-conforming SystemVerilog compiler: it preprocesses, parses and elaborates the design alone,
and this module walks what slang built. It reads the *canonical* text (`verilog_tools.canonical`),
which is byte for byte the text iverilog compiles, so the two tools read the same characters.

What a design may contain (everything else is refused, with the construct and line named):
- modules (`module`/`macromodule`) with input/output ports, parameters, net and variable declarations
  (bit, logic, reg, integer, int, real, enums, typedefs), continuous and procedural assignments,
  `always*`/`initial` blocks, `if`/`case`/loops, generate constructs, functions and tasks defined in the
  design, expressions, delays and event controls, the logic gate primitives;
- instances of modules the design defines itself (plus `external_modules` a problem explicitly provides);
- system functions from `PURE_SYSTEM_FUNCTIONS` only (no I/O, files, plusargs, RNG, `$finish`...);
- the preprocessor directives in `ALLOWED_DIRECTIVES`, macros without token pasting or stringification,
  and `ifdef`-style conditions only on macros the design itself defines (tools predefine different ones).

Refused besides what the allowlist lacks: `force`/`release`/procedural `assign`/`deassign`; any driver
of an input port (continuous or procedural assignment, a gate or instance output, a pull); inout ports;
names that do not resolve inside the design alone (hierarchical, upward, `$root`, a call of a task the
testbench defines); `bind`, `defparam`, `` `include ``, DPI, programs, classes, interfaces, packages;
modules named like a module of the testbench; non-ASCII characters outside comments.

Cost: a few milliseconds per design (slang parses, elaborates and analyses drivers in C++; the Python
walk is linear in the tree). The policy runs in a bounded worker process (`verilog_tools.checker`), never
in the harness process, so a pathological design cannot stall or exhaust it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyslang import Bag, SourceManager, ast, parsing, syntax
from pyslang import Diags as DiagCode
from pyslang import analysis as slang_analysis

K = syntax.SyntaxKind

# Pure functions of their arguments (or of types): nothing in them observes or changes the simulation.
PURE_SYSTEM_FUNCTIONS = frozenset("""
    $clog2 $signed $unsigned $bits $size $left $right $low $high $increment $dimensions
    $unpacked_dimensions $countones $countbits $onehot $onehot0 $isunknown
    $rtoi $itor $realtobits $bitstoreal $shortrealtobits $bitstoshortreal
    $ln $log10 $exp $sqrt $pow $floor $ceil $sin $cos $tan $asin $acos $atan $atan2 $hypot
    $sinh $cosh $tanh $asinh $acosh $atanh
""".split())

ALLOWED_DIRECTIVES = frozenset("""
    timescale define undef undefineall ifdef ifndef elsif else endif default_nettype resetall
    celldefine endcelldefine
""".split())
_CONDITIONAL_DIRECTIVES = frozenset({"ifdef", "ifndef", "elsif"})
# Directives every Verilog tool knows: a backtick word among them is a directive, not a macro call.
_KNOWN_DIRECTIVES = ALLOWED_DIRECTIVES | frozenset("""
    include pragma line begin_keywords end_keywords __FILE__ __LINE__ unconnected_drive nounconnected_drive
    default_decay_time default_trireg_strength delay_mode_distributed delay_mode_path delay_mode_unit
    delay_mode_zero protect endprotect protected endprotected uselib suppress_faults nosuppress_faults
    enable_portfaults disable_portfaults accelerate noaccelerate expand_vectornets noexpand_vectornets
    autoexpand_vectornets remove_gatenames noremove_gatenames remove_netnames noremove_netnames
""".split())
_BACKTICK = re.compile(r"`([A-Za-z_][A-Za-z0-9_$]*)?")
_DEFINE_NAME = re.compile(r"[ \t]+([A-Za-z_][A-Za-z0-9_$]*)")

ALLOWED_GATES = frozenset("and nand or nor xor xnor not buf bufif0 bufif1 notif0 notif1".split())

# Syntax a design may contain. Node kinds outside this set are refused by name.
ALLOWED_SYNTAX = frozenset(getattr(K, name) for name in """
    CompilationUnit ModuleDeclaration ModuleHeader AnsiPortList NonAnsiPortList ImplicitAnsiPort
    ExplicitAnsiPort ImplicitNonAnsiPort ExplicitNonAnsiPort EmptyNonAnsiPort PortReference PortConcatenation
    PortDeclaration VariablePortHeader NetPortHeader ParameterPortList ParameterDeclaration
    ParameterDeclarationStatement TypeParameterDeclaration TypeAssignment TimeUnitsDeclaration EmptyMember
    DataDeclaration NetDeclaration Declarator EqualsValueClause VariableDimension RangeDimensionSpecifier
    TypedefDeclaration EnumType NamedType ImplicitType RegType LogicType BitType IntegerType IntType
    ByteType ShortIntType LongIntType RealType RealTimeType ShortRealType TimeType GenvarDeclaration
    ContinuousAssign AlwaysBlock AlwaysCombBlock AlwaysFFBlock AlwaysLatchBlock InitialBlock
    GenerateRegion GenerateBlock LoopGenerate IfGenerate CaseGenerate NamedBlockClause
    HierarchyInstantiation PrimitiveInstantiation HierarchicalInstance InstanceName
    OrderedPortConnection NamedPortConnection EmptyPortConnection WildcardPortConnection
    ParameterValueAssignment OrderedParamAssignment NamedParamAssignment DriveStrength Delay3
    FunctionDeclaration TaskDeclaration FunctionPrototype FunctionPortList FunctionPort ReturnStatement
    SequentialBlockStatement ExpressionStatement ConditionalStatement ElseClause ConditionalPredicate
    ConditionalPattern CaseStatement StandardCaseItem DefaultCaseItem ForLoopStatement ForVariableDeclaration
    LoopStatement DoWhileStatement JumpStatement EmptyStatement TimingControlStatement
    EventControl EventControlWithExpression ImplicitEventControl ParenthesizedEventExpression
    SignalEventExpression BinaryEventExpression DelayControl TimingControlExpression
    AssignmentExpression NonblockingAssignmentExpression AddAssignmentExpression SubtractAssignmentExpression
    MultiplyAssignmentExpression DivideAssignmentExpression ModAssignmentExpression AndAssignmentExpression
    OrAssignmentExpression XorAssignmentExpression LogicalLeftShiftAssignmentExpression
    LogicalRightShiftAssignmentExpression ArithmeticLeftShiftAssignmentExpression
    ArithmeticRightShiftAssignmentExpression
    IdentifierName IdentifierSelectName ElementSelect BitSelect SimpleRangeSelect AscendingRangeSelect
    DescendingRangeSelect ElementSelectExpression SystemName InvocationExpression ArgumentList
    OrderedArgument NamedArgument EmptyArgument SimplePropertyExpr SimpleSequenceExpr
    IntegerLiteralExpression IntegerVectorExpression RealLiteralExpression UnbasedUnsizedLiteralExpression
    TimeLiteralExpression StringLiteralExpression
    ParenthesizedExpression ConcatenationExpression MultipleConcatenationExpression ConditionalExpression
    CastExpression SignedCastExpression InsideExpression ValueRangeExpression
    AssignmentPatternExpression SimpleAssignmentPattern StructuredAssignmentPattern
    ReplicatedAssignmentPattern AssignmentPatternItem DefaultPatternKeyExpression
    AddExpression SubtractExpression MultiplyExpression DivideExpression ModExpression PowerExpression
    BinaryAndExpression BinaryOrExpression BinaryXorExpression BinaryXnorExpression
    EqualityExpression InequalityExpression CaseEqualityExpression CaseInequalityExpression
    WildcardEqualityExpression WildcardInequalityExpression
    GreaterThanExpression GreaterThanEqualExpression LessThanExpression LessThanEqualExpression
    LogicalAndExpression LogicalOrExpression LogicalImplicationExpression LogicalEquivalenceExpression
    LogicalShiftLeftExpression LogicalShiftRightExpression ArithmeticShiftLeftExpression
    ArithmeticShiftRightExpression
    UnaryPlusExpression UnaryMinusExpression UnaryLogicalNotExpression UnaryBitwiseNotExpression
    UnaryBitwiseAndExpression UnaryBitwiseNandExpression UnaryBitwiseOrExpression UnaryBitwiseNorExpression
    UnaryBitwiseXorExpression UnaryBitwiseXnorExpression UnaryPreincrementExpression
    UnaryPredecrementExpression PostincrementExpression PostdecrementExpression
    StreamingConcatenationExpression StreamExpression
    AttributeInstance AttributeSpec
""".split())

# Why the commonest refused constructs are refused (others get a generic reason).
_REASONS = {
    K.ProceduralForceStatement: "`force` overrides nets the testbench shares",
    K.ProceduralReleaseStatement: "`release` belongs with `force`",
    K.ProceduralAssignStatement: "procedural `assign` overrides variables",
    K.ProceduralDeassignStatement: "`deassign` belongs with procedural `assign`",
    K.ScopedName: "hierarchical and package-scoped names reach outside the design",
    K.MemberAccessExpression: "member and hierarchical access reaches outside the design",
    K.DefParam: "`defparam` changes other modules' parameters",
    K.BindDirective: "`bind` inserts code into other modules",
    K.DPIImport: "DPI calls foreign code", K.DPIExport: "DPI calls foreign code",
    K.FinalBlock: "`final` runs after the testbench's verdict",
    K.ParallelBlockStatement: "fork/join is not RTL",
    K.ForeverStatement: "`forever` is testbench code, not RTL",
    K.ElabSystemTask: "elaboration system tasks are not RTL",
}

_NAME_ERRORS = {DiagCode.UndeclaredIdentifier: "does not resolve inside the design",
                DiagCode.CouldNotResolveHierarchicalPath: "does not resolve inside the design",
                DiagCode.UpwardHierarchicalName: "is an upward reference out of the design",
                DiagCode.UnknownModule: "is a module the design does not define",
                DiagCode.UnknownInterface: "is an interface the design does not define",
                DiagCode.UnknownPackage: "is a package the design does not define",
                DiagCode.UnknownPrimitive: "is a primitive the design does not define"}


@dataclass(frozen=True)
class PolicyContext:
    """What the policy needs to know about the testbench the design will be compiled with."""

    reserved_modules: frozenset[str] = field(default=frozenset())   # testbench modules: never defined or instantiated
    external_modules: frozenset[str] = field(default=frozenset())   # modules a problem provides for the design to use


@dataclass
class PolicyResult:
    """`violations`: refusals (empty = allowed). `parse_errors`: slang could not parse the design, so
    the policy could not check it. `unresolved`: names that do not resolve inside the design alone (a
    typo, or a reach into the testbench). For both, the caller lets the compiler give its own verdict
    (syntax or compile error), and refuses the design if the compiler accepts it: then the text meant
    something slang could not read, or a name resolved outside the design."""

    violations: list[str]
    parse_errors: list[str]
    unresolved: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and not self.parse_errors and not self.unresolved


def testbench_modules(testbench: str) -> frozenset[str]:
    """The names of the modules the (trusted) testbench defines."""
    names = set()

    def visit(node):
        if isinstance(node, syntax.SyntaxNode) and node.kind == K.ModuleDeclaration:
            names.add(node.header.name.valueText)
        return True
    syntax.SyntaxTree.fromText(testbench, "testbench.sv").root.visit(visit)
    return frozenset(names)


def _line(tree, location) -> int:
    return tree.sourceManager.getLineNumber(location)


def _directive_violations(text: str) -> list[str]:
    """Directives read on the raw text, comments and strings included: linear, lexer-independent.

    `include would make a tool read another file, `` and `" build tokens at expansion time, and an
    `ifdef on a macro the design does not define depends on which tool reads it (`__ICARUS__`). A
    backtick followed by anything else is left to the parsers (in code both refuse it; in a comment,
    where models write `names` in backticks, it is harmless).
    """
    found, defined = [], set()
    for m in _BACKTICK.finditer(text):
        word, line = m.group(1), text.count("\n", 0, m.start()) + 1
        if word is None:
            if text.startswith(("``", '`"', "`\\`\""), m.start()):
                found.append(f"line {line}: token pasting (``) and stringification (`\") are not allowed")
        elif word in _KNOWN_DIRECTIVES and word not in ALLOWED_DIRECTIVES:
            found.append(f"line {line}: `{word} is not allowed (a design must be self-contained RTL)")
        elif word == "define":
            name = _DEFINE_NAME.match(text, m.end())
            if name:
                defined.add(name.group(1))
        elif word in _CONDITIONAL_DIRECTIVES:
            name = _DEFINE_NAME.match(text, m.end())
            if name and name.group(1) not in defined:
                found.append(f"line {line}: `{word} {name.group(1)} tests a macro the design does not "
                             f"define (tools predefine different macros)")
    return found


def _tokens(node):
    for child in node:
        if isinstance(child, parsing.Token):
            yield child
        elif child is not None:
            yield from _tokens(child)


def _token_violations(tree) -> list[str]:
    """Non-ASCII outside comments, and text slang skipped (disabled or unparsable) holding it."""
    found = []
    for tok in _tokens(tree.root):
        for trivia in tok.trivia:
            if trivia.kind in (parsing.TriviaKind.LineComment, parsing.TriviaKind.BlockComment):
                continue
            if not trivia.getRawText().isascii():
                found.append(f"line {_line(tree, tok.location)}: non-ASCII character outside a comment")
        if not tok.rawText.isascii():
            found.append(f"line {_line(tree, tok.location)}: non-ASCII character outside a comment")
    return found


class _Walker:
    """One pass over the syntax tree: the allowlist and the name rules that need no elaboration."""

    def __init__(self, tree, context: PolicyContext):
        self.tree, self.context, self.found = tree, context, []
        self.defined: list[str] = []

    def say(self, node, message: str) -> None:
        self.found.append(f"line {_line(self.tree, node.sourceRange.start)}: {message}")

    def __call__(self, node) -> bool:
        if not isinstance(node, syntax.SyntaxNode):
            return True
        kind = node.kind
        if kind not in ALLOWED_SYNTAX:
            construct = str(node).strip().split("\n")[0][:60]
            why = _REASONS.get(kind, "not on the allowlist of synthesizable RTL")
            self.say(node, f"{str(kind).split('.')[-1]} `{construct}` is not allowed: {why}")
            return False   # its children are refused with it
        check = _CHECKS.get(kind)
        if check is not None:
            check(self, node)
        return True

    def module(self, node) -> None:
        keyword, name = node.header.moduleKeyword.valueText, node.header.name.valueText
        if keyword not in ("module", "macromodule"):
            self.say(node, f"`{keyword}` is not allowed: only modules")
        if name in self.context.reserved_modules:
            self.say(node, f"defines module {name}, a name the testbench uses")
        self.defined.append(name)

    def instantiation(self, node) -> None:
        name = node.type.valueText
        if name in self.context.reserved_modules and name not in self.context.external_modules:
            self.say(node, f"instantiates testbench module {name}")

    def primitive(self, node) -> None:
        gate = node.type.valueText
        if gate not in ALLOWED_GATES:
            self.say(node, f"primitive `{gate}` is not allowed: only logic gates ({', '.join(sorted(ALLOWED_GATES))})")

    def system_name(self, node) -> None:
        name = node.systemIdentifier.valueText
        if name not in PURE_SYSTEM_FUNCTIONS:
            self.say(node, f"system task/function {name} is not allowed: only pure functions such as "
                           f"$clog2, $signed, $unsigned, $bits")

    def port_header(self, node) -> None:
        direction = node.direction.valueText if node.direction is not None else ""
        if direction in ("inout", "ref"):
            self.say(node, f"`{direction}` ports are not allowed: a design drives only its outputs")


_CHECKS = {K.ModuleDeclaration: _Walker.module, K.HierarchyInstantiation: _Walker.instantiation,
           K.PrimitiveInstantiation: _Walker.primitive, K.SystemName: _Walker.system_name,
           K.VariablePortHeader: _Walker.port_header, K.NetPortHeader: _Walker.port_header,
           K.PortDeclaration: lambda w, n: _Walker.port_header(w, n.header)}


def _instance_bodies(compilation):
    """Every instance body of the design's hierarchy, each definition with its parameters once."""
    seen, stack = set(), list(compilation.getRoot().topInstances)
    while stack:
        inst = stack.pop()
        body = inst.body
        if id(body) in seen:
            continue
        seen.add(id(body))
        yield body

        def visit(sym):
            if isinstance(sym, ast.InstanceSymbol) and sym is not inst:
                stack.append(sym)
                return ast.VisitAction.Skip
            return ast.VisitAction.Advance
        body.visit(visit)


def _unresolved_names(tree, compilation, context: PolicyContext) -> list[str]:
    """Names slang's elaboration of the design alone cannot resolve."""
    found = []
    for diag in compilation.getAllDiagnostics():
        why = _NAME_ERRORS.get(diag.code)
        if why is None:
            continue
        args = [str(a) for a in diag.args]
        name = args[0] if args else "?"
        if diag.code == DiagCode.UnknownModule and name in context.external_modules:
            continue
        found.append(f"line {_line(tree, diag.location)}: `{name}` {why}")
    return found


def _input_drivers(tree, compilation) -> list[str]:
    """Every driver of an input port other than the port itself, from slang's driver analysis."""
    found = []
    manager = slang_analysis.AnalysisManager()
    manager.analyze(compilation)
    for body in _instance_bodies(compilation):
        for member in body:
            if member.kind != ast.SymbolKind.Port or member.direction != ast.ArgumentDirection.In:
                continue
            symbol = member.internalSymbol
            if symbol is None:
                continue
            for driver in manager.getDrivers(symbol):
                if not driver.isInputPort:
                    line = _line(tree, driver.sourceRange.start)
                    found.append(f"line {line}: drives input port {member.name} of {body.definition.name}: "
                                 f"a design may only read its inputs")
    return found


def _preprocessor_options():
    bag = parsing.PreprocessorOptions()
    bag.maxIncludeDepth = 0   # never open a file, whatever the text says (the raw-text rule refuses it too)
    return bag


def check_policy(design: str, context: PolicyContext = PolicyContext()) -> PolicyResult:
    """Check canonical `design` against the policy (see the module docstring)."""
    found = _directive_violations(design)
    if found:   # slang must never see an `include: it would open the file
        return PolicyResult(found, [])
    tree = syntax.SyntaxTree.fromText(design, SourceManager(), "design.sv", "", Bag([_preprocessor_options()]))
    parse_errors = [f"line {_line(tree, d.location)}: {str(d.code).split('(')[-1].rstrip(')')}"
                    for d in tree.diagnostics if d.isError()]
    found.extend(_token_violations(tree))
    walker = _Walker(tree, context)
    tree.root.visit(walker)
    found.extend(walker.found)
    unresolved = []
    if not parse_errors and not found:
        compilation = ast.Compilation()
        compilation.addSyntaxTree(tree)
        unresolved = _unresolved_names(tree, compilation, context)
        found.extend(_input_drivers(tree, compilation))
    return PolicyResult(list(dict.fromkeys(found)), parse_errors, list(dict.fromkeys(unresolved)))
