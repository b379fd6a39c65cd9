"""Bad input everywhere: each case runs `python -m harness ...` as a user would and must end with exit
code 2, ONE line `error: ...` on stderr naming the problem, no traceback, and no run folder that
looks complete (none at all, or one that keeps its ``.incomplete`` marker)."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def harness(*args: str, env: dict | None = None, preexec=None, code: str | None = None):
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "harness", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec)


def assert_user_error(proc, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    return lines[0]


def assert_no_complete_run(results: Path) -> None:
    if not results.exists():
        return
    for run in results.iterdir():
        assert (run / ".incomplete").exists(), f"{run} looks complete: {sorted(p.name for p in run.iterdir())}"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def eval_samples(tmp_path: Path, samples: Path, *extra: str):
    return harness("eval", "--bench", "synthetic", "--samples", str(samples),
                   "--results-dir", str(tmp_path / "results"), *extra)


# --- samples files --------------------------------------------------------------------------------
@pytest.mark.parametrize("content, words", [
    ('{"task_id": "a", "completion": "x"}\n{"task_id": "b", "compl', ["malformed JSON", ":2"]),
    ("this is not json\n", ["malformed JSON", ":1"]),
    ('[1, 2]\n', ["expected a JSON object"]),
    ('{"task_id": 3, "completion": "x"}\n', ["task_id", "string"]),
    ('{"task_id": "a", "completion": null}\n', ["completion", "string"]),
    ('{"task_id": "a", "completion": "x", "completion_id": true}\n', ["completion_id"]),
    ('{"task_id": "a"}\n', ["missing field", "completion"]),
])
def test_bad_samples_file(tmp_path, content, words):
    proc = eval_samples(tmp_path, write(tmp_path / "s.jsonl", content))
    assert_user_error(proc, *words)
    assert_no_complete_run(tmp_path / "results")


def test_samples_not_utf8(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"task_id": "a", "completion": "\xff\xfe"}\n')
    assert_user_error(eval_samples(tmp_path, path), "UTF-8")
    assert_no_complete_run(tmp_path / "results")


def test_duplicate_sample_ids(tmp_path):
    row = json.dumps({"task_id": "a", "completion_id": 0, "completion": "x"})
    assert_user_error(eval_samples(tmp_path, write(tmp_path / "s.jsonl", f"{row}\n{row}\n")), "duplicate")


def test_unknown_task_id(tmp_path):
    row = json.dumps({"task_id": "no-such-task", "completion": "x"})
    assert_user_error(eval_samples(tmp_path, write(tmp_path / "s.jsonl", row + "\n")), "no-such-task")
    assert_no_complete_run(tmp_path / "results")


def test_missing_samples_file(tmp_path):
    assert_user_error(eval_samples(tmp_path, tmp_path / "absent.jsonl"), "not found")


def test_duplicate_task_ids_in_a_problems_file(tmp_path):
    problem = {"task_id": "p", "prompt": "module top_module(input a, output y);",
               "canonical_solution": "assign y = a;\nendmodule", "test": "module tb; endmodule"}
    problems = write(tmp_path / "p.jsonl", json.dumps(problem) + "\n" + json.dumps(problem) + "\n")
    proc = harness("eval", "--problems", str(problems), "--model", "reference",
                   "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, "duplicate")
    assert_no_complete_run(tmp_path / "results")


def test_empty_completions_are_no_code_not_an_error(tmp_path):
    from tasks.benchmarks import load_benchmark
    task_ids = [p.task_id for p in load_benchmark("synthetic")[:2]]
    rows = [{"task_id": t, "completion": c} for t in task_ids for c in ("", "   \n")]
    samples = write(tmp_path / "s.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    proc = eval_samples(tmp_path, samples, "--limit", "2", "--run", "r")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in (tmp_path / "results" / "r" / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in results] == ["no_code"] * 4


# --- names and configs ----------------------------------------------------------------------------
def test_unknown_benchmark(tmp_path):
    proc = harness("eval", "--bench", "verilog-eval-v9", "--model", "reference",
                   "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, "verilog-eval-v9", "synthetic")
    assert not (tmp_path / "results").exists()


def test_unknown_preset(tmp_path):
    proc = harness("train", "--preset", "huge-gpu", "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, "huge-gpu", "tiny-cpu")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("yaml_text, words", [
    ("lr: 0.1\n", ["unknown config key", "lr"]),
    ("iters: many\n", ["iters", "wrong type", "int"]),
    ("iters: [1, 2]\n", ["iters", "wrong type"]),
    ("lora: maybe\n", ["lora", "wrong type", "bool"]),
    ("temperature: hot\n", ["temperature", "float"]),
    ("mode: sideways\n", ["mode", "iterative"]),
    ("k: 1\n", ["k", ">= 2"]),
    ("- a list\n- not a mapping\n", ["mapping"]),
    ("iters: [unclosed\n", ["not valid YAML"]),
])
def test_bad_train_config(tmp_path, yaml_text, words):
    config = write(tmp_path / "c.yaml", yaml_text)
    proc = harness("train", "--config", str(config), "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, *words)
    assert not (tmp_path / "results").exists()


def test_missing_config_file(tmp_path):
    proc = harness("train", "--config", str(tmp_path / "nope.yaml"), "--results-dir", str(tmp_path / "r"))
    assert_user_error(proc, "nope.yaml", "does not exist")


def test_model_without_tokenizer(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    write(model / "config.json", json.dumps({"model_type": "llama"}))
    proc = harness("eval", "--bench", "synthetic", "--model", str(model), "--limit", "1",
                   "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, "tokenizer", str(model))
    assert not (tmp_path / "results").exists() or list((tmp_path / "results").iterdir()) == []


def test_missing_model_folder(tmp_path):
    proc = harness("eval", "--bench", "synthetic", "--model", str(tmp_path / "gone"), "--limit", "1",
                   "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, "does not exist")


# --- environment ----------------------------------------------------------------------------------
def test_missing_iverilog(tmp_path):
    """No simulator anywhere: ITERTL_TOOLS_DIR empty, PATH without it, and the bundled build hidden
    (the checkout may hold one in .tools/, which would rightly be found)."""
    empty = tmp_path / "tools"
    empty.mkdir()
    code = ("import sys, pathlib, verilog_tools.tools as t; t.BUNDLED_DIR = pathlib.Path('/nonexistent'); "
            "from harness.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = harness("eval", "--bench", "synthetic", "--model", "reference", "--limit", "1",
                   "--results-dir", str(tmp_path / "results"), code=code,
                   env={"ITERTL_TOOLS_DIR": str(empty), "PATH": str(empty)})
    assert_user_error(proc, "iverilog", "make tools")
    assert not (tmp_path / "results").exists()


def test_results_dir_is_a_file(tmp_path):
    blocker = write(tmp_path / "results", "a file where the results folder should be")
    for target in (blocker, blocker / "sub"):
        proc = harness("eval", "--bench", "synthetic", "--model", "reference", "--limit", "1",
                       "--results-dir", str(target))
        assert_user_error(proc, "results directory", "RESULTS_DIR")


def test_read_only_results_dir(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop root from writing (see test_results_dir_is_a_file "
                    "and test_full_disk for the same failure paths)")
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o555)
    try:
        proc = harness("eval", "--bench", "synthetic", "--model", "reference", "--limit", "1",
                       "--results-dir", str(results))
        assert_user_error(proc, "RESULTS_DIR")
        assert list(results.iterdir()) == []
    finally:
        results.chmod(0o755)


@pytest.mark.parametrize("file_limit", [300, 3000])
def test_full_disk(tmp_path, file_limit):
    """A file-size limit stands in for a full disk: every write past it fails with EFBIG."""
    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, resource.RLIM_INFINITY))

    results = tmp_path / "results"
    proc = harness("eval", "--bench", "synthetic", "--model", "reference", "--limit", "3",
                   "--results-dir", str(results), "--run", "r", preexec=small_disk)
    assert_user_error(proc, "cannot write", "disk")
    assert_no_complete_run(results)


# --- issue 12's smaller defects ---------------------------------------------------------------------
@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "1e308", "0", "-1", "3601"])
def test_timeout_must_be_finite_positive_and_bounded(tmp_path, timeout):
    proc = harness("eval", "--bench", "synthetic", "--model", "reference", "--limit", "1",
                   f"--timeout={timeout}", "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, "timeout", "3600")
    assert not (tmp_path / "results").exists()


def test_a_lone_surrogate_in_one_completion_is_that_sample_s_outcome(tmp_path):
    """A JSON ``"\\ud800"`` is valid JSON but no UTF-8 text: reading, scoring and every output file
    must carry it (escaped), never stop the eval."""
    from tasks.benchmarks import load_benchmark
    problem = load_benchmark("synthetic")[0]
    good = problem.reference_completion()
    rows = [{"task_id": problem.task_id, "completion": good},
            {"task_id": problem.task_id, "completion": "\ud800"},
            {"task_id": problem.task_id, "completion": good.replace("endmodule", "wire \udfff;\nendmodule")}]
    samples = write(tmp_path / "s.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    proc = eval_samples(tmp_path, samples, "--limit", "1", "--run", "r", "--k", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "results" / "r"
    for name in ("samples.jsonl", "results.jsonl"):
        got = [json.loads(line) for line in (run / name).read_bytes().decode("utf-8").split("\n") if line]
        assert [r["completion"] for r in got] == [r["completion"] for r in rows], name
    results = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert [r["status"] == "pass" for r in results] == [True, False, False]
    import xml.etree.ElementTree as ET
    ET.parse(run / "junit.xml")


def _max_rss_kib_of(tmp_path, *args):
    """Run the harness; return (process, its peak RSS in KiB) without adding a line to its stderr.

    The peak is the kernel's VmHWM, the high-water mark of the memory the child has had since its exec;
    getrusage's ru_maxrss would also count the pytest process the child was forked from."""
    rss = tmp_path / "rss"
    code = ("import sys; from harness.cli import main; "
            "rc = main(sys.argv[1:]); "
            "peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]; "
            f"open({str(rss)!r}, 'w').write(peak); sys.exit(rc)")
    proc = harness(*args, code=code)
    return proc, int(rss.read_text())


