"""The training loop's held-out evaluation runs each simulation under `eval_sim_seconds`: a sample that
loops forever is a timeout after that limit, not after the verifier's 60 s default."""
from __future__ import annotations

import re
import time

import pytest

from harness.loop import stages
from harness.config import TrainConfig
from tasks.synthetic import load_problems
from verilog_tools.errors import UserError

# What the timeouts of a real evaluation were: a combinational loop that never ends (i counts down).
SPIN = """  integer spin_i;
  reg spin_r;
  always @(*)
    for (spin_i = 3; spin_i < 8; spin_i = spin_i - 1)
      spin_r = {name};
"""


def spinning(reference: str) -> str:
    """The reference with a combinational block, sensitive to its first input, that never finishes."""
    name = re.search(r"input\s+(?:wire\s+)?(?:\[[^\]]*\]\s*)?(\w+)", reference).group(1)
    at = reference.rindex("endmodule")
    return reference[:at] + SPIN.format(name=name) + reference[at:]


def test_an_endless_sample_is_a_timeout_after_eval_sim_seconds(tmp_path, monkeypatch):
    problem = load_problems("heldout")[0]
    monkeypatch.setattr(stages, "sample_texts", lambda *a, **k: [[spinning(problem.reference)]])
    cfg = TrainConfig(eval_n=1, eval_sim_seconds=1.5, workers=1)
    started = time.monotonic()
    metrics = stages.eval_stage(cfg, "unused", None, [problem], seed=0, out=tmp_path)
    assert metrics["status_counts"]["timeout"] == 1
    assert time.monotonic() - started < 30  # the 60 s default would not be reached


def test_eval_sim_seconds_must_be_positive():
    with pytest.raises((UserError, ValueError), match="eval_sim_seconds"):
        TrainConfig(eval_sim_seconds=0)
