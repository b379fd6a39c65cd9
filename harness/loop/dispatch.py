"""Where a train stage runs: in this process (``gpus=1``, every CPU run) or on ``gpus`` processes under
`accelerate launch` (harness.loop.launch). Either way the stage writes the same files into ``out``
(model/, train_log.json, and optimizer.pt for a continued schedule) and its train_log.json comes back.

harness.loop.train_stage is imported inside `train`: it loads torch, transformers, trl and accelerate,
which the loop, the DRY_RUN plan and the launching driver do not need until a stage trains here.
"""
from __future__ import annotations

from pathlib import Path

from harness.config import TrainConfig
from harness.loop import launch


def train(cfg: TrainConfig, base: str, weights: str | None, groups: list[dict], *, epochs: float,
          learning_rate: float, seed: int, out: Path, log: Path, schedule=None) -> dict:
    """The train stage into ``out``: in this process (gpus=1), or under `accelerate launch` (gpus > 1,
    its output in ``log``); ``schedule``: harness.objective.schedule.StageSchedule (None = a stage of its
    own)."""
    if cfg.gpus > 1:
        return launch.launch(cfg, base, weights, groups, epochs=epochs, learning_rate=learning_rate, seed=seed,
                             out=out, log=log, schedule=schedule)
    from harness.loop.train_stage import train_stage  # heavy: see the module docstring

    return train_stage(cfg, base, weights, groups, epochs=epochs, learning_rate=learning_rate, seed=seed,
                       out=out, schedule=schedule)
