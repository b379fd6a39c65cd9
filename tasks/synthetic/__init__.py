"""Seeded synthetic Verilog design tasks with self-checking testbenches (VerilogEval v1 style).

Entry points: `generate_tasks`, `load_problems`, `to_records`, `verilog_corpus`; `mutate`
(in `tasks.synthetic.mutate`) makes one-operator/one-constant faults of a design.
"""
from tasks.synthetic.generate import (FAMILIES, dump_json, generate_tasks, load_problems,
                                      multi_module_extras, to_records, verilog_corpus)

__all__ = ["FAMILIES", "dump_json", "generate_tasks", "load_problems", "multi_module_extras", "to_records",
           "verilog_corpus"]
