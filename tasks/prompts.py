"""`build_prompt`: the text a model is shown for a problem; shared by sampling, evaluation and training.

Kept deliberately plain so that the same string can serve as a training instruction:

* ``completion_mode="body"`` (VerilogEval v1): description, one instruction line, then the module
  header. The model continues right after the header with the body, ending in ``endmodule``.
* ``completion_mode="module"`` (VerilogEval v2, synthetic tasks): the task text, then the module
  interface (unless the text already ends with it, as v2's code-complete prompts do). The model
  answers with a whole module named ``problem.dut_module``.
"""
from __future__ import annotations

import re

BODY_INSTRUCTION = ("Implement the Verilog module below. Complete the module body after the header "
                    "and end it with endmodule.")
MODULE_INSTRUCTION = "Implement a Verilog module named {name} with this interface:"


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build_prompt(problem) -> str:
    """The prompt for ``problem`` (a `tasks.problem.Problem`); ends with the module header."""
    description = problem.description.strip()
    header = problem.header.strip()
    if problem.completion_mode == "body":
        return f"{description}\n\n{BODY_INSTRUCTION}\n\n{header}\n"
    if _squash(description).endswith(_squash(header)):
        return description + "\n"
    instruction = MODULE_INSTRUCTION.format(name=problem.dut_module)
    return f"{description}\n\n{instruction}\n\n{header}\n"
