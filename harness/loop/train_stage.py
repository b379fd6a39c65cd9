"""The train stage: CE on the reference + alpha * ranking loss (harness.objective.ranking) on an
iteration's scored groups, in the learning-rate schedule of harness.objective.schedule, saved into
``out``: model/, train_log.json (loss terms, speed, the violated pairs of the whole stage, the learning
rate of every step) and, for a continued schedule, optimizer.pt.

It runs in the loop's own process (``gpus=1``, through harness.loop.dispatch) or in each process that
`accelerate launch` started (harness.loop.train_worker); those share the optimiser batch and their main
process writes ``out``. This module loads torch, transformers, trl and accelerate when imported (the
trainer subclasses trl's); the loop imports it only when a stage trains in this process.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from harness.config import TrainConfig, model_config
from harness.loop.launch import DEEPSPEED_JSON, save_from_processes
from harness.model.gpu import device_name
from harness.model.models import load_model, load_tokenizer, save_adapter_or_model
from harness.model.prompting import format_example
from harness.objective import schedule as sched
from harness.objective.ranking import build_ranking_dataset
from harness.objective.trainer import RankingConfig, RankingTrainer


def train_stage(cfg: TrainConfig, base: str, weights: str | None, groups: list[dict], *,
                epochs: float, learning_rate: float, seed: int, out: Path, schedule=None) -> dict:
    """Train on scored groups (CE on the reference + alpha * ranking loss); save into ``out``/model.

    ``schedule`` (harness.objective.schedule.StageSchedule, default: a stage of its own) places the stage in its
    learning-rate schedule and says where the optimiser state comes from and whether to save it
    (``out``/optimizer.pt). Runs in this process, or in each of the processes `accelerate launch`
    started (harness.loop.launch: WORLD_SIZE > 1), which share the optimiser batch; their main process
    writes ``out``.
    """
    schedule = schedule or sched.StageSchedule()
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    mcfg = model_config(cfg, base)
    tokenizer = load_tokenizer(mcfg)
    model = load_model(mcfg, adapter_path=weights, trainable=True)
    max_len = cfg.max_length or getattr(getattr(model, "config", None), "max_position_embeddings", None)
    length_stats: dict = {}
    dataset = build_ranking_dataset(groups, tokenizer, format_example, max_length=max_len,
                                    style=cfg.train_prompt_style, stats=length_stats)
    per_device, accumulation = cfg.process_batch(processes)
    steps = sched.optimizer_steps(len(dataset), per_device, accumulation, processes, epochs)
    args = _training_args(cfg, processes, steps, epochs=epochs, learning_rate=learning_rate, seed=seed, out=out,
                          logging_steps=max(1, len(dataset) // (cfg.groups_per_batch * cfg.logs_per_stage)))
    optimizers = (None, None)
    if not args.deepspeed:  # DeepSpeed builds its own optimiser (schedule: cosine without warmup)
        optimizers = sched.build(model, args, learning_rate, schedule, steps, cfg.lr_warmup_ratio, cfg.lr_schedule)
    trainer = PairCountingTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                  optimizers=optimizers)
    rates = sched.learning_rate_recorder(trainer.optimizer) if optimizers[0] is not None else None
    if rates is not None:
        trainer.add_callback(rates)
    started = time.monotonic()
    result = trainer.train()
    seconds = time.monotonic() - started
    if processes > 1:
        save_from_processes(trainer, tokenizer, out / "model")
    else:
        save_adapter_or_model(trainer.model, tokenizer, out / "model")
    total = schedule.total_steps or steps
    end = schedule.start_step + trainer.state.global_step
    if schedule.save and trainer.accelerator.is_main_process:
        sched.save(out / sched.STATE_FILE, optimizers[0], end, total)
    info = _train_info(trainer, result, dataset, epochs, learning_rate, seconds, processes)
    info.update(max_length=max_len, length_drops=length_stats, diagnostics=trainer.pair_diagnostics(),
                schedule={**schedule.to_dict(), "total_steps": total, "end_step": end,
                          "optimizer": "continued" if schedule.total_steps else "own",
                          "warmup_ratio": cfg.lr_warmup_ratio,
                          "learning_rates": rates.rates if rates is not None else None})
    if trainer.accelerator.is_main_process:
        (out / "train_log.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _training_args(cfg: TrainConfig, processes: int, steps: int, *, epochs: float, learning_rate: float,
                   seed: int, out: Path, logging_steps: int):
    """The trainer's arguments: exactly ``steps`` optimiser steps (the schedule's plan)."""
    per_device, accumulation = cfg.process_batch(processes)
    deepspeed = str(DEEPSPEED_JSON) if processes > 1 and cfg.distributed == "deepspeed" else None
    cuda = torch.cuda.is_available()
    return RankingConfig(
        output_dir=str(out / "trainer"), per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation, num_train_epochs=epochs, max_steps=steps,
        # lr_scheduler_type and warmup: only DeepSpeed's own optimiser uses them (harness.objective.schedule otherwise)
        learning_rate=learning_rate, lr_scheduler_type=cfg.lr_schedule, warmup_steps=0,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        alpha=cfg.alpha, margin=cfg.margin, min_score_gap=cfg.min_score_gap, pair_reduction=cfg.pair_reduction,
        length_normalize=cfg.length_normalize,
        split_gradients=cfg.split_gradients, forward_chunk_size=cfg.forward_chunk_size,
        logprob_chunk_tokens=cfg.logprob_chunk_tokens,
        gradient_checkpointing=False,  # load_model has already set it up (cfg.gradient_checkpointing)
        logging_steps=logging_steps, save_strategy="no",
        report_to=[], seed=seed, data_seed=seed, use_cpu=not cuda,
        # DeepSpeed trains the bf16 weights load_model gives on a GPU; QLoRA computes in bf16.
        bf16=cuda and (cfg.quant != "none" or deepspeed is not None), deepspeed=deepspeed,
        disable_tqdm=False, dataloader_num_workers=0)


def _train_info(trainer, result, dataset: list[dict], epochs: float, learning_rate: float, seconds: float,
                processes: int) -> dict:
    """train_log.json's account of a finished stage: sizes, speed, the logged loss terms."""
    history = [h for h in trainer.state.log_history if "ce_loss" in h]
    sequences = sum(len(g["candidates"]) for g in dataset)
    tokens = round(epochs * sum(len(c["input_ids"]) for g in dataset for c in g["candidates"]))
    return {"groups": len(dataset), "epochs": epochs, "learning_rate": learning_rate,
            "train_loss": result.training_loss, "steps": trainer.state.global_step,
            "processes": processes, "sequences": sequences, "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else None, "device": device_name(),
            "history": history, "final": history[-1] if history else {},
            "dropout_disabled": trainer.dropout_disabled}


class PairCountingTrainer(RankingTrainer):
    """RankingTrainer that also sums the ranked and the correctly ordered pairs of every training
    micro-batch (the trainer's ``_record`` sees each micro-batch's counts before its update)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pair_totals = {"pairs": 0, "correct": 0, "micro_batches": 0}

    def _record(self, stats: dict) -> None:
        super()._record(stats)
        if self.model.training:
            self.pair_totals["pairs"] += int(stats["pairs"])
            self.pair_totals["correct"] += int(stats["correct"])
            self.pair_totals["micro_batches"] += 1

    def pair_diagnostics(self) -> dict:
        """The whole stage's counts, summed over processes: pairs, violated pairs and their fraction."""
        t = self.pair_totals
        local = torch.tensor([t["pairs"], t["correct"], t["micro_batches"]], dtype=torch.long,
                             device=self.accelerator.device)
        pairs, correct, batches = (int(v) for v in self.accelerator.reduce(local, reduction="sum").tolist())
        return {"pairs": pairs, "violated_pairs": pairs - correct,
                "violated_fraction": (pairs - correct) / pairs if pairs else None, "micro_batches": batches}
