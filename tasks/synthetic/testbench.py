"""Self-checking testbenches in VerilogEval v1's layout for synthetic designs.

The layout matches VerilogEval v1 so one evaluator scores both: `reference_module` (the
reference renamed), `stimulus_gen` (drives inputs on falling clock edges and calls $finish),
and `tb` comparing every output of reference and `top_module` on both clock edges, with an X
in the reference matching anything. tb's final block prints the verdict line
`Mismatches: %1d in %1d samples` that the evaluator rewrites to carry its nonce.
"""
from __future__ import annotations

from tasks.synthetic.design import INDENT, Design, Port

I2, I3 = INDENT * 2, INDENT * 3
_VERDICT = '$display("Mismatches: %1d in %1d samples", stats1.errors, stats1.clocks);'


def _random_bits(width: int) -> str:
    words = -(-width // 32)
    return "$random" if words == 1 else "{" + ", ".join(["$random"] * words) + "}"


def _concat(ports: list[Port]) -> tuple[str, int]:
    names = [p.name for p in ports]
    text = names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"
    return text, sum(p.width for p in ports)


def _data_inputs(design: Design) -> list[Port]:
    skip = {design.clock, design.reset.name if design.reset else None, *design.stimulus.enables}
    return [p for p in design.inputs if p.name not in skip]


def _corner_vectors(design: Design) -> list[str]:
    """Directed vectors: each data input at 0, all ones and one-hot; equal operand pairs."""
    data = _data_inputs(design)
    lines = []
    if design.stimulus.walking:
        for port in data:
            values = [0, (1 << port.width) - 1] + [1 << i for i in range(port.width)] * (port.width > 1)
            for value in values:
                lines.append(f"{port.name} <= {port.width}'d{value};")
    for a, b in design.stimulus.equal_pairs:
        # i is private to stimulus_gen, so a blocking write to it cannot race with tb
        lines += [f"i = $random; {a} <= i; {b} <= i;"] * 8
    return lines


def _stimulus_gen_comb(design: Design) -> list[str]:
    data, stim = _data_inputs(design), design.stimulus
    target, width = _concat(data)
    body = [f"{I2}{target} <= 0;"]
    if width <= 8:   # small input space: exhaustive, nothing else needed
        return body + [f"{I2}for (i = 0; i < {1 << width}; i = i + 1)",
                       f"{I3}@(negedge clk) {target} <= i;"]
    for line in _corner_vectors(design):
        # randomise every input, then pin the corner value (the later assignment wins)
        body.append(f"{I2}@(negedge clk) begin {target} <= {_random_bits(width)}; {line} end")
    body += [f"{I2}repeat ({stim.cycles}) @(negedge clk) {target} <= {_random_bits(width)};",
             f"{I2}repeat ({stim.cycles // 2}) @(negedge clk) {target} <= {_random_bits(width)} & {_random_bits(width)};"]
    return body


def _stimulus_gen_seq(design: Design) -> list[str]:
    data, stim, reset = _data_inputs(design), design.stimulus, design.reset
    drive = []
    if data:
        target, width = _concat(data)
        drive.append(f"{target} <= {_random_bits(width)};")
    drive += [f"{en} <= ($random & 3) != 0;" for en in stim.enables]
    body = [f"{I2}{p.name} <= 0;" for p in design.inputs if p.name != design.clock]
    if reset:
        active, idle = ("0", "1") if reset.active_low else ("1", "0")
        op = "!=" if reset.active_low else "=="
        body += [f"{I2}{reset.name} <= {active};", f"{I2}repeat (2) @(negedge clk);",
                 f"{I2}{reset.name} <= {idle};"]
        random_reset = f"{reset.name} <= ($random % {stim.reset_every}) {op} 0;"
    else:
        random_reset = ""
    name, bits = stim.pattern
    if bits:   # the pattern once or twice in a row, then up to 3 random bits: hits and near misses
        body += [f"{I2}repeat (30) begin",
                 f"{I3}repeat (1 + ($random & 1)) for (i = {len(bits) - 1}; i >= 0; i = i - 1) "
                 f"@(negedge clk) {name} <= pattern[i];",
                 f"{I3}repeat ($random & 3) @(negedge clk) {name} <= $random;", f"{I2}end"]
    if stim.warmup:
        body.append(f"{I2}repeat ({stim.warmup}) @(negedge clk){_block(drive)}")
    body.append(f"{I2}repeat ({stim.cycles}) @(negedge clk){_block(drive + [random_reset])}")
    return body


def _block(statements: list[str]) -> str:
    statements = [s for s in statements if s]
    return f" begin {' '.join(statements)} end" if statements else ";"


def stimulus_gen(design: Design) -> str:
    driven = [p for p in design.inputs if p.name != design.clock]
    ports = [f"{INDENT}input clk"] + [f"{INDENT}output reg {_range(p)}{p.name}" for p in driven]
    body = _stimulus_gen_seq(design) if design.clock else _stimulus_gen_comb(design)
    bits = design.stimulus.pattern[1]
    pattern = f"{INDENT}reg [{len(bits) - 1}:0] pattern = {len(bits)}'b{bits};\n" if bits else ""
    return ("module stimulus_gen(\n" + ",\n".join(ports) + "\n);\n"
            f"{INDENT}integer i;\n{pattern}\n{INDENT}initial begin\n" + "\n".join(body) + "\n"
            f"{I2}@(negedge clk);\n{I2}#1 $finish;\n{INDENT}end\nendmodule\n")


def _range(port: Port) -> str:
    return f"[{port.width - 1}:0] " if port.width > 1 else ""


def tb(design: Design) -> str:
    outs = design.outputs
    fields = "".join(f"{I2}int errors_{p.name};\n{I2}int errortime_{p.name};\n" for p in outs)
    inputs = [p.name for p in design.inputs]
    decls = "".join(f"{INDENT}logic {_range(p)}{p.name};\n" for p in design.inputs if p.name != "clk")
    decls += "".join(f"{INDENT}logic {_range(p)}{p.name}_ref;\n{INDENT}logic {_range(p)}{p.name}_dut;\n"
                     for p in outs)

    def connect(suffix: str) -> str:
        pins = [f".{n}({n})" for n in inputs] + [f".{p.name}({p.name}{suffix})" for p in outs]
        return ", ".join(pins)

    ref = "{" + ", ".join(f"{p.name}_ref" for p in outs) + "}"
    dut = "{" + ", ".join(f"{p.name}_dut" for p in outs) + "}"
    checks = "".join(
        f"{I2}if ({p.name}_ref !== ({p.name}_ref ^ {p.name}_dut ^ {p.name}_ref)) begin\n"
        f"{I3}if (stats1.errors_{p.name} == 0) stats1.errortime_{p.name} = $time;\n"
        f"{I3}stats1.errors_{p.name}++;\n{I2}end\n" for p in outs)
    hints = "".join(
        f"{I2}if (stats1.errors_{p.name}) $display(\"Hint: Output '%s' has %0d mismatches. First "
        f"mismatch occurred at time %0d.\", \"{p.name}\", stats1.errors_{p.name}, "
        f"stats1.errortime_{p.name});\n"
        f"{I2}else $display(\"Hint: Output '%s' has no mismatches.\", \"{p.name}\");\n" for p in outs)
    stim_pins = ", ".join([".clk(clk)"] + [f".{n}({n})" for n in inputs if n != "clk"])
    return (
        f"module tb();\n{INDENT}typedef struct packed {{\n{I2}int errors;\n{I2}int errortime;\n{fields}"
        f"{I2}int clocks;\n{INDENT}}} stats;\n\n{INDENT}stats stats1;\n\n"
        f"{INDENT}reg clk = 0;\n{INDENT}initial forever\n{I2}#5 clk = ~clk;\n\n{decls}\n"
        f"{INDENT}wire tb_match = ({ref} === ({ref} ^ {dut} ^ {ref}));\n\n"
        f"{INDENT}stimulus_gen stim1 ({stim_pins});\n"
        f"{INDENT}reference_module good1 ({connect('_ref')});\n"
        f"{INDENT}top_module top_module1 ({connect('_dut')});\n\n"
        f"{INDENT}always @(posedge clk, negedge clk) begin\n{I2}stats1.clocks++;\n"
        f"{I2}if (!tb_match) begin\n{I3}if (stats1.errors == 0) stats1.errortime = $time;\n"
        f"{I3}stats1.errors++;\n{I2}end\n{checks}{INDENT}end\n\n"
        f"{INDENT}final begin\n{hints}"
        f"{I2}$display(\"Hint: Total mismatched samples is %1d out of %1d samples\\n\", stats1.errors, stats1.clocks);\n"
        f"{I2}$display(\"Simulation finished at %0d ps\", $time);\n{I2}{_VERDICT}\n{INDENT}end\n\n"
        f"{INDENT}initial begin\n{I2}#1000000 $display(\"TIMEOUT\");\n{I2}$finish();\n{INDENT}end\n"
        "endmodule\n")


def build_testbench(design: Design) -> str:
    """Everything the simulation needs besides the design under test."""
    return "\n".join(["`timescale 1 ps/1 ps", design.module("reference_module"),
                      stimulus_gen(design), tb(design)])
