"""`python -m harness eval` end to end on a few real problems, and its refusals on bad input."""
from __future__ import annotations

import json

import pytest

from harness.commands import eval as eval_cli
from harness.commands.eval import EvalConfig, main_eval
from verilog_tools.errors import UserError


@pytest.fixture
def env(v1_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VERILOG_EVAL_V1_DIR", str(v1_dir))
    return tmp_path


def _args(tmp, *extra):
    return ["--results-dir", str(tmp / "results"), "--workers", "2", *extra]


def test_reference_smoke_run(env, capsys):
    assert main_eval(_args(env, "--model", "reference", "--limit", "3", "--run", "ref", "--k", "1,5")) == 0
    folder = env / "results" / "ref"
    assert not (folder / ".incomplete").exists() and not (folder / ".lock").exists()
    for name in ("samples.jsonl", "results.jsonl", "metrics.json", "problems.csv", "junit.xml",
                 "manifest.json", "state.json"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["smoke"] is True and metrics["limit"] == 3 and metrics["problems"] == 3
    assert metrics["pass_at_k"] == {"pass@1": 1.0} and metrics["ks_skipped"] == [5]
    assert metrics["benchmark"] == "verilog-eval-v1-human" and metrics["data_hash"].startswith("sha256:")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["limit"] == 3 and manifest["finished"]
    out = capsys.readouterr().out
    assert "SMOKE RUN" in out and "pass@1" in out and str(folder) in out


def _write(path, rows):
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))
    return path


def test_fail_under_and_file_samples(env, v1_dir):
    samples = _write(env / "s.jsonl", [{"task_id": "gatesv", "completion": "assign out_both = 0;\nendmodule\n"}])
    problems = env / "p.jsonl"
    rows = [json.loads(line) for line in open(v1_dir / "data/example/ExampleEval.jsonl")]
    _write(problems, [dict(r, description="d") for r in rows if r["task_id"] == "gatesv"])
    code = main_eval(_args(env, "--problems", str(problems), "--samples", str(samples), "--fail-under", "0.5"))
    assert code == 1
    (run,) = (env / "results").iterdir()
    assert json.loads((run / "metrics.json").read_text())["status_counts"]["pass"] == 0


@pytest.mark.parametrize("case, message", [
    ("malformed", r"s\.jsonl:2: malformed JSON"),
    ("unknown_task", r"not in the benchmark: 'no_such_task'"),
    ("missing_file", r"samples file .*absent\.jsonl not found"),
    ("unknown_bench", r"bench: unknown benchmark 'verilog-eval-v9'"),
    ("unknown_model", r"model 'my-llm' is not available offline"),
    ("bad_k", r"k: expected comma-separated positive integers"),
])
def test_bad_input_leaves_no_run_folder(env, case, message):
    good = {"task_id": "zero", "completion": "assign zero = 0;\nendmodule\n"}
    samples = env / ("s.jsonl" if case in ("malformed", "unknown_task") else "absent.jsonl")
    if case == "malformed":
        _write(samples, [good, "{not json\n"])
    elif case == "unknown_task":
        _write(samples, [good, dict(good, task_id="no_such_task")])
    argv = {"unknown_bench": ["--bench", "verilog-eval-v9", "--model", "reference"],
            "unknown_model": ["--model", "my-llm"],
            "bad_k": ["--model", "reference", "--k", "1,x"]}.get(case, ["--samples", str(samples)])
    with pytest.raises(UserError, match=message) as err:
        main_eval(_args(env, "--run", "bad", "--allow-missing", *argv))
    assert "\n" not in str(err.value)
    assert not (env / "results" / "bad").exists()


def test_existing_run_is_refused(env):
    (env / "results" / "taken").mkdir(parents=True)
    with pytest.raises(UserError, match="already exists"):
        main_eval(_args(env, "--model", "reference", "--limit", "1", "--run", "taken"))


def test_failure_mid_run_never_looks_complete(env, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("simulator exploded")
    monkeypatch.setattr(eval_cli, "evaluate", boom)
    with pytest.raises(RuntimeError):
        main_eval(_args(env, "--model", "reference", "--limit", "1", "--run", "crash"))
    folder = env / "results" / "crash"
    assert (folder / ".incomplete").exists() and not (folder / "metrics.json").exists()


def test_generator_hook(env):
    seen = {}

    def generate(problems, config):
        seen["config"] = config
        return ([{"task_id": p.task_id, "completion": p.reference_completion()} for p in problems],
                {"temperature": 0.2, "top_p": 0.95, "model_id": "fake"})
    assert main_eval(_args(env, "--model", "fake", "--limit", "2", "--run", "g"), generate_samples=generate) == 0
    metrics = json.loads((env / "results" / "g" / "metrics.json").read_text())
    assert metrics["temperature"] == 0.2 and metrics["model_id"] == "fake" and metrics["pass_at_k"]["pass@1"] == 1.0
    assert isinstance(seen["config"], EvalConfig)


def test_config_validation_names_the_field():
    with pytest.raises(UserError, match="fail_under"):
        EvalConfig(model="reference", fail_under=2.0)
    with pytest.raises(UserError, match="samples/model"):
        EvalConfig()
    assert EvalConfig(model="reference", k="10,1,5").ks == (1, 5, 10)


def test_limit_still_checks_every_task_id(env):
    samples = _write(env / "s.jsonl", [{"task_id": "zero", "completion": "x"}, {"task_id": "zer0", "completion": "x"}])
    with pytest.raises(UserError, match="'zer0'"):
        main_eval(_args(env, "--samples", str(samples), "--limit", "1", "--run", "lim"))
    assert not (env / "results" / "lim").exists()


def test_generator_rows_are_validated(env):
    def generate(problems, config):
        return [{"task_id": problems[0].task_id}], {}
    with pytest.raises(UserError, match="generated sample 0: missing field 'completion'"):
        main_eval(_args(env, "--model", "m", "--limit", "1", "--run", "gen"), generate_samples=generate)
    assert not (env / "results" / "gen").exists()  # nothing but bookkeeping was written: removed
