"""`make experiment`: pre-registration, shared warm starts, resume, and the analysis on fake arms.

The arms are small scripts that write what `harness train` and the greedy evaluation write
(problems.csv per evaluation, state.json, summary.json, manifest times), with pass rates chosen by
construction, so the driver and the statistics are tested in seconds. One slow test runs a real
tiny experiment end to end.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from harness.commands.experiment import main_experiment
from harness.config import load_config
from harness.experiment import ablation, arms as experiment
from harness.experiment.arms import donors, shared_stages, train_argv
from harness.experiment.config import ExperimentConfig, arm_runs, load_experiment, train_config
from verilog_tools.errors import UserError

FAKE_TRAIN = r"""
import json, os, random, sys, pathlib, time
arms_dir, name, arm, iters, seed = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
exp = arms_dir.parent
assert (exp / "experiment.yaml").is_file(), "an arm ran before the plan was written"
run = arms_dir / name
run.mkdir(exist_ok=True)
(run / ".incomplete").touch()
state = json.loads((run / "state.json").read_text()) if (run / "state.json").exists() else {"kind": "train", "stages": {}}
forked = "iter-00/eval" in state["stages"]
with open(arms_dir / "launched.txt", "a") as fh:
    fh.write(f"{name} {'forked' if forked else 'own'}\n")
if os.environ.get("FAIL_ARM") == name:
    sys.exit(3)
effect = float(os.environ.get("FAKE_EFFECT", "0.3"))
now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
manifest = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").exists() else {"started": now}
def problems(it):
    rows = ["task_id,n,c,pass@1,statuses"]
    for p in range(40):
        rng = random.Random(f"{seed}:{p}:{it}:{arm if it else ''}")
        prob = 0.2 + 0.01 * p + (effect if arm == "iterative" and it else 0.0)
        c = sum(rng.random() < prob for _ in range(4))
        rows.append(f"syn-{p:03d},4,{c},{c / 4:.4f},pass={c}")
    return "\n".join(rows) + "\n"
summary = []
for it in range(iters + 1):
    d = run / f"iter-{it:02d}" / "eval"
    if it == 0 and forked:
        assert (d / "problems.csv").is_file()
    else:
        d.mkdir(parents=True, exist_ok=True)
        (d / "problems.csv").write_text(problems(it))
    summary.append({"iteration": it, "cand_pass_rate": None if it == 0 else 0.5 + 0.1 * (arm == "iterative")})
for sub in ("data", "base-model"):
    (run / sub).mkdir(exist_ok=True)
for s in ("data", "base-model", "iter-00/train", "iter-00/eval") + tuple(f"iter-{i:02d}/eval" for i in range(1, iters + 1)):
    state["stages"][s] = {"done": True}
(run / "state.json").write_text(json.dumps(state))
(run / "summary.json").write_text(json.dumps({"iterations": summary}))
manifest["finished"] = now
(run / "manifest.json").write_text(json.dumps(manifest))
(run / ".incomplete").unlink()
"""

FAKE_GREEDY = r"""
import json, os, sys, pathlib
arm_dir, it, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
if os.environ.get("FAIL_GREEDY") == arm_dir.name:
    sys.exit(4)
