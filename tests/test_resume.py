"""Kill-and-resume: `python -m harness train` / `eval` killed (SIGKILL, SIGINT) at random points and
rerun must finish with the same outputs as an uninterrupted run, never recompute a finished stage,
never leave a stage marked done with missing or empty files, and refuse a second concurrent run.

The random kill points are seeded (KILL_SEEDS); the test polls state.json so kill points spread over
the stages (data, base model, warm start, sample, score, train, eval of each iteration). The micro run
continues one optimiser across iterations (optimizer_schedule=continued) on a limited warm start, so a
resumed run must also end with the same optimiser state and weights.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MICRO = {
    "iters": 2, "limit": 24, "instructions_per_iter": 8, "eval_limit": 4, "eval_n": 1,
    "max_new_tokens": 24, "warmup_epochs": 1, "sample_batch_size": 8, "tiny_hidden_size": 32,
    "tiny_layers": 1, "tiny_heads": 2, "tiny_intermediate_size": 64, "torch_threads": 1, "workers": 1,
    "optimizer_schedule": "continued", "warmup_limit": 12,
}
KILL_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]          # with two eval kills: 10 kill points
DETERMINISTIC = ["iter-01/candidates.jsonl", "iter-01/scores.jsonl", "iter-02/candidates.jsonl",
                 "iter-02/scores.jsonl"]


def micro_config(tmp: Path) -> Path:
    path = tmp / "micro.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in MICRO.items()))
    return path


def train_argv(results: Path, run: str, config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "train", "--preset", "tiny-cpu", "--config", str(config),
            "--run", run, "--results-dir", str(results), *extra]


def default_sigint() -> None:
    """In the child: Ctrl-C at its default, whatever this process inherited. A background launch
    (`cmd &` without job control, `nohup`) ignores SIGINT, Python then installs no handler, and the
    test's Ctrl-C would be ignored: a fresh-clone CI run launched that way failed here with exit 0."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(argv) -> subprocess.Popen:
    return subprocess.Popen(["nice", "-n", "10", *argv], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def finish(argv) -> subprocess.CompletedProcess:
    proc = subprocess.run(["nice", "-n", "10", *argv], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def done_stages(run: Path) -> dict:
    try:
        return json.loads((run / "state.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return {}


def output_mtimes(run: Path) -> dict[str, int]:
    """mtime of every output file of every stage marked done (folders walked)."""
    out = {}
    for stage in done_stages(run).values():
        for rel in stage["outputs"]:
            target = run / rel
            files = [target] if target.is_file() else [p for p in target.rglob("*") if p.is_file()]
            for f in files:
                out[str(f.relative_to(run))] = f.stat().st_mtime_ns
    return out


def check_done_outputs(run: Path) -> None:
    for name, stage in done_stages(run).items():
        for rel in stage["outputs"]:
            target = run / rel
            assert target.exists(), f"stage {name} is done but {rel} is missing"
            if target.is_file():
                assert target.stat().st_size > 0, f"stage {name}: {rel} is empty"
                if rel.endswith((".json", ".jsonl")):
                    for line in target.read_text().splitlines() if rel.endswith("l") else [target.read_text()]:
                        json.loads(line) if line.strip() else None   # truncated JSON fails here


def kill_at_random_point(argv, run: Path, rng: random.Random, sig: int, stages_total: int) -> int:
    """Start ``argv``, wait until a random number of stages are done (+ a random delay), send ``sig``."""
    target = rng.randrange(0, stages_total)
    proc = start(argv)
    deadline = time.monotonic() + 900
    while proc.poll() is None and len(done_stages(run)) < target and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.communicate(timeout=300)
    return target


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("baseline")
    config = micro_config(tmp)
    finish(train_argv(tmp / "results", "base", config))
    return tmp / "results" / "base"


def compare_with_baseline(run: Path, base: Path) -> None:
    for rel in DETERMINISTIC:
        assert (run / rel).read_text() == (base / rel).read_text(), rel
    compare_trained_state(run, base)
    for it in (0, 1, 2):
        rel = f"iter-{it:02d}/eval/metrics.json"
        got, want = json.loads((run / rel).read_text()), json.loads((base / rel).read_text())
        assert got["pass_at_k"] == want["pass_at_k"], rel
        assert got["status_counts"] == want["status_counts"], rel


def compare_trained_state(run: Path, base: Path) -> None:
    """Iteration 2's weights, its optimiser state and the learning rates of its steps equal the baseline's."""
    import torch
    from safetensors.torch import load_file

    got, want = (load_file(r / "iter-02" / "model" / "model.safetensors") for r in (run, base))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    got, want = (torch.load(r / "iter-02" / "optimizer.pt", weights_only=True) for r in (run, base))
    assert got["global_step"] == want["global_step"]
    for key, state in want["optimizer"]["state"].items():
        assert all(torch.equal(v, got["optimizer"]["state"][key][n]) for n, v in state.items()), key
    rates = [json.loads((r / "iter-02" / "train_log.json").read_text())["schedule"]["learning_rates"]
             for r in (run, base)]
    assert rates[0] == rates[1] and min(rates[0]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_train_killed_and_resumed_equals_uninterrupted(tmp_path, baseline, seed):
    rng = random.Random(seed)
    sig = signal.SIGKILL if seed % 2 else signal.SIGINT
    config = micro_config(tmp_path)
    results = tmp_path / "results"
    argv = train_argv(results, "r", config)
    run = results / "r"
    kill_at_random_point(argv, run, rng, sig, len(done_stages(baseline)))
    check_done_outputs(run)
    before = output_mtimes(run)
    finish(argv)
    after = output_mtimes(run)
    assert {k: after.get(k) for k in before} == before, "a finished stage was recomputed"
    check_done_outputs(run)
    assert not (run / ".incomplete").exists() and not (run / ".lock").exists()
    compare_with_baseline(run, baseline)


@pytest.mark.slow
def test_killed_during_iteration_2_training_resumes_without_redoing_iteration_1(tmp_path, baseline):
    """Issue 4's acceptance: kill `train --iters 2` while iteration 2 trains, then rerun it."""
    config = micro_config(tmp_path)
    results = tmp_path / "results"
    argv = train_argv(results, "t", config)
    run = results / "t"
    proc = start(argv)
    deadline = time.monotonic() + 900
    while proc.poll() is None and "iter-02/score" not in done_stages(run) and time.monotonic() < deadline:
        time.sleep(0.05)
    while proc.poll() is None and not (run / "iter-02" / "train.out.tmp").exists() \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before iteration 2's training could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert "iter-02/train" not in done_stages(run)
    check_done_outputs(run)
    iteration_1 = {k: v for k, v in output_mtimes(run).items() if k.startswith(("iter-00", "iter-01"))}
    assert any(k.startswith("iter-01/model") for k in iteration_1)
    finish(argv)
    after = output_mtimes(run)
    assert {k: after[k] for k in iteration_1} == iteration_1, "iteration 1 was recomputed"
    assert not list(run.rglob("*.tmp")), "a half-written stage folder was left behind"
    check_done_outputs(run)
    assert not (run / ".incomplete").exists()
    compare_with_baseline(run, baseline)


@pytest.mark.slow
def test_extend_a_finished_run(tmp_path, baseline):
    import shutil
    run = tmp_path / "results" / "base"
    shutil.copytree(baseline, run)
    before = output_mtimes(run)
    finish(train_argv(tmp_path / "results", "base", micro_config(tmp_path), "--iters", "3"))
    assert {k: output_mtimes(run).get(k) for k in before} == before
    assert (run / "iter-03" / "eval" / "metrics.json").is_file()
    assert not (run / ".incomplete").exists()


def test_second_concurrent_train_is_refused(tmp_path):
    config = micro_config(tmp_path)
    results = tmp_path / "results"
    argv = train_argv(results, "r", config)
    first = start(argv)
    try:
        deadline = time.monotonic() + 120
        while not (results / "r" / "manifest.json").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[1][-2000:]
        second = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        assert "in use by running process" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.kill()
        first.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_eval_killed_midway_then_rerun_gives_the_same_results(tmp_path, seed, v1_dir):
    rng = random.Random(seed)

    def argv(run):
        return [sys.executable, "-m", "harness", "eval", "--bench", "verilog-eval-v1-human", "--model",
                "reference", "--limit", "40", "--workers", "1", "--run", run,
                "--results-dir", str(tmp_path / "results")]
    env_ok = os.environ.get("VERILOG_EVAL_V1_DIR")
    assert env_ok
    proc = start(argv("killed"))
    time.sleep(rng.uniform(1.0, 4.0))
    proc.send_signal(signal.SIGKILL if seed % 2 else signal.SIGINT)
    proc.communicate(timeout=120)
    killed = tmp_path / "results" / "killed"
    assert not killed.exists() or (killed / ".incomplete").exists() or not (killed / "metrics.json").exists() \
        or proc.returncode == 0
    finish(argv("again"))
    finish(argv("reference"))
    rows = lambda run: [(r["task_id"], r["status"]) for r in  # noqa: E731
                        map(json.loads, (tmp_path / "results" / run / "results.jsonl").read_text().splitlines())]
    assert rows("again") == rows("reference")
    metrics = lambda run: json.loads((tmp_path / "results" / run / "metrics.json").read_text())  # noqa: E731
    assert metrics("again")["pass_at_k"] == metrics("reference")["pass_at_k"]


def test_eval_interrupted_by_sigint_resumes_in_the_same_run(tmp_path):
    """Issue 12: after Ctrl-C, eval said "rerun the same command to resume" and the rerun was refused.
    The rerun now resumes the same folder, keeping the samples it had written."""
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness", "eval", "--bench", "synthetic", "--model", "reference",
            "--limit", "40", "--workers", "1", "--k", "1", "--run", "r", "--results-dir", str(results)]
    run = results / "r"
    proc = start(argv)
    deadline = time.monotonic() + 120
    while proc.poll() is None and "samples" not in done_stages(run) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "eval ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "--run r" in stderr and "Traceback" not in stderr
    assert (run / ".incomplete").exists() and not (run / ".lock").exists()
    assert set(done_stages(run)) == {"samples"} and not (run / "metrics.json").exists()
    samples_written = (run / "samples.jsonl").stat().st_mtime_ns

    finish(argv)
    assert (run / "samples.jsonl").stat().st_mtime_ns == samples_written, "the samples were written again"
    assert not (run / ".incomplete").exists() and not (run / ".lock").exists()
    check_done_outputs(run)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["samples"] == 40 and metrics["pass_at_k"] == {"pass@1": 1.0}
    assert json.loads((run / "manifest.json").read_text())["finished"]

    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already exists and is finished" in again.stderr, again.stderr


def test_eval_resume_refuses_another_config(tmp_path):
    results = tmp_path / "results"
    argv = [sys.executable, "-m", "harness", "eval", "--bench", "synthetic", "--model", "reference",
            "--limit", "2", "--run", "r", "--results-dir", str(results)]
    finish(argv)
    (results / "r" / ".incomplete").touch()   # as if it had been interrupted
    other = subprocess.run([*argv, "--limit", "3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "limit: 2 -> 3" in other.stderr, other.stderr
    finish([*argv, "--workers", "1"])   # a setting that does not change results may differ
    assert not (results / "r" / ".incomplete").exists()
