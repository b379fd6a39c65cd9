"""`make gpu-check`: the one-line refusal without CUDA, the stage recorder, and (slow) the whole check on
the CPU with GPU_CHECK_ALLOW_CPU=1."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from harness.commands import gpu_check  # noqa: E402


def test_without_cuda_it_stops_in_one_line_naming_what_it_needs(monkeypatch, capsys, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.delenv(gpu_check.ALLOW_CPU_ENV, raising=False)
    assert gpu_check.main(["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA GPU" in err and "bitsandbytes" in err
    assert gpu_check.ALLOW_CPU_ENV in err and not any(tmp_path.iterdir())


def test_recorder_passes_fails_skips_and_saves(tmp_path):
    rec = gpu_check.Recorder(tmp_path / "stages.json")
    with rec.stage("a", "works") as d:
        d["x"] = 1
    with rec.stage("b", "breaks"):
        raise RuntimeError("boom\nsecond line")
    with rec.stage("c", "needs b", ("b",)) as d:
        assert d is None
    with rec.stage("d", "cannot run here"):
        raise gpu_check.Skip("no vllm")
    saved = json.loads((tmp_path / "stages.json").read_text())
    assert [(s["stage"], s["status"]) for s in saved] == [("a", "pass"), ("b", "fail"), ("c", "skip"), ("d", "skip")]
    assert saved[0]["details"] == {"x": 1} and saved[1]["note"] == "RuntimeError: boom"
    assert saved[2]["note"] == "needs b to pass first" and saved[3]["note"] == "no vllm"
    table = gpu_check.format_table(saved)
    assert "| b | FAIL |" in table and "RuntimeError: boom" in table


def test_configs_are_valid_and_the_cpu_one_is_smaller():
    gpu, cpu = gpu_check.config_for("cuda"), gpu_check.config_for("cpu")
    assert gpu.quant == cpu.quant == "4bit" and gpu.lora and gpu.split_gradients and gpu.gradient_checkpointing
    assert cpu.limit < gpu.limit and cpu.tiny_hidden_size < gpu.tiny_hidden_size


@pytest.mark.slow
def test_the_whole_check_runs_on_the_cpu(monkeypatch, tmp_path, capsys):
    """About 3.5 minutes on 2 shared cores: every stage but vLLM (skipped: no GPU) passes."""
    monkeypatch.setenv(gpu_check.ALLOW_CPU_ENV, "1")
    assert gpu_check.main(["--results-dir", str(tmp_path), "--run", "check"]) == 0
    report = json.loads((tmp_path / "check" / "report.json").read_text())
    status = {s["stage"]: s["status"] for s in report["stages"]}
    assert status.pop("sample_vllm") == "skip" and set(status.values()) == {"pass"}
    assert list(status) == ["build", "cuda_bnb_4bit", "warm_start", "sample_hf", "score", "train_killed",
                            "train_resumed", "two_pass_vs_joint", "eval"]
    resumed = next(s for s in report["stages"] if s["stage"] == "train_resumed")["details"]
    assert resumed["dropout_disabled"] > 0 and resumed["length_drops"]["groups_kept"] > 0
    assert "| train_killed | PASS |" in capsys.readouterr().out
