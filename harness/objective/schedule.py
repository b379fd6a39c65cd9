"""The optimiser and learning-rate schedule of a train stage, and how they carry across iterations.

The train stage builds them here and passes them into the trainer (``optimizers=(optimizer, scheduler)``):
the optimiser is the one transformers' Trainer would build from the same arguments
(``Trainer.get_optimizer_cls_and_kwargs``: AdamW, fused where torch has it), the schedule a
``torch.optim.lr_scheduler.LambdaLR`` of ``lr_factor``. The stage is given ``max_steps`` from
``optimizer_steps`` so that the Trainer takes exactly the steps the schedule was planned for.

Schedule, over ``total`` optimiser steps, of the 0-based global step ``s`` of the step being taken:

    W = ceil(warmup_ratio * total)
    s <  W:  factor = (s + 1) / (W + 1)                        linear warmup, the first step already > 0
    s >= W:  factor = (1 + cos(pi * (s - W) / (total - W))) / 2  cosine decay (lr_schedule), > 0 for every s < total
             factor = (total - s) / (total - W)                  linear decay, > 0 for every s < total
             factor = 1                                          constant

transformers' cosine schedule takes its first step at factor 0 (step / warmup): a wasted step, and with
12 steps per iteration one in twelve. A step past the planned total keeps the last planned factor.

``continued`` plans ``total`` as the sum of every iteration's steps for its instruction count
(``harness.loop.loop.stage_schedule``); groups dropped for length make a stage shorter, never longer.
Extending a finished run (more ITERS) plans a longer total, and the new iterations follow it from the
step reached (the learning rate rises to that schedule's value at that step).

``optimizer_schedule`` (TrainConfig): ``reset`` gives every stage a fresh optimiser and its own
schedule (``total`` = the stage's steps); ``continued`` gives iterations 1..N one optimiser and one
schedule: iteration N loads iteration N-1's ``optimizer.pt`` (the AdamW state and the global step)
and saves its own, so a stage rerun after a kill starts from the same state and ends in the same one.
The warm start (iteration 0) always has its own optimiser and schedule.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "optimizer.pt"


@dataclass
class StageSchedule:
    """Where one train stage sits in its schedule."""

    start_step: int = 0                 # optimiser steps the schedule has already taken (continued)
    total_steps: int = 0                # planned steps of the whole schedule (0 = this stage's own)
    state_in: str | None = None         # optimizer.pt to start from (continued, iteration > 1)
    save: bool = False                  # write optimizer.pt beside the model (continued)

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, total: int, warmup_ratio: float, shape: str = "cosine") -> float:
    """The learning-rate multiplier of 0-based optimiser step ``step`` of a ``total``-step schedule whose
    decay after the warmup is ``shape`` (cosine | linear | constant)."""
    total = max(1, total)
    step = min(step, total - 1)
    warmup = math.ceil(warmup_ratio * total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if shape == "constant":
        return 1.0
    if shape == "linear":
        return (total - step) / (total - warmup)
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (total - warmup)))
    raise ValueError(f"unknown learning-rate schedule {shape!r}")  # TrainConfig allows only the three


def optimizer_steps(groups: int, per_device: int, accumulation: int, processes: int, epochs: float) -> int:
    """Optimiser steps of a stage on ``groups`` groups: transformers' count for an epoch-based run
    (batches per process, rounded up per epoch, then ``ceil(epochs * steps per epoch)``)."""
    batches = math.ceil(groups / (per_device * processes))
    per_epoch = max(math.ceil(batches / accumulation), 1)
    return math.ceil(epochs * per_epoch)


def build(model, args, learning_rate: float, schedule: StageSchedule, stage_steps: int, warmup_ratio: float,
          shape: str = "cosine"):
    """(optimizer, scheduler) for a stage of ``stage_steps`` steps, the optimiser state loaded from
    ``schedule.state_in`` when given (its learning rate replaced by ``learning_rate``)."""
    import torch
    from transformers import Trainer

    params = [p for p in model.parameters() if p.requires_grad]
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    optimizer = cls([{"params": params, "weight_decay": args.weight_decay}], **kwargs)
    if schedule.state_in:
        state = torch.load(schedule.state_in, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = learning_rate
    total = schedule.total_steps or stage_steps
    start = schedule.start_step
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(start + s, total, warmup_ratio, shape))
    return optimizer, scheduler


def save(path: Path, optimizer, global_step: int, total_steps: int) -> None:
    """The optimiser state and the schedule's position, for the next stage of a continued schedule."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save({"optimizer": optimizer.state_dict(), "global_step": global_step, "total_steps": total_steps},
               tmp)
    tmp.replace(path)


def learning_rate_recorder(optimizer):
    """A TrainerCallback appending the learning rate of every optimiser step (read just before the step)
    to its ``rates`` list."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self):
            self.rates: list[float] = []

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.rates.append(optimizer.param_groups[0]["lr"])

    return Recorder()