out.mkdir(parents=True, exist_ok=True)
better = arm_dir.name.startswith("iterative") and it > 0
rows = ["task_id,n,c,pass@1,statuses"] + [f"syn-{p:03d},1,{int(better or p % 3 == 0)},0,x" for p in range(40)]
(out / "problems.csv").write_text("\n".join(rows) + "\n")
(out / "metrics.json").write_text(json.dumps({"cache": os.environ.get("ITERTL_REFERENCE_CACHE")}))
"""

EXPERIMENT = {
    "preset": "tiny-cpu", "seeds": [0, 1, 2], "scores": ["paper", "equivalence"],
    "arms": {"iterative": {"mode": "iterative"}, "static": {"mode": "static"},
             "ce-only": {"mode": "iterative", "alpha": 0.0}},
    "train": {"iters": 2, "eval_n": 4, "eval_temperature": 0.8},
    "plan": {"treatment": "iterative", "control": "static", "bootstrap_resamples": 2000},
}


@pytest.fixture
def fake_arms(monkeypatch, tmp_path):
    train, greedy = tmp_path / "fake_train.py", tmp_path / "fake_greedy.py"
    train.write_text(FAKE_TRAIN)
    greedy.write_text(FAKE_GREEDY)
    monkeypatch.setattr(experiment, "train_argv", lambda cfg, arm, arms_dir, workers: [
        sys.executable, str(train), str(arms_dir), arm.name, arm.arm, str(arm.overrides["iters"]), str(arm.seed)])
    monkeypatch.setattr(experiment, "greedy_argv", lambda arm_dir, it, out: [
        sys.executable, str(greedy), str(arm_dir), str(it), str(out)])
    monkeypatch.setattr(ablation.time, "sleep", lambda s: None)
    monkeypatch.setattr(experiment, "write_manifest", _light_manifest)
    return tmp_path


def _light_manifest(run, config, seeds=None, argv=None):
    """write_manifest without the tool versions (no simulator call in a fast test)."""
    run.write_json("manifest.json", {"kind": run.kind, "config": config, "started": "2026-01-01T00:00:00+0000",
                                     "finished": None})


def _experiment_file(tmp_path: Path, **changes) -> str:
    data = json.loads(json.dumps(EXPERIMENT))
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    path = tmp_path / f"exp-{len(list(tmp_path.glob('exp-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _launched(run: Path) -> list[str]:
    return (run / "arms" / "launched.txt").read_text().splitlines()


def test_every_arm_runs_after_the_plan_shares_warm_starts_and_the_better_arm_is_found(fake_arms, capsys):
    tmp = fake_arms
    argv = ["--experiment", _experiment_file(tmp), "--run", "e", "--results-dir", str(tmp), "--jobs", "2"]
    assert main_experiment(argv) == 0
    run = tmp / "e"
    launched = _launched(run)
    assert len(launched) == 18 and sorted(x for x in launched if x.endswith(" own")) == [
        "iterative-paper-s0 own", "iterative-paper-s1 own", "iterative-paper-s2 own"]
    forked = json.loads((run / "arms" / "static-equivalence-s1" / "manifest.json").read_text())
    assert forked["forked_from"]["run"] == "iterative-paper-s1" and forked["config"]["mode"] == "static"
    result = json.loads((run / "experiment.json").read_text())
    for score in ("paper", "equivalence"):
        primary = result["scores"][score]["primary"]
        assert primary["comparison"] == "iterative - static" and primary["bootstrap"]["low"] > 0.15
        assert primary["t"]["low"] > 0 and primary["verdict"].startswith("supports the claim")
        arms = result["scores"][score]["arms"]
        assert arms["iterative"]["sampled"]["0"] == arms["static"]["sampled"]["0"]  # one shared warm start
        assert arms["iterative"]["greedy"]["2"]["bootstrap"]["estimate"] == 1.0
        secondary = result["scores"][score]["secondary"]
        assert set(secondary) == {"iterative - ce-only", "static - ce-only", "iterative - static (greedy)"}
        assert not secondary["static - ce-only"]["bootstrap"]["low"] > 0
    text = (run / "experiment.md").read_text()
    assert "## Score `paper`" in text and "**Verdict (iterative vs static, score paper):** supports" in text
    assert "| iterative | 2 | 0.600 |" in text and "| static | 2 | 0.500 |" in text   # diagnostics, seed means
    assert (run / "experiment_pass_at_1_paper.png").stat().st_size > 1000
    greedy = json.loads((run / "greedy" / "static-paper-s2" / "iter-02" / "metrics.json").read_text())
    assert greedy["cache"] == str(run / "cache" / "references")   # every job's environment names the cache
    assert not (run / ".incomplete").exists() and "experiment folder" in capsys.readouterr().out
    # rerun of the finished experiment: nothing is launched again
    assert main_experiment(argv) == 0 and len(_launched(run)) == 18


def test_identical_arms_give_an_interval_covering_zero(fake_arms, monkeypatch):
    monkeypatch.setenv("FAKE_EFFECT", "0")
    tmp = fake_arms
    argv = ["--experiment", _experiment_file(tmp, scores=["paper"]), "--run", "z", "--results-dir", str(tmp)]
    assert main_experiment(argv) == 0
    primary = json.loads((tmp / "z" / "experiment.json").read_text())["scores"]["paper"]["primary"]
    assert primary["bootstrap"]["low"] < 0 < primary["bootstrap"]["high"]
    assert not primary["verdict"].startswith(("supports", "contradicts"))


def test_a_changed_plan_is_refused_in_one_line(fake_arms):
    tmp = fake_arms
    base = ["--run", "p", "--results-dir", str(tmp), "--seeds", "0"]
    assert main_experiment(["--experiment", _experiment_file(tmp, scores=["paper"]), *base]) == 0
    changed = _experiment_file(tmp, scores=["paper"], plan={"control": "ce-only"})
    with pytest.raises(UserError, match=r"pre-registered with another plan or config \(changed: plan\)") as err:
        main_experiment(["--experiment", changed, *base])
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"changed: seeds"):
        main_experiment(["--experiment", _experiment_file(tmp, scores=["paper"]), *base[:-1], "0,1"])
    registered = yaml.safe_load((tmp / "p" / "experiment.yaml").read_text())
    assert registered["plan"]["control"] == "static" and registered["seeds"] == [0]
    resolved_file = tmp / "p" / "resolved_train_configs.json"
    resolved = json.loads(resolved_file.read_text())
    assert resolved["ce-only-paper-s0"]["alpha"] == 0.0 and resolved["static-paper-s0"]["mode"] == "static"
    del resolved["static-paper-s0"]["margin"]   # as if the code added the field later, at its default
    resolved_file.write_text(json.dumps(resolved))
    assert main_experiment(["--experiment", _experiment_file(tmp, scores=["paper"]), *base]) == 0
    resolved["static-paper-s0"]["learning_rate"] = 0.5  # the preset or CONFIG file changed since
    resolved_file.write_text(json.dumps(resolved))
    with pytest.raises(UserError, match=r"changed: static-paper-s0.learning_rate"):
        main_experiment(["--experiment", _experiment_file(tmp, scores=["paper"]), *base])


def test_a_failed_arm_stops_with_its_log_and_a_rerun_resumes_only_what_is_unfinished(fake_arms, monkeypatch):
    tmp = fake_arms
    argv = ["--experiment", _experiment_file(tmp, scores=["paper"]), "--run", "r", "--results-dir", str(tmp),
            "--seeds", "0,1", "--jobs", "1"]
    monkeypatch.setenv("FAIL_ARM", "iterative-paper-s1")   # a donor: its seed's other arms cannot start
    with pytest.raises(UserError, match=r"job iterative-paper-s1 failed \(exit 3\).*iterative-paper-s1\.log"):
        main_experiment(argv)
    run = tmp / "r"
    assert (run / ".incomplete").exists() and not (run / "experiment.md").exists()
    assert not (run / "arms" / "static-paper-s1").exists()
    first = _launched(run)
    monkeypatch.delenv("FAIL_ARM")
    assert main_experiment(argv) == 0
    again = _launched(run)[len(first):]
    assert sorted(again) == ["ce-only-paper-s1 forked", "iterative-paper-s1 own", "static-paper-s1 forked"]


def test_a_failed_greedy_evaluation_is_named_and_resumed(fake_arms, monkeypatch):
    tmp = fake_arms
    argv = ["--experiment", _experiment_file(tmp, scores=["paper"]), "--run", "g", "--results-dir", str(tmp),
            "--seeds", "0", "--jobs", "2"]
    monkeypatch.setenv("FAIL_GREEDY", "static-paper-s0")
    with pytest.raises(UserError, match=r"job greedy-static-paper-s0 failed \(exit 4\).*greedy-static-paper-s0\.log"):
        main_experiment(argv)
    assert len(_launched(tmp / "g")) == 3 and not (tmp / "g" / "experiment.md").exists()
    monkeypatch.delenv("FAIL_GREEDY")
    assert main_experiment(argv) == 0 and len(_launched(tmp / "g")) == 3   # only the greedy job ran again
    assert (tmp / "g" / "greedy" / "static-paper-s0" / "iter-02" / "metrics.json").is_file()


def test_arm_command_lines_differ_only_in_the_arm_score_and_seed(tmp_path):
    cfg = load_experiment(None, {"train": {"limit": 50}})
    argvs = [train_argv(cfg, a, tmp_path, 1) for a in arm_runs(cfg)]
    assert len(argvs) == len(cfg.seeds) * len(cfg.scores) * len(cfg.arms) == 18
    varying = ("--run", "--mode", "--alpha", "--score", "--seed")
    strip = [[x for i, x in enumerate(a) if x not in varying and a[i - 1] not in varying] for a in argvs]
    assert all(s == strip[0] for s in strip) and "--limit" in strip[0] and "--data-seed" in strip[0]
    ce_only = next(a for a in argvs if "ce-only-paper-s0" in a)
    assert ce_only[ce_only.index("--alpha") + 1] == "0.0"
    restart = ExperimentConfig(arms={"a": {"restart": True}, "b": {"restart": False}},
                               plan={"treatment": "a", "control": "b"})
    a, b = (train_argv(restart, arm, tmp_path, 1) for arm in arm_runs(restart)[:2])
    assert "--restart" in a and "--restart" not in b


def test_the_wall_time_runs_to_the_last_greedy_evaluation(tmp_path):
    for name, start, end in (("a", "00:00", "00:30"), ("b", "00:10", "00:50")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(
            {"started": f"2026-11-29T{start}:00+0000", "finished": f"2026-11-29T{end}:00+0000"}))
    runs = [tmp_path / "a", tmp_path / "b"]
    assert ablation.wall_minutes(runs) == 50
    later = tmp_path / "metrics.json"
    later.write_text("{}")
    os.utime(later, (1795915200, 1795915200))   # 2026-11-29T01:20:00Z
    assert ablation.wall_minutes(runs, [later, tmp_path / "absent.json"]) == 80


def test_the_progress_total_counts_the_stages_a_run_records():
    """data, base-model, iter-00/train, iter-00/eval, then sample, score, train per iteration and eval at
    the evaluated ones (exp-s24's arms recorded 11 stages each at 2 iterations, eval at 0 and 2)."""
    cfg = load_experiment(None, {})
    arm = arm_runs(cfg)[0]
    assert experiment.run_stages(train_config(cfg, arm)) == 11
    every = load_experiment(None, {"train": {"eval_every": 1}})
    assert experiment.run_stages(train_config(every, arm_runs(every)[0])) == 12


def test_warm_starts_are_shared_only_between_arms_that_differ_in_mode_alpha_or_score():
    cfg = ExperimentConfig(seeds=[0, 1], scores=["paper"],
                           arms={"iterative": {"mode": "iterative"}, "static": {"mode": "static"},
                                 "small-lr": {"mode": "iterative", "warmup_learning_rate": 1e-4}})
    d = donors(cfg, arm_runs(cfg))
    assert d["static-paper-s1"] == "iterative-paper-s1" and d["small-lr-paper-s1"] == "small-lr-paper-s1"
    unshared = ExperimentConfig(seeds=[0], scores=["paper"], arms=cfg.arms, share_warm_start=False)
    assert all(k == v for k, v in donors(unshared, arm_runs(unshared)).items())
    assert shared_stages(load_config("tiny-cpu", None, {"warmup_epochs": 0, "eval_bench": ""})) == ["data", "base-model"]


def test_jobs_launch_every_warm_start_donor_before_the_arms_that_wait_on_them(tmp_path):
    from harness.experiment.arms import build_jobs

    cfg = load_experiment(None, {"train": {"limit": 50}})
    jobs = build_jobs(cfg, tmp_path, 1)
    donor_names = sorted(set(donors(cfg, arm_runs(cfg)).values()))
    assert [j.name for j in jobs[:3]] == ["iterative-paper-s0", "iterative-paper-s1", "iterative-paper-s2"]
    assert sorted(j.name for j in jobs if j.ready is None) == donor_names
    assert all(j.ready is not None for j in jobs[3:]) and len(jobs) == 36
    # the greedy evaluations queue after every training job, each ready once its arm's run is complete
    assert [j.name for j in jobs[18:]] == [f"greedy-{a.name}" for a in arm_runs(cfg)]
    assert [len(j.steps) for j in jobs[18:21]] == [2, 1, 1] and not jobs[18].ready()
    arm = tmp_path / "arms" / jobs[18].name.removeprefix("greedy-")
    arm.mkdir(parents=True)
    assert not jobs[18].ready()                      # the folder of a run just created
    (arm / "manifest.json").write_text(json.dumps({"finished": None}))
    assert not jobs[18].ready()
    (arm / "manifest.json").write_text(json.dumps({"finished": "2026-11-28T00:00:00+0000"}))
    (arm / ".incomplete").touch()
    assert not jobs[18].ready()
    (arm / ".incomplete").unlink()
    assert jobs[18].ready()
    assert {j.env["ITERTL_REFERENCE_CACHE"] for j in jobs} == {str(tmp_path / "cache" / "references")}


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown field 'colour'"),
    ({"plan": {"treatment": "nope"}}, "plan field treatment='nope' is invalid"),
    ({"plan": {"primary": "x"}}, "unknown experiment plan field 'primary'"),
    ({"scores": ["rouge"]}, "experiment field scores"),
    ({"seeds": [1, 1]}, "experiment field seeds"),
    ({"seeds": "0,1"}, "seeds='0,1' has the wrong type: expected list"),
    ({"plan": {"confidence": "high"}}, "plan field confidence='high' has the wrong type"),
    ({"arms": ["iterative", "static"]}, "field arms=.* has the wrong type: expected dict"),
])
def test_bad_experiment_files_are_one_line_errors(tmp_path, change, message):
    data = {**EXPERIMENT, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(UserError, match=message):
        load_experiment(path, {})


def test_an_unknown_train_field_names_the_arm(tmp_path):
    arms = {"a": {"mode": "static"}, "b": {"colour": 2}}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({"arms": arms, "plan": {"treatment": "a", "control": "b"}}))
    with pytest.raises(UserError, match=r"arm b \(score paper, seed 0\): unknown config key 'colour'"):
        main_experiment(["--experiment", str(tmp_path / "x.yaml"), "--results-dir", str(tmp_path)])
    assert not any(p.name.startswith("experiment-") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_a_real_tiny_experiment_runs_end_to_end(tmp_path):
    """Two seeds, one score, three arms, one iteration on a few instructions: real training and eval."""
    data = {**EXPERIMENT, "seeds": [0, 1], "scores": ["paper"],
            "train": {"iters": 1, "limit": 32, "instructions_per_iter": 8, "warmup_epochs": 1, "eval_n": 4,
                      "eval_temperature": 0.8, "eval_limit": 8}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    env_jobs = "2" if (os.cpu_count() or 1) >= 2 else "1"
    assert main_experiment(["--experiment", str(path), "--run", "t", "--results-dir", str(tmp_path),
                            "--jobs", env_jobs]) == 0
    run = tmp_path / "t"
    result = json.loads((run / "experiment.json").read_text())["scores"]["paper"]
    assert result["primary"]["problems"] == [8, 8] and result["primary"]["comparison"] == "iterative - static"
    static = json.loads((run / "arms" / "static-paper-s1" / "manifest.json").read_text())
    assert static["forked_from"]["run"] == "iterative-paper-s1"
    cfg = load_experiment(str(path), {})
    for arm in arm_runs(cfg):   # the progress bar's total is what the runs record
        assert ablation.stages_done(run / "arms" / arm.name) == experiment.run_stages(train_config(cfg, arm))
    assert (run / "greedy" / "iterative-paper-s0" / "iter-00" / "problems.csv").is_file()
    assert (run / "greedy" / "static-paper-s0" / "iter-01" / "problems.csv").is_file()


@pytest.mark.parametrize("low, high, per_seed, start", [
    (0.01, 0.09, [0.05, 0.04, 0.06], "supports the claim"),
    (-0.09, -0.01, [-0.05, -0.04, -0.06], "contradicts the claim"),
    (-0.03, 0.04, [0.0, 0.01, -0.01], "no effect detected, and an effect of the paper's size"),
    (-0.02, 0.08, [0.0, 0.1, -0.05], "cannot tell"),
])
def test_the_verdict_follows_the_pre_registered_rule(low, high, per_seed, start):
    from harness.experiment.analysis import verdict

    plan = ExperimentConfig(arms=EXPERIMENT["arms"]).plan
    text = verdict({"bootstrap": {"low": low, "high": high}, "per_seed": per_seed}, plan)
    assert text.startswith(start)
    if start == "cannot tell":   # sd 0.0764: t-interval half-width 0.025 needs 39 seeds
        assert "about 39 seeds" in text


def test_eval_every_leaves_out_the_iterations_between(fake_arms):
    """eval_every 2 over 3 iterations: the analysis reads iterations 0, 2 and 3 only."""
    from harness.config import TrainConfig

    assert TrainConfig(iters=3, eval_every=2).evaluated_iterations() == [0, 2, 3]
    assert TrainConfig(iters=2, eval_every=5).evaluated_iterations() == [0, 2]
    tmp = fake_arms
    argv = ["--experiment", _experiment_file(tmp, train={"iters": 3, "eval_every": 2}), "--run", "e2",
            "--results-dir", str(tmp), "--jobs", "2"]
    assert main_experiment(argv) == 0
    result = json.loads((tmp / "e2" / "experiment.json").read_text())
    assert set(result["scores"]["paper"]["arms"]["iterative"]["sampled"]) == {"0", "2", "3"}
    assert result["scores"]["paper"]["primary"]["iteration"] == 3
