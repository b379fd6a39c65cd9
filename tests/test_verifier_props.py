"""Property test: byte-level mutations of hostile designs never pass and never escape.

The seeds are hostile designs whose own function is wrong (y is not a ^ b): they could only pass by
cheating. Hypothesis inserts, deletes and duplicates bytes, favouring the characters that split
lexers (CR, BS, FF, NUL, backtick, quote, backslash, comment openers); every mutant is evaluated by
the real verifier (checker, containers, Icarus) and must not pass, must leave the canary file
unread and unwritten, and must leave no process behind.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from tasks.evaluate import evaluate
from tasks.problem import Problem
from test_hostile import HEADER, HOSTILE, LIMITS, Canary, _check_after, case_text

SEEDS = ["force_inputs_x", "assign_to_input", "hier_ref_good1", "root_scope_ref", "upward_hier_stats",
         "display_forged_verdict", "random_mirror", "instantiate_reference", "macro_hides_hier_ref",
         "escaped_identifier_tb", "forged_verdict_final", "input_var_driven", "upward_task_call"]
INTERESTING = [b"\r", b"\x08", b"\x0c", b"\x00", b"`", b'"', b"\\", b"//", b"/*", b"*/", b"\n", b" ",
               b"$", b".", b";", b"endmodule", b"\xe2\x80\xa8", b"\xc2\x85", b"\\tb "]


@hs.composite
def mutants(draw):
    seed = draw(hs.sampled_from(SEEDS))
    data = bytearray((HOSTILE / f"{seed}.v").read_bytes())
    for _ in range(draw(hs.integers(1, 4))):
        op = draw(hs.sampled_from(["insert", "delete", "duplicate"]))
        at = draw(hs.integers(0, len(data)))
        if op == "insert":
            piece = draw(hs.sampled_from(INTERESTING) | hs.binary(min_size=1, max_size=3))
            data[at:at] = piece
        elif op == "delete":
            del data[at:at + draw(hs.integers(1, 8))]
        else:
            end = min(len(data), at + draw(hs.integers(1, 40)))
            data[at:at] = data[at:end]
    return seed, bytes(data)


@pytest.fixture
def watched(tmp_path, monkeypatch):
    import tempfile
    from verilog_tools.container import release_scratch
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    yield work, Canary(tmp_path / "secret")
    release_scratch()


def test_seeds_are_wrong_designs_that_exist():
    for seed in SEEDS:
        assert (HOSTILE / f"{seed}.v").is_file(), seed
        assert "assign y = a ^ b;" not in (HOSTILE / f"{seed}.v").read_text(errors="replace"), seed


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(batch=hs.lists(mutants(), min_size=6, max_size=6))
def test_mutated_hostile_designs_never_pass_and_never_escape(watched, batch):
    work, canary = watched
    testbench = (HOSTILE / "testbench.sv").read_text()
    problems, samples = [], []
    for i, (seed, data) in enumerate(batch):
        problems.append(Problem(task_id=f"m{i}", benchmark="hostile", description="xor", header=HEADER,
                                reference=(HOSTILE / "good.v").read_text(), testbench=testbench,
                                completion_mode="module"))
        text = data.decode("utf-8", "surrogateescape").replace("@CANARY@", str(canary.path))
        samples.append({"task_id": f"m{i}", "completion_id": 0, "completion": text})
    outcome = evaluate(problems, samples, workers=2, limits=LIMITS, ks=(1,), progress=False)
    _check_after(work, canary)
    passed = [(batch[i][0], r["completion"][:200]) for i, r in enumerate(outcome.results) if r["status"] == "pass"]
    assert passed == []
