"""`make ablation`: the arms' command lines, scheduling, failure handling, resume and the result table.

The arms themselves are ordinary `harness train` runs (tested in test_resume.py / test_train_cli.py);
here they are replaced by small scripts so the driver is tested in seconds.
"""
from __future__ import annotations

import dataclasses

import json
import sys
from pathlib import Path

import pytest

from harness.commands.ablation import main_ablation
from harness.config import load_config
from harness.experiment import ablation
from harness.experiment.ablation import ARMS, AblationConfig, arm_argv, arm_name, pass_at_1_table
from verilog_tools.errors import UserError

FAKE_ARM = """
import json, os, sys, pathlib
run = pathlib.Path(sys.argv[1]) / sys.argv[2]
run.mkdir(parents=True, exist_ok=True)
if os.environ.get("FAIL_ARM") == sys.argv[2]:
    (run / ".incomplete").touch()
    sys.exit(3)
rows = [{"iteration": i, "pass@1": round(0.1 * i + (0.05 if "iterative" in sys.argv[2] else 0), 3)} for i in range(3)]
(run / "summary.json").write_text(json.dumps({"iterations": rows}))
for row in rows:  # what the reports read: each iteration's held-out metrics
    (run / f"iter-{row['iteration']:02d}" / "eval").mkdir(parents=True, exist_ok=True)
    (run / f"iter-{row['iteration']:02d}" / "eval" / "metrics.json").write_text(json.dumps({"pass_at_k": {"pass@1": row["pass@1"]}}))
(run / "state.json").write_text(json.dumps({"stages": {"a": {"done": True}}}))
(run / ".incomplete").unlink(missing_ok=True)  # as RunFolder.finish does
with open(pathlib.Path(sys.argv[1]) / "launched.txt", "a") as fh:
    fh.write(sys.argv[2] + "\\n")
"""


@pytest.fixture
def fake_arms(monkeypatch, tmp_path):
    script = tmp_path / "fake_arm.py"
    script.write_text(FAKE_ARM)
    monkeypatch.setattr(ablation, "arm_argv", lambda cfg, arms_dir, mode, filter_on, workers:
                        [sys.executable, str(script), str(arms_dir), arm_name(mode, filter_on)])
    calls = []
    monkeypatch.setattr(ablation, "compare_runs",
                        lambda dirs, out, labels=None, title=None: calls.append((dirs, labels)) or "table")
    monkeypatch.setattr(ablation.time, "sleep", lambda s: None)
    return calls


def test_arm_command_lines_differ_only_in_mode_and_filter(tmp_path):
    cfg = AblationConfig(iters=3, seed=7, limit=50)
    argvs = [arm_argv(cfg, tmp_path, mode, f, workers=1) for mode, f in ARMS]
    assert {a[a.index("--mode") + 1] for a in argvs} == {"iterative", "static"}
    assert sorted(a[a.index("--filter") + 1] for a in argvs) == ["0", "0", "1", "1"]
    strip = [[x for i, x in enumerate(a) if a[i - 1] not in ("--mode", "--filter", "--run")] for a in argvs]
    assert all(s == strip[0] for s in strip)
    assert strip[0][-6:] == ["--iters", "3", "--seed", "7", "--limit", "50"]


def test_jobs_default_to_one_arm_per_torch_thread_and_one_on_gpu_presets(monkeypatch):
    monkeypatch.setattr(ablation.os, "cpu_count", lambda: 2)
    one_thread = dataclasses.replace(load_config("tiny-cpu"), torch_threads=1)
    assert ablation.auto_jobs(AblationConfig(), one_thread) == 2
    assert ablation.auto_jobs(AblationConfig(), load_config("tiny-cpu")) == 1  # the preset's 2 threads each
    assert ablation.auto_jobs(AblationConfig(jobs=9), load_config("tiny-cpu")) == 4
    assert ablation.auto_jobs(AblationConfig(preset="paper"), load_config("paper")) == 1
    with pytest.raises(UserError, match="jobs"):
        AblationConfig(jobs=-1)


