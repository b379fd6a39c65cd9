"""The hostile-Verilog corpus (tests/hostile/) through the evaluator and the training scorer.

Every case is scored in ONE `evaluate()` call together with a good sample, then through
`score_groups` in paper and functional mode. Each run must give the expected status
(expectations.yaml), respect the time limit, cap the output, leave no process behind, and neither
write nor read anything outside the sample's temp dir (a canary file with a known atime, mtime and
content, and a watched parent folder of the sample dirs).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tasks.evaluate import evaluate
from tasks.problem import Problem
from tasks.records import TrainingRecord
from verilog_tools import checker
from verilog_tools.container import release_scratch
from verilog_tools.icarus import SimLimits

HOSTILE = Path(__file__).with_name("hostile")
HEADER = "module top_module(input [7:0] a, input [7:0] b, output [7:0] y);"
WALL = 3.0          # per tool step; short so the corpus stays fast
OUTPUT_CAP = 64 * 1024
LIMITS = SimLimits(compile_wall_seconds=WALL, sim_wall_seconds=WALL, cpu_seconds=WALL,
                   memory_bytes=1 << 30, output_bytes=OUTPUT_CAP, file_bytes=32 << 20)
CANARY_TEXT = "canary: the expected answer is 42\n"


def expectations() -> dict:
    return yaml.safe_load((HOSTILE / "expectations.yaml").read_text())


def allowed(spec) -> set:
    return set(spec) if isinstance(spec, list) else {spec}


def case_text(name: str, canary: Path, spec: dict) -> str:
    # surrogateescape keeps non-UTF-8 bytes as they are (what a lenient JSONL reader would hand over)
    text = (HOSTILE / f"{name}.v").read_bytes().decode("utf-8", "surrogateescape")
    text = text.replace("@CANARY_DIR@", str(canary.parent)).replace("@CANARY@", str(canary))
    pad = spec.get("pad_to_bytes")
    if pad:
        line = "// " + "padding " * 12 + "\n"
        text += line * (pad // len(line) + 1)
        assert len(text.encode("utf-8", "surrogateescape")) >= pad
    return text


def test_corpus_is_complete():
    exp = expectations()
    files = {p.stem for p in HOSTILE.glob("*.v")}
    assert files == set(exp), f"cases without expectations or files: {files ^ set(exp)}"
    assert len(exp) - 1 >= 25   # `good` is the control, not a hostile case


# --- the watchers ---------------------------------------------------------------------------------
class Canary:
    """A file outside every sample dir; reading it moves its atime, writing moves mtime/content."""

    def __init__(self, folder: Path):
        folder.mkdir()
        self.path = folder / "expected_answer.txt"
        self.path.write_text(CANARY_TEXT)
        old = time.time() - 7200
        os.utime(self.path, (old - 3600, old))   # atime < mtime: even relatime records the next read
        self.stat = self.path.stat()
        self.listing = sorted(p.name for p in folder.iterdir())
        self.atime_tracked = self._reads_move_atime(folder)

    @staticmethod
    def _reads_move_atime(folder: Path) -> bool:
        probe = folder.parent / "atime-probe"
        probe.write_text("x")
        old = time.time() - 7200
        os.utime(probe, (old - 3600, old))
        probe.read_text()
        moved = probe.stat().st_atime > old - 3600 + 60
        probe.unlink()
        return moved

    def check(self) -> None:
        now = self.path.stat()
        assert self.path.read_text() == CANARY_TEXT
        assert now.st_mtime_ns == self.stat.st_mtime_ns, "the canary was written"
        if self.atime_tracked:
            assert now.st_atime_ns == self.stat.st_atime_ns, "the canary was read"
        assert sorted(p.name for p in self.path.parent.iterdir()) == self.listing, "files appeared next to the canary"
        self.stat = self.path.stat()   # check() itself read it


def _ancestry(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


def leftover_processes(watched: Path) -> list[str]:
    """Processes descending from this test, or running in / naming the watched sample-dir parent."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            state = next(line for line in (entry / "status").read_text().splitlines()
                         if line.startswith("State:"))
        except OSError:
            continue   # gone, or not ours to inspect
        if me in _ancestry(pid) or str(watched) in cmdline or cwd.startswith(str(watched)):
            found.append(f"{pid}: {cmdline.strip()} (cwd {cwd}, {state})")
    return found


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Sample dirs go under tmp_path/work (watched); the canary lives in tmp_path/secret."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    canary = Canary(tmp_path / "secret")
    tmp_root = set(os.listdir("/tmp"))
    yield work, canary
    release_scratch()   # the scratch folder of this TMPDIR and its reaper go now, not at exit
    checker.shutdown()  # and the policy's worker processes
    canary.check()
    assert list(work.iterdir()) == [], f"left in the sample-dir parent: {sorted(work.iterdir())}"
    assert not [n for n in set(os.listdir("/tmp")) - tmp_root if "pwned" in n]
    assert leftover_processes(work) == []


