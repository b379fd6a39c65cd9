"""One run-folder lifecycle (harness.runs.folder.run_folder) and one error type for bad config values."""
from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.runs.folder import RunFolder, run_folder, write_manifest
from verilog_tools.errors import UserError


def _files(path) -> set[str]:
    return {p.name for p in path.iterdir()}


def test_success_marks_the_run_complete_and_unlocks_it(tmp_path):
    with run_folder(tmp_path, "r", "eval", manifest=lambda run: write_manifest(run, {"a": 1})) as run:
        run.write_text("out.txt", "x")
        run.mark_done("s", ["out.txt"])
        assert not run.complete and (run.path / ".lock").exists()
    assert run.complete and not (run.path / ".lock").exists()
    assert json.loads((run.path / "manifest.json").read_text())["finished"] is not None


@pytest.mark.parametrize("error", [UserError("bad value"), KeyboardInterrupt(), RuntimeError("a bug")])
def test_any_error_abandons_the_same_way(tmp_path, error):
    """Nothing written but bookkeeping: the folder goes. Output written: kept, unlocked, incomplete."""
    with pytest.raises(type(error)):
        with run_folder(tmp_path, "empty", "data"):
            raise error
    assert not (tmp_path / "empty").exists()
    with pytest.raises(type(error)):
        with run_folder(tmp_path, "used", "data") as run:
            run.write_text("partial.jsonl", "")
            raise error
    assert _files(run.path) == {"state.json", ".incomplete", "partial.jsonl"}


def test_an_interrupted_resumable_run_says_how_to_resume(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        with run_folder(tmp_path, "r", "train", {"a": 1}) as run:
            run.write_text("out.txt", "x")
            raise KeyboardInterrupt
    assert "resume it with --run r (RUN=r)" in capsys.readouterr().err


def test_an_incomplete_run_resumes_with_its_finished_stages(tmp_path):
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path, "r", "eval", {"a": 1}, manifest=lambda run: write_manifest(run, {"a": 1})) as run:
            run.write_text("samples.jsonl", "")
            run.mark_done("samples", ["samples.jsonl"])
            raise RuntimeError("killed in the next stage")
    with pytest.raises(UserError, match=r"another config \(a: 1 -> 2\)"):
        with run_folder(tmp_path, "r", "eval", {"a": 2}):
            pass
    with run_folder(tmp_path, "r", "eval", {"a": 1}, reopen_finished=False) as again:
        assert again.stage_done("samples") and not again.complete
    assert again.complete
    with pytest.raises(UserError, match="already exists and is finished"):
        with run_folder(tmp_path, "r", "eval", {"a": 1}, reopen_finished=False):
            pass


def test_a_folder_killed_before_its_manifest_is_taken_over_and_gets_one(tmp_path):
    RunFolder.create(tmp_path, "r", "train").release()   # as if killed right after creating it
    with run_folder(tmp_path, "r", "train", {"a": 1}, manifest=lambda run: write_manifest(run, {"a": 1})) as run:
        assert json.loads((run.path / "manifest.json").read_text())["config"] == {"a": 1}


def test_a_command_without_resume_refuses_an_existing_run(tmp_path):
    with run_folder(tmp_path, "r", "merge"):
        pass
    with pytest.raises(UserError, match="already exists"):
        with run_folder(tmp_path, "r", "merge"):
            pass


def test_a_failing_manifest_abandons_the_new_folder(tmp_path):
    def broken(run):
        raise OSError("disk full")
    with pytest.raises(OSError):
        with run_folder(tmp_path, "r", "train", {"a": 1}, manifest=broken):
            pass
    assert not (tmp_path / "r").exists()


def test_unlocked_hands_the_lock_to_another_opener_and_takes_it_back(tmp_path):
    with run_folder(tmp_path, "r", "gpu-check") as run:
        with run.unlocked():
            RunFolder.open(run.path).release()   # the child's turn
        with pytest.raises(UserError, match="in use by running process"):
            RunFolder.open(run.path)
    assert run.complete


BAD_VALUES = [
    (["train", "--lora", "1", "--lora-dropout", "1.5"], "config field lora_dropout"),
    (["train", "--lora-r", "0"], "config field lora_r"),
    # the model's own configs refuse these; the error names the train field a user sets
    (["train", "--tiny-hidden-size", "100"], "config field tiny_hidden_size must be a multiple of 32"),
    (["train", "--tiny-heads", "5"], "tiny_hidden_size (192) must be a multiple of tiny_heads (5)"),
    # a value of the wrong type is refused by the flags themselves, naming the flag
    (["train", "--iters", "x"], "argument --iters: expected a whole number, got 'x'"),
    (["train", "--lora", "maybe"], "argument --lora: expected 1/0"),
    (["eval", "--model", "reference", "--n", "z"], "argument --n: expected a whole number"),
    (["data", "--filter", "maybe"], "argument --filter: expected 1/0"),
    (["experiment", "--seeds", "0,x"], "argument --seeds: expected a whole number, got 'x'"),
    (["ablation", "--iters", "two"], "argument --iters"),
    (["merge", "a", "--nope"], "unrecognized arguments: --nope"),
    (["merge"], "the following arguments are required: runs"),
    (["train", "--sample-batch-size", "0"], "sample_batch_size=0"),
    (["train", "--forward-chunk-size", "0"], "forward_chunk_size=0"),
    (["train", "--limit", "-1"], "limit=-1"),
    (["eval", "--model", "reference", "--fail-under", "2"], "fail_under"),
    (["eval", "--model", "reference", "--k", "0"], "k:"),
    (["eval", "--model", "reference", "--shard", "3/2"], "shard"),
    (["data", "--valid-fraction", "0.9"], "valid_fraction"),
    (["data", "--workers", "0"], "workers"),
    (["ablation", "--jobs", "-1"], "jobs=-1"),
    (["experiment", "--jobs", "-1"], "--jobs=-1"),
    (["serve", "--model", "x", "--port", "70000"], "port"),
]


@pytest.mark.parametrize("argv,field", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_exit_2_and_no_run_folder(tmp_path, capsys, argv, field):
    results = tmp_path / "results"
    extra = [] if argv[0] == "serve" else ["--results-dir", str(results)]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and field in err and "\n" not in err, err
    assert not results.exists() or not any(results.iterdir())
