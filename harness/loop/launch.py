"""The train stage on several GPUs: `accelerate launch` of harness.loop.train_worker.

The loop stays one driver process; `harness.loop.dispatch.train` sends a stage with ``gpus=N > 1``
here. `launch` writes the stage's inputs (the scored groups and the TrainConfig, as JSON) into the
stage's scratch folder, runs

    accelerate launch --config_file harness/loop/accelerate/ddp.yaml --num_processes N \
        -m harness.loop.train_worker <scratch>/train_job.json

(DeepSpeed: deepspeed_zero3.yaml and --deepspeed_config_file ds_zero3.json), copies its output to the
terminal and to a log file, and waits. The N processes train together and their main process writes
model/ and train_log.json into the scratch folder, exactly as the in-process stage does
(`save_from_processes`); the loop then publishes the folder atomically. A non-zero exit is a UserError
naming the log.

The optimiser batch is the same on any number of GPUs (TrainConfig.process_batch). Sampling and
evaluation stay in the driver, on one GPU (vLLM: tensor_parallel_size GPUs).

deepspeed is imported inside `check_gpus`: an optional extra, only asked whether it is there.
"""
from __future__ import annotations

import codecs
import json
import shlex
import subprocess
import sys
from pathlib import Path

from harness.config import TrainConfig
from harness.model.gpu import cuda_device_count, release_cuda_cache
from harness.runs.folder import atomic_write_jsonl
from verilog_tools.errors import UserError

CONFIG_DIR = Path(__file__).with_name("accelerate")
DDP_YAML = CONFIG_DIR / "ddp.yaml"
DEEPSPEED_YAML = CONFIG_DIR / "deepspeed_zero3.yaml"
DEEPSPEED_JSON = CONFIG_DIR / "ds_zero3.json"
WORKER_MODULE = "harness.loop.train_worker"
JOB_FILE, GROUPS_FILE = "train_job.json", "train_groups.jsonl"


def accelerate_executable() -> str:
    """The `accelerate` next to this Python (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("accelerate")
    return str(beside) if beside.is_file() else "accelerate"


def accelerate_command(cfg: TrainConfig, job: Path) -> list[str]:
    """The argv that trains ``job`` on cfg.gpus processes (used to run it and to print it)."""
    if cfg.distributed == "deepspeed":
        config = ["--config_file", str(DEEPSPEED_YAML), "--deepspeed_config_file", str(DEEPSPEED_JSON)]
    else:
        config = ["--config_file", str(DDP_YAML)]
    return [accelerate_executable(), "launch", *config, "--num_processes", str(cfg.gpus),
            "-m", WORKER_MODULE, str(job)]


def check_gpus(cfg: TrainConfig) -> None:
    """UserError (one line) unless gpus > 1 can run here: enough CUDA devices, accelerate, DeepSpeed."""
    if cfg.gpus <= 1:
        return
    visible = cuda_device_count()
    if visible < cfg.gpus:
        raise UserError(f"GPUS={cfg.gpus} but {visible} CUDA device(s) are visible here: "
                        f"set GPUS={max(visible, 1)}, or run on a machine with {cfg.gpus} GPUs")
    if cfg.distributed == "deepspeed":
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise UserError("distributed=deepspeed needs DeepSpeed: pip install -e '.[deepspeed]' on the GPU "
                            "machine, or use distributed=ddp") from None


def launch(cfg: TrainConfig, base: str, weights: str | None, groups: list[dict], *, epochs: float,
           learning_rate: float, seed: int, out: Path, log: Path, schedule=None) -> dict:
    """The train stage into ``out`` on cfg.gpus processes under `accelerate launch`; its train_log.json."""
    job = write_job(cfg, base, weights, groups, epochs=epochs, learning_rate=learning_rate, seed=seed,
                    out=out, schedule=schedule)
    argv = accelerate_command(cfg, job)
    release_cuda_cache()
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"train stage on {cfg.gpus} GPUs (log: {log}):\n  {shlex.join(argv)}", flush=True)
    code = _run(argv, log)
    if code != 0 or not (out / "train_log.json").is_file():
        raise UserError(f"the train stage on {cfg.gpus} GPUs failed (exit status {code}): see {log}; "
                        "rerun the same command to resume once fixed")
    for name in (JOB_FILE, GROUPS_FILE):
        (out / name).unlink()
    return json.loads((out / "train_log.json").read_text())


def write_job(cfg: TrainConfig, base: str, weights: str | None, groups: list[dict], *, epochs: float,
              learning_rate: float, seed: int, out: Path, schedule=None) -> Path:
    """The worker's inputs in ``out``: the groups (JSONL) and train_job.json (config and arguments)."""
    out = out.resolve()
    atomic_write_jsonl(out / GROUPS_FILE, groups)
    job = {"config": cfg.to_dict(), "base": base, "weights": weights, "groups": str(out / GROUPS_FILE),
           "epochs": epochs, "learning_rate": learning_rate, "seed": seed, "out": str(out),
           "schedule": schedule.to_dict() if schedule is not None else None}
    (out / JOB_FILE).write_text(json.dumps(job, indent=2) + "\n")
    return out / JOB_FILE


def _run(argv: list[str], log: Path) -> int:
    """Run ``argv`` (stdin closed), its output copied to ``log`` and to stdout; its exit status."""
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
                fh.write(chunk)
                sys.stdout.write(decode(chunk))
                sys.stdout.flush()
        except BaseException:  # Ctrl-C or a failed write: never leave the trainers running
            proc.terminate()
            proc.wait()
            raise
        return proc.wait()


def save_from_processes(trainer, tokenizer, out: Path) -> None:
    """Save the trained model from several processes: all take part (ZeRO-3 gathers its shards), the main
    one writes a staging folder and renames it to ``out``, so ``out`` is complete or absent."""
    staging = out.with_name(f".{out.name}.saving")
    trainer.save_model(str(staging))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(staging)
        (staging / "training_args.bin").unlink(missing_ok=True)  # the Trainer's; the one-process save has none
        staging.rename(out)
    trainer.accelerator.wait_for_everyone()
