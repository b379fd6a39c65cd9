"""One process of the multi-GPU train stage: `accelerate launch ... -m harness.loop.train_worker JOB.json`.

JOB.json (written by harness.loop.launch.write_job) holds the TrainConfig, the base model, the start
weights, the scored groups file, epochs, learning rate, seed, the output folder and the stage's place in
its learning-rate schedule (harness.objective.schedule.StageSchedule). Every process runs
harness.loop.train_stage.train_stage on it; the main process writes model/ and train_log.json. Also runs
alone (`python -m harness.loop.train_worker JOB.json`: one process, as the in-process stage).

harness.loop.train_stage is imported in `run_job`, after `main` has set HF_HUB_OFFLINE and the other
defaults harness.cli sets: huggingface_hub reads them when transformers first imports it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from harness.config import TrainConfig
from harness.objective.schedule import StageSchedule
from tasks.jsonl import read_jsonl
from verilog_tools.errors import UserError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m harness.loop.train_worker JOB.json", file=sys.stderr)
        return 2
    # As harness.cli: nothing downloaded, nothing reported home.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        run_job(Path(argv[0]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_job(job_path: Path) -> dict:
    from harness.loop.train_stage import train_stage  # after main()'s environment: see the module docstring

    job = json.loads(job_path.read_text())
    cfg = TrainConfig(**job["config"])
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # one GPU per process
    groups = read_jsonl(Path(job["groups"]))
    schedule = StageSchedule(**job["schedule"]) if job.get("schedule") else None
    return train_stage(cfg, job["base"], job["weights"], groups, epochs=job["epochs"],
                       learning_rate=job["learning_rate"], seed=job["seed"], out=Path(job["out"]),
                       schedule=schedule)


if __name__ == "__main__":
    sys.exit(main())
