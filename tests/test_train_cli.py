"""The train command's run handling and config merging (no training here: see test_resume.py)."""
from __future__ import annotations

import json

import pytest

from harness.loop import loop
from harness.runs.folder import RunFolder
from harness.commands.train import open_run, parse_args
from harness.config import TrainConfig, load_config
from verilog_tools.errors import UserError


def _args(tmp_path, *extra):
    return parse_args(["--results-dir", str(tmp_path), "--run", "r", *extra])


def test_folder_left_before_its_manifest_is_taken_over(tmp_path):
    RunFolder.create(tmp_path, "r", "train").release()  # as if killed right after creating it
    cfg, args = _args(tmp_path)
    run = open_run(cfg, args)
    assert json.loads((run.path / "manifest.json").read_text())["config"]["iters"] == cfg.iters
    run.release()


def test_resume_refuses_a_changed_config_but_allows_more_iterations(tmp_path):
    cfg, args = _args(tmp_path, "--iters", "2")
    open_run(cfg, args).release()
    cfg3, args3 = _args(tmp_path, "--iters", "3")
    open_run(cfg3, args3).release()
    cfg_k, args_k = _args(tmp_path, "--iters", "3", "--k", "5")
    with pytest.raises(UserError, match=r"another config \(k: 4 -> 5\)"):
        open_run(cfg_k, args_k)
    cfg1, args1 = _args(tmp_path, "--iters", "1")
    with pytest.raises(UserError, match="ITERS can only grow"):
        open_run(cfg1, args1)


def test_a_run_from_before_a_new_config_field_still_resumes(tmp_path):
    cfg, args = _args(tmp_path, "--iters", "2")
    run = open_run(cfg, args)
    manifest = json.loads((run.path / "manifest.json").read_text())
    del manifest["config"]["margin"]          # as written by a version without that field
    run.write_json("manifest.json", manifest)
    run.release()
    open_run(*_args(tmp_path, "--iters", "2")).release()
    with pytest.raises(UserError, match=r"another config \(margin: None -> 0.5\)"):
        open_run(*_args(tmp_path, "--iters", "2", "--margin", "0.5"))


def test_a_run_from_before_a_field_compares_with_what_the_code_did_then(tmp_path):
    # warmup_limit's default is now 1,200; a run made before the field existed trained on every instruction
    run = open_run(*_args(tmp_path, "--iters", "2", "--warmup-limit", "0"))
    manifest = json.loads((run.path / "manifest.json").read_text())
    del manifest["config"]["warmup_limit"]
    run.write_json("manifest.json", manifest)
    run.release()
    with pytest.raises(UserError, match=r"warmup_limit: None -> 1200"):
        open_run(*_args(tmp_path, "--iters", "2"))
    open_run(*_args(tmp_path, "--iters", "2", "--warmup-limit", "0")).release()


def test_the_cpu_default_is_the_dataclass_defaults():
    # a default no preset uses would be a value no run has (issue 16: "defaults made honest")
    import yaml

    from harness.config import PRESET_DIR

    assert TrainConfig() == load_config("tiny-cpu") == load_config()
    assert not yaml.safe_load((PRESET_DIR / "tiny-cpu.yaml").read_text())  # overrides nothing