def test_ablation_runs_every_arm_and_writes_the_table(fake_arms, tmp_path, capsys):
    assert main_ablation(["--run", "a", "--results-dir", str(tmp_path), "--iters", "2", "--jobs", "2"]) == 0
    run = tmp_path / "a"
    assert not (run / ".incomplete").exists()
    assert sorted((run / "arms" / "launched.txt").read_text().split()) == sorted(arm_name(m, f) for m, f in ARMS)
    rows = json.loads((run / "ablation.json").read_text())["rows"]
    assert rows[2]["iterative, filter on"] == 0.25 and rows[2]["static, filter off"] == 0.2
    text = (run / "ablation.md").read_text()
    assert "| 2 | 0.250 | 0.200 | 0.250 | 0.200 |" in text and "+0.200" in text
    assert fake_arms[0][1] == ["iterative, filter on", "static, filter on", "iterative, filter off",
                               "static, filter off"]
    assert "ablation folder" in capsys.readouterr().out


def test_a_failed_arm_stops_with_its_log_and_a_rerun_resumes_only_unfinished_arms(fake_arms, tmp_path,
                                                                                  monkeypatch):
    argv = ["--run", "a", "--results-dir", str(tmp_path), "--iters", "2", "--jobs", "1"]
    monkeypatch.setenv("FAIL_ARM", "static-filter-off")
    with pytest.raises(UserError, match=r"arm static-filter-off failed \(exit 3\).*static-filter-off\.log"):
        main_ablation(argv)
    assert (tmp_path / "a" / ".incomplete").exists() and not (tmp_path / "a" / "ablation.md").exists()
    monkeypatch.delenv("FAIL_ARM")
    assert main_ablation(argv) == 0
    launched = (tmp_path / "a" / "arms" / "launched.txt").read_text().split()
    assert launched.count("static-filter-off") == 1 and launched.count("iterative-filter-on") == 1
    with pytest.raises(UserError, match=r"started with another config \(seed: None -> 5\)"):
        main_ablation([*argv[:-2], "--jobs", "1", "--seed", "5"])


def test_table_marks_missing_iterations(tmp_path):
    for mode, f in ARMS:
        d = tmp_path / arm_name(mode, f)
        d.mkdir()
        for it in (0, 1) if f else (0,):
            (d / f"iter-{it:02d}" / "eval").mkdir(parents=True)
            (d / f"iter-{it:02d}" / "eval" / "metrics.json").write_text(json.dumps({"pass_at_k": {"pass@1": 0.1 * (it + 1)}}))
    rows, table = pass_at_1_table(Path(tmp_path))
    assert rows[1]["static, filter off"] is None and "| 1 | 0.200 | 0.200 | - | - |" in table


DRIVER = """
import sys, pathlib
from harness.experiment.ablation import Job, run_jobs
d = pathlib.Path(sys.argv[1])
step = [sys.executable, "-c", "import os, sys, time, pathlib; "
        "pathlib.Path(sys.argv[1], 'child.pid').write_text(str(os.getpid())); time.sleep(120)", str(d)]
run_jobs([Job("slow", [(step, lambda: False)])], d, 1, lambda: 0, 1, "test")
"""


@pytest.mark.parametrize("driver_sigint", ["default", "ignored"])
def test_a_terminated_driver_stops_the_jobs_it_started(tmp_path, driver_sigint):
    """SIGTERM to the driver stops its jobs at once, also when the driver runs with SIGINT ignored (as
    under ``nohup ... &``): the jobs then still take the driver's SIGINT instead of sitting out the 60 s
    grace before SIGKILL."""
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    sigint = signal.SIG_IGN if driver_sigint == "ignored" else signal.SIG_DFL
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=Path(__file__).parents[1],
                              stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
    deadline = time.monotonic() + 60
    while not (tmp_path / "child.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    child = int((tmp_path / "child.pid").read_text())
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(timeout=30) != 0   # the grace before SIGKILL is 60 s
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_a_step_that_exits_0_without_its_output_fails_and_later_steps_wait(tmp_path):
    ok = [sys.executable, "-c", "pass"]
    made = tmp_path / "made"
    touch = [sys.executable, "-c", f"open({str(made)!r}, 'w').close()"]
    jobs = [ablation.Job("liar", [(ok, lambda: False), (touch, made.exists)]),
            ablation.Job("after", [(touch, made.exists)], ready=made.exists)]
    failed = ablation.run_jobs(jobs, tmp_path, 2, lambda: 0, 1, "test")
    assert failed == {"liar": -1} and not made.exists()
    assert ablation.run_jobs(jobs[1:], tmp_path, 1, lambda: 0, 1, "test") == {} and not made.exists()