def test_a_huge_samples_line_is_refused_without_reading_it(tmp_path):
    """A 2 GB line (a sparse file: no disk used) stops at the 16 MiB bound, not at 4 GB of RSS."""
    from tasks.benchmarks import load_benchmark
    row = json.dumps({"task_id": load_benchmark("synthetic")[0].task_id, "completion": "x"})
    samples = tmp_path / "s.jsonl"
    with samples.open("w") as fh:
        fh.write(row + "\n" + '{"task_id": "a", "completion": "')
        fh.truncate(2 * 2**30)
    proc, rss_kib = _max_rss_kib_of(tmp_path, "eval", "--bench", "synthetic", "--samples", str(samples),
                                    "--results-dir", str(tmp_path / "results"))
    assert_user_error(proc, f"{samples}:2", "longer than")
    assert rss_kib < 600_000, f"peak RSS {rss_kib} KiB: the line was read into memory"
    assert not (tmp_path / "results").exists()


def test_the_line_bound_is_configurable(tmp_path):
    from tasks.benchmarks import load_benchmark
    row = {"task_id": load_benchmark("synthetic")[0].task_id, "completion": "x" * 300}
    samples = write(tmp_path / "s.jsonl", json.dumps(row) + "\n")
    assert_user_error(eval_samples(tmp_path, samples, "--max-line-bytes", "200"), f"{samples}:1", "200 bytes")
    proc = eval_samples(tmp_path, samples, "--limit", "1", "--max-line-bytes", "400")
    assert proc.returncode == 0, proc.stderr[-2000:]
