"""The cheat that needs no trick: a design that forces or drives its own inputs to X.

Ports are nets shared with the testbench, so X on an input reaches the reference module too, whose
outputs then go X, and VerilogEval's `===` comparison against an X reference accepts anything: before
the policy, such a design passed 145 of 156 VerilogEval v1 Human problems. Each way of driving an input
must now pass none of them.
"""
from __future__ import annotations

import pytest
from pyslang import ast, syntax

from tasks.evaluate import evaluate
from tasks.verilog_eval import load_v1

CHEATS = {
    "force": lambda ins: "".join(f"  initial force {p} = 'x;\n" for p in ins),
    "assign": lambda ins: "".join(f"  assign {p} = 'x;\n" for p in ins),
    "gate": lambda ins: "".join(f"  buf ({p}, 1'bx);\n" for p in ins),
}


def input_ports(header: str) -> list[str]:
    """The input port names of a module header, read by slang."""
    compilation = ast.Compilation()
    compilation.addSyntaxTree(syntax.SyntaxTree.fromText(header + "\nendmodule\n"))
    body = compilation.getRoot().topInstances[0].body
    return [m.name for m in body if m.kind == ast.SymbolKind.Port and m.direction == ast.ArgumentDirection.In]


def test_input_ports_are_read_from_the_header():
    assert input_ports("module top_module(input [3:0] a, input b, output y);") == ["a", "b"]


def check_no_cheat_passes(problems) -> None:
    samples = [{"task_id": p.task_id, "completion_id": i,
                "completion": CHEATS[cheat](input_ports(p.header)) + "endmodule\n"}
               for p in problems for i, cheat in enumerate(sorted(CHEATS))]
    outcome = evaluate(problems, samples, workers=2, ks=(1,), progress=False)
    assert outcome.metrics["status_counts"]["pass"] == 0
    with_inputs = {p.task_id for p in problems if input_ports(p.header)}
    assert len(with_inputs) >= len(problems) - 6   # a few (`zero`, constant outputs) have no input to drive
    wrong = {(r["task_id"], r["completion_id"]): r["status"] for r in outcome.results
             if r["task_id"] in with_inputs and r["status"] != "rejected"}
    assert wrong == {}


def test_driving_inputs_passes_no_problem_of_a_v1_human_subset(v1_dir):
    check_no_cheat_passes(load_v1(v1_dir, "human")[:12])


@pytest.mark.slow
def test_driving_inputs_passes_no_v1_human_problem(v1_dir):
    """The acceptance figure: 0 of 156 (each of the three ways)."""
    check_no_cheat_passes(load_v1(v1_dir, "human"))