def settled_leftovers(watched: Path, grace: float = 3.0) -> list[str]:
    """`leftover_processes`, given a SIGKILLed process a moment to finish dying (freeing a large
    address space takes time; until then it still shows in /proc with its old cwd)."""
    deadline = time.monotonic() + grace
    while (found := leftover_processes(watched)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _check_after(work: Path, canary: Canary) -> None:
    release_scratch()
    checker.shutdown()
    canary.check()
    assert settled_leftovers(work) == []
    assert list(work.iterdir()) == []


# --- evaluator ------------------------------------------------------------------------------------
def test_evaluator_survives_the_corpus(sandbox):
    work, canary = sandbox
    exp = expectations()
    testbench = (HOSTILE / "testbench.sv").read_text()
    problems, samples = [], []
    for name, spec in exp.items():
        # one problem per case, so identical designs are never merged across cases
        problems.append(Problem(task_id=name, benchmark="hostile", description="xor of a and b",
                                header=HEADER, reference=(HOSTILE / "good.v").read_text(),
                                testbench=testbench, completion_mode="module"))
        samples.append({"task_id": name, "completion_id": 0, "completion": case_text(name, canary.path, spec)})
    started = time.monotonic()
    outcome = evaluate(problems, samples, workers=2, limits=LIMITS, ks=(1,), progress=False)
    wall = time.monotonic() - started
    _check_after(work, canary)
    by_id = {r["task_id"]: r for r in outcome.results}
    wrong = {n: (by_id[n]["status"], by_id[n]["log_tail"][-300:]) for n, spec in exp.items()
             if by_id[n]["status"] not in allowed(spec["eval"])}
    assert wrong == {}
    assert by_id["good"]["status"] == "pass"
    for name, row in by_id.items():
        # each simulation is two steps of at most WALL seconds, plus process start-up
        assert row["seconds"] < 2 * WALL + 5, (name, row["seconds"])
        assert len(row["log_tail"]) < 4000, name   # output is capped and tailed
    slow = sum(1 for spec in exp.values() if "timeout" in allowed(spec["eval"]))
    assert wall < (slow + 2) * 2 * WALL + 30
    assert outcome.metrics["status_counts"]["pass"] == sum(1 for s in exp.values() if s["eval"] == "pass")


# --- training scorer ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["paper", "functional"])
def test_training_scorer_survives_the_corpus(sandbox, mode):
    from harness.objective.scoring import ScoreConfig, score_groups

    work, canary = sandbox
    exp = expectations()
    testbench = (HOSTILE / "testbench.sv").read_text()
    reference = (HOSTILE / "good.v").read_text()
    records = [TrainingRecord(id=f"hostile-{name}", instruction=f"xor ({name})", header=HEADER,
                              reference=reference, source="hostile", testbench=testbench, top="tb",
                              dut_module="top_module") for name in exp]
    texts = [[case_text(name, canary.path, spec)] for name, spec in exp.items()]
    started = time.monotonic()
    rows = score_groups(records, texts, ScoreConfig(mode=mode), workers=2, limits=LIMITS)
    wall = time.monotonic() - started
    _check_after(work, canary)
    got = {name: row["candidates"][0] for name, row in zip(exp, rows)}
    wrong = {n: got[n]["status"] for n, spec in exp.items() if got[n]["status"] not in allowed(spec[mode])}
    assert wrong == {}
    for name, cand in got.items():
        assert cand["score"] is not None, name        # nothing here is an infrastructure failure
        assert row_reference_last(rows[list(exp).index(name)])
    slow = sum(1 for spec in exp.values() if "timeout" in allowed(spec[mode]))
    assert wall < (slow + 2) * 2 * WALL + 30


def row_reference_last(row: dict) -> bool:
    return row["candidates"][-1]["source"] == "reference"


def test_the_canary_would_notice_a_read_and_a_write(tmp_path):
    """The watchers can fail: a real read moves the atime (where tracked), a write the mtime."""
    canary = Canary(tmp_path / "secret")
    if canary.atime_tracked:
        canary.path.read_text()
        with pytest.raises(AssertionError, match="read"):
            canary.check()
    canary = Canary(tmp_path / "secret2")
    canary.path.write_text(CANARY_TEXT)
    with pytest.raises(AssertionError, match="written"):
        canary.check()


def test_the_process_watcher_sees_a_leftover(tmp_path):
    import subprocess
    proc = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert any(str(proc.pid) + ":" in p for p in leftover_processes(tmp_path))
    finally:
        proc.kill()
        proc.wait()
    assert leftover_processes(tmp_path) == []