def test_paper_preset_needs_a_gpu_but_dry_run_prints_the_plan(capsys):
    from harness.commands.train import check_device, main_train
    cfg = load_config("paper")
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        check_device(cfg)
    assert main_train(["--preset", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "deepseek-ai/deepseek-coder-6.7b-instruct" in out and "sampled candidates: 81000" in out


def test_static_mode_samples_from_iteration_zero_and_restart_trains_from_it():
    it, st = TrainConfig(mode="iterative"), TrainConfig(mode="static", restart=True, optimizer_schedule="reset")
    assert [loop.sampling_source(it, i) for i in (1, 2, 3)] == [0, 1, 2]
    assert [loop.sampling_source(st, i) for i in (1, 2, 3)] == [0, 0, 0]
    assert [loop.training_source(st, i) for i in (1, 2, 3)] == [0, 0, 0]
    assert [loop.training_source(it, i) for i in (1, 2, 3)] == [0, 1, 2]


def test_iteration_subsets_are_seeded_and_differ_between_iterations():
    from tasks.records import TrainingRecord
    recs = [TrainingRecord(id=f"r{i:03d}", instruction="x", header="", reference="", source="t")
            for i in range(50)]
    cfg = TrainConfig(instructions_per_iter=10)
    a1, a2 = loop.iteration_subset(recs, cfg, 1), loop.iteration_subset(recs, cfg, 2)
    assert len(a1) == 10 and a1 == loop.iteration_subset(recs, cfg, 1) and a1 != a2


@pytest.mark.parametrize("flags,message", [
    (["--optimizer-schedule", "sometimes"], "optimizer_schedule='sometimes' is invalid"),
    (["--warmup-limit", "-3"], "warmup_limit=-3 is invalid"),
    (["--data-seed", "x"], "argument --data-seed: expected a whole number, got 'x'"),
    (["--lr-warmup-ratio", "1"], "lr_warmup_ratio=1.0 is invalid"),
    (["--optimizer-schedule", "continued", "--restart"], "optimizer_schedule=continued carries one optimiser"),
])
def test_bad_loop_options_stop_before_any_work_with_one_line(tmp_path, capsys, flags, message):
    from harness.cli import main
    assert main(["train", "--results-dir", str(tmp_path), "--run", "r", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_manifest_records_both_seeds(tmp_path):
    cfg, args = _args(tmp_path, "--seed", "3", "--data-seed", "7")
    run = open_run(cfg, args)
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["seeds"] == {"seed": 3, "data_seed": 7}
    assert manifest["config"]["data_seed"] == 7 and manifest["config"]["optimizer_schedule"] == cfg.optimizer_schedule
    run.release()


def test_a_run_from_before_data_seed_resumes_with_its_seed_as_data_seed(tmp_path):
    run = open_run(*_args(tmp_path, "--iters", "2", "--seed", "3", "--data-seed", "3"))
    manifest = json.loads((run.path / "manifest.json").read_text())
    del manifest["config"]["data_seed"]       # as written before data_seed existed: seed made the data
    run.write_json("manifest.json", manifest)
    run.release()
    with pytest.raises(UserError, match=r"data_seed: None -> 0"):
        open_run(*_args(tmp_path, "--iters", "2", "--seed", "3"))
    open_run(*_args(tmp_path, "--iters", "2", "--seed", "3", "--data-seed", "3")).release()


def test_every_make_train_variable_is_a_train_flag(tmp_path):
    # the Makefile's TRAIN_FLAGS lines render `--name VALUE`; each name must parse into the config
    import re
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    block = re.search(r"^TRAIN_FLAGS = .*?(?=^\S)", makefile, re.M | re.S).group(0)
    block += "".join(re.findall(r"^TRAIN_FLAGS \+= .*?(?=^\S|\Z)", makefile, re.M | re.S))
    flags = sorted(set(re.findall(r"\$\(call flag,(--[a-z-]+),", block)))
    assert {"--data-seed", "--warmup-limit", "--eval-every", "--eval-sim-seconds", "--optimizer-schedule"} <= set(flags)
    values = {"--data-seed": "3", "--warmup-limit": "10", "--warmup-epochs": "1", "--instructions-per-iter": "8",
              "--optimizer-schedule": "reset", "--alpha": "0.5", "--eval-n": "2", "--eval-temperature": "0.5",
              "--eval-every": "2", "--eval-sim-seconds": "7"}
    for flag, value in values.items():
        assert flag in flags
        cfg, _ = _args(tmp_path, flag, value)
        field = flag[2:].replace("-", "_")
        got = getattr(cfg, field)
        assert got == type(got)(value), (flag, got)
