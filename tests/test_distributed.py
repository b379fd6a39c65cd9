"""GPUS=N: the accelerate command, its config files, the driver around the launched train stage, and the
config rules (DeepSpeed without quantisation, the same optimiser batch on any GPU count).

The launched processes are replaced by `python -m harness.loop.train_worker` (one process, fast) in the
default tests; a slow test runs the exact `accelerate launch` command with two CPU processes (DDP over
gloo), and a GPU test runs it on two GPUs where there are two.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.loop import dispatch, launch
from harness.config import TrainConfig, load_config
from verilog_tools.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=256)


def test_ddp_command_is_accelerate_launch_of_the_worker(tmp_path):
    cfg = TrainConfig(gpus=2)
    job = tmp_path / "train_job.json"
    assert launch.accelerate_command(cfg, job) == [
        launch.accelerate_executable(), "launch", "--config_file", str(REPO / "harness/loop/accelerate/ddp.yaml"),
        "--num_processes", "2", "-m", "harness.loop.train_worker", str(job)]


def test_deepspeed_command_names_the_zero3_config_and_its_json(tmp_path):
    cfg = TrainConfig(gpus=4, distributed="deepspeed", split_gradients=False, optimizer_schedule="reset")
    job = tmp_path / "train_job.json"
    assert launch.accelerate_command(cfg, job) == [
        launch.accelerate_executable(), "launch",
        "--config_file", str(REPO / "harness/loop/accelerate/deepspeed_zero3.yaml"),
        "--deepspeed_config_file", str(REPO / "harness/loop/accelerate/ds_zero3.json"),
        "--num_processes", "4", "-m", "harness.loop.train_worker", str(job)]


@pytest.mark.parametrize("distributed_type", ["ddp", "deepspeed"])
def test_accelerate_parses_the_command_and_its_config(tmp_path, distributed_type):
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    cfg = TrainConfig(gpus=2, distributed=distributed_type, split_gradients=False, optimizer_schedule="reset")
    argv = launch.accelerate_command(cfg, tmp_path / "job.json")
    args = launch_command_parser().parse_args(argv[2:])
    assert args.num_processes == 2 and args.module and args.training_script == "harness.loop.train_worker"
    config = load_config_from_file(args.config_file)
    assert config.num_machines == 1
    if distributed_type == "ddp":
        assert config.distributed_type == "MULTI_GPU"
        assert config.mixed_precision == "no"  # the train stage picks the precision, as in one process
    else:
        assert config.distributed_type == "DEEPSPEED"
        assert config.mixed_precision is None  # accelerate refuses one beside a DeepSpeed config file
        assert (REPO / config.deepspeed_config["deepspeed_config_file"]) == launch.DEEPSPEED_JSON
        assert args.deepspeed_config_file == str(launch.DEEPSPEED_JSON)
        ds = json.loads(launch.DEEPSPEED_JSON.read_text())
        assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] == "auto"
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_deepspeed_is_refused_with_quantisation_and_with_split_gradients():
    with pytest.raises(UserError, match="deepspeed is for fine-tuning without quantisation, not quant=4bit"):
        load_config("paper", overrides={"distributed": "deepspeed"})
    with pytest.raises(UserError, match="needs split_gradients=false"):
        TrainConfig(distributed="deepspeed", split_gradients=True)
    with pytest.raises(UserError, match=r"distributed='fsdp' is invalid: must be one of \('ddp', 'deepspeed'\)"):
        TrainConfig(distributed="fsdp")


def test_the_optimiser_batch_is_the_same_on_any_gpu_count():
    paper = load_config("paper")  # 1 group x 8 accumulation steps
    assert [paper.process_batch(n) for n in (1, 2, 4, 8)] == [(1, 8), (1, 4), (1, 2), (1, 1)]
    tiny = load_config("tiny-cpu")  # 8 groups x 1 step: the micro-batch is split instead
    assert [tiny.process_batch(n) for n in (1, 2, 4)] == [(8, 1), (4, 1), (2, 1)]
    with pytest.raises(UserError, match="gpus=3 must divide gradient_accumulation_steps=8 or groups_per_batch=1"):
        load_config("paper", overrides={"gpus": 3})


def test_more_gpus_than_visible_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(launch, "cuda_device_count", lambda: 1)
    launch.check_gpus(TrainConfig(gpus=1))
    with pytest.raises(UserError, match=r"^GPUS=2 but 1 CUDA device\(s\) are visible here: set GPUS=1") as err:
        launch.check_gpus(TrainConfig(gpus=2))
    assert "\n" not in str(err.value)


def test_dry_run_prints_the_exact_command(tmp_path, capsys):
    from harness.commands.train import main_train

    assert main_train(["--gpus", "2", "--dry-run", "--run", "r", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    job = (tmp_path / "r").resolve() / "iter-01" / "train.out.tmp" / "train_job.json"
    assert "  " + shlex.join(launch.accelerate_command(TrainConfig(gpus=2), job)) in out.splitlines()
    assert not (tmp_path / "r").exists()


def test_make_passes_the_scaling_variables():
    out = subprocess.run(["make", "-s", "-n", "train", "GPUS=2", "DRY_RUN=1", "SAMPLER=vllm", "GPU_TYPE=a100",
                          "DISTRIBUTED=ddp", "MEASURED_FROM=results/x", "PYTHON=python3", "INSTALLED="],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if " -m harness train" in ln)
    for flag in ("--gpus 2", "--sampler vllm", "--gpu-type a100", "--distributed ddp",
                 "--measured-from results/x", "--dry-run"):
        assert flag in line, line


# ---- the driver around the launched train stage (tiny model, CPU) --------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from harness.model.tiny_model import build_tiny_model

    corpus = [f"module m{i}(input a, output y); assign y = a ^ {i % 2}; endmodule" for i in range(40)]
    return str(build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", corpus, seed=0, **TINY))


def groups() -> list[dict]:
    """Four scored instructions, each with three candidates and its reference."""
    rows = []
    for i in range(4):
        ref = f"module m{i}(input a, output y); assign y = a; endmodule"
        cands = [(ref.replace("= a", "= ~a"), 0.6), ("module m; endmodule", 0.0), ("wire w;", -1.0)]
        rows.append({"id": f"g{i}", "instruction": f"Write module m{i}.", "header": "",
                     "candidates": [{"text": t, "source": "model", "score": s} for t, s in cands]
                     + [{"text": ref, "source": "reference", "score": 1.0}]})
    return rows


def tiny_config(**overrides) -> TrainConfig:
    base = dict(model="tiny", groups_per_batch=2, split_gradients=False, torch_threads=1, learning_rate=1e-2)
    return TrainConfig(**{**base, **overrides})


def worker_instead_of_accelerate(argv: list[str], log: Path) -> int:
    """Run the job the way one launched process would, without accelerate."""
    with open(log, "wb") as fh:
        return subprocess.run([sys.executable, "-m", "harness.loop.train_worker", argv[-1]], cwd=REPO,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=300).returncode


def uneven_groups() -> list[dict]:
    """Two instructions: one with nothing to rank (its samples are unscorable), one with three ranked
    candidates. On two processes, one needs one backward pass per micro-batch, the other up to four."""
    rows = groups()[:2]
    for cand in rows[0]["candidates"][:-1]:
        cand["score"] = None
    return rows


def train(cfg: TrainConfig, base: str, out: Path, rows: list[dict] | None = None) -> dict:
    out.mkdir(parents=True)
    return dispatch.train(cfg, base, None, rows or groups(), epochs=1.0, learning_rate=cfg.learning_rate,
                          seed=0, out=out, log=out.parent / "train.log")


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.usefixtures("torch_one_thread")
def test_launched_stage_writes_what_the_in_process_stage_writes(tiny, tmp_path, monkeypatch):
    import torch

    local = train(tiny_config(), tiny, tmp_path / "local" / "out")
    monkeypatch.setattr(launch, "_run", worker_instead_of_accelerate)
    launched = train(tiny_config(gpus=2), tiny, tmp_path / "launched" / "out")
    a, b = tmp_path / "local" / "out", tmp_path / "launched" / "out"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and {"model", "train_log.json"} <= set(names)
    assert sorted(p.name for p in (a / "model").iterdir()) == sorted(p.name for p in (b / "model").iterdir())
    wa, wb = weights(a / "model"), weights(b / "model")
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert launched["steps"] == local["steps"] and launched["train_loss"] == pytest.approx(local["train_loss"])
    assert json.loads((b / "train_log.json").read_text())["tokens"] == local["tokens"] > 0


def test_a_failed_launch_is_a_user_error_naming_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "_run", lambda argv, log: 3)
    with pytest.raises(UserError, match=r"failed \(exit status 3\): see .*train\.log") as err:
        train(tiny_config(gpus=2), "unused-base", tmp_path / "out")
    assert str(tmp_path / "train.log") in str(err.value)


def test_run_copies_the_output_to_the_log_and_returns_the_status(tmp_path, capsys):
    log = tmp_path / "x.log"
    code = launch._run([sys.executable, "-c", "import sys; print('héllo'); sys.exit(4)"], log)
    assert code == 4 and log.read_text(encoding="utf-8").strip() == "héllo"
    assert "héllo" in capsys.readouterr().out


def launched_weights(tiny: str, out: Path, **overrides) -> dict:
    """Train with the real `accelerate launch` command on two CPU processes (DDP over gloo)."""
    cfg = tiny_config(gpus=2, **overrides)
    info = train(cfg, tiny, out, uneven_groups())
    assert info["processes"] == 2
    return weights(out / "model")


@pytest.mark.slow
@pytest.mark.timeout(600)  # a deadlock (one all-reduce per backward pass) must fail, not hang
def test_two_processes_with_split_gradients_train_like_joint_gradients(tiny, tmp_path):
    # Under DDP the two processes need different numbers of backward passes per micro-batch in split
    # mode; only the last may all-reduce (no_sync before it), otherwise they deadlock (seen without it).
    import torch

    split = launched_weights(tiny, tmp_path / "split" / "out", split_gradients=True)
    joint = launched_weights(tiny, tmp_path / "joint" / "out", split_gradients=False)
    assert all(torch.allclose(split[k], joint[k], atol=1e-5) for k in split)


@pytest.mark.gpu
def test_two_gpus_train_the_tiny_model(tiny, tmp_path):
    import torch
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    cfg = tiny_config(gpus=2, split_gradients=True)
    launch.check_gpus(cfg)
    info = train(cfg, tiny, tmp_path / "out")
    assert info["processes"] == 2 and (tmp_path / "out" / "model" / "model.safetensors").is_file()
