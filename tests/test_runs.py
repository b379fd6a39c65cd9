"""Run folders: refuse to overwrite, atomic writes, stage tracking, locks, markers, manifest."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from harness.runs import folder as runs
from harness.runs.folder import RunFolder, atomic_write_json, git_info, write_manifest
from verilog_tools.errors import UserError


def test_create_refuses_existing_name(tmp_path):
    run = RunFolder.create(tmp_path, "exp1", "eval")
    assert (run.path / ".incomplete").exists() and (run.path / ".lock").exists()
    with pytest.raises(UserError, match="exp1 already exists") as err:
        RunFolder.create(tmp_path, "exp1", "eval")
    assert "\n" not in str(err.value)


def test_timestamped_names_do_not_collide(tmp_path):
    a = RunFolder.create(tmp_path, None, "eval")
    b = RunFolder.create(tmp_path, None, "eval")
    assert a.path != b.path and a.path.name.startswith("eval-") and b.path.name.startswith("eval-")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"v": 1})

    def crash(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp file left behind


def test_stages_and_markers(tmp_path):
    run = RunFolder.create(tmp_path, "r", "train")
    assert not run.stage_done("sample") and not run.complete
    with pytest.raises(RuntimeError, match="not written yet"):
        run.mark_done("sample", ["candidates.jsonl"])
    run.write_text("candidates.jsonl", '{"id": 1}\n')
    run.mark_done("sample", ["candidates.jsonl"])
    assert run.stage_done("sample")
    run.release()
    again = RunFolder.open(run.path)  # resume
    assert again.stage_done("sample") and not again.complete
    again.finish()
    assert again.complete and not (run.path / ".lock").exists()


def test_lock_held_by_live_process(tmp_path):
    run = RunFolder.create(tmp_path, "r", "eval")
    with pytest.raises(UserError, match="in use by running process"):
        RunFolder.open(run.path)
    run.release()
    RunFolder.open(run.path).release()


def test_stale_lock_is_taken_over(tmp_path):
    run = RunFolder.create(tmp_path, "r", "eval")
    run.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run.path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    reopened = RunFolder.open(run.path)
    assert json.loads((run.path / ".lock").read_text())["pid"] == os.getpid()
    reopened.release()


def test_lock_from_other_host_is_not_guessed(tmp_path):
    run = RunFolder.create(tmp_path, "r", "eval")
    run.release()
    (run.path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(UserError, match="locked by pid 1 on host elsewhere.example"):
        RunFolder.open(run.path)


def test_abandon_removes_only_bookkeeping(tmp_path):
    empty = RunFolder.create(tmp_path, "empty", "eval")
    write_manifest(empty, {"a": 1})
    assert empty.abandon() and not empty.path.exists()
    used = RunFolder.create(tmp_path, "used", "eval")
    used.write_text("samples.jsonl", "")
    used.mark_done("samples", ["samples.jsonl"])
    assert not used.abandon()
    assert (used.path / ".incomplete").exists() and not (used.path / ".lock").exists()


def test_manifest_contents(tmp_path):
    run = RunFolder.create(tmp_path, "r", "eval")
    write_manifest(run, {"bench": "x"}, data_hashes={"x": "sha256:0"}, seeds={"sample": 1}, argv=["eval"])
    run.finish()
    m = json.loads((run.path / "manifest.json").read_text())
    assert m["config"] == {"bench": "x"} and m["argv"] == ["eval"] and m["seeds"] == {"sample": 1}
    assert set(m["packages"]) == set(runs.ML_PACKAGES)
    assert m["packages"]["torch"] is not None  # the venv has torch; read from metadata
    assert "iverilog" in m["tools"]
    assert m["started"] and m["finished"]
    assert m["git"] is None or set(m["git"]) - {"source"} == {"commit", "dirty"}
    assert m["containment"] in ("bwrap", "none")


def test_git_info_outside_a_repo(tmp_path, monkeypatch):
    monkeypatch.delenv("ITERTL_GIT_COMMIT", raising=False)
    assert git_info(tmp_path) is None
    # the Docker image has no .git: the commit it was built from is baked into its environment
    monkeypatch.setenv("ITERTL_GIT_COMMIT", "abc123")
    assert git_info(tmp_path) == {"commit": "abc123", "dirty": None, "source": "ITERTL_GIT_COMMIT"}
    monkeypatch.setenv("ITERTL_GIT_COMMIT", "unknown")
    assert git_info(tmp_path) is None
