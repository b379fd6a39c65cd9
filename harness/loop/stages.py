"""The four stages of one ITERTL iteration, each a function from files to files (see harness.loop.loop).

    sample_stage:  model + instructions         -> candidates.jsonl (k-1 samples per instruction)
    score_stage:   candidates + references      -> scores.jsonl, score_stats.json
    train_stage:   scored groups + start weights -> model/, train_log.json
    eval_stage:    model + held-out problems    -> eval/ (samples, results, metrics, ...)

Training prompts and evaluation prompts come from the same `tasks.prompts.build_prompt`, wrapped by
`harness.model.prompting.format_prompt`, so the model is always asked the same way. ``train_prompt_style``
(`harness.model.prompting`) picks the layout of training records for all stages alike: ``module`` asks for a
whole module, ``body`` gives the header and asks for the body (VerilogEval v1's layout; sampled bodies
are scored as header + body, trained on as the body, and the synthetic held-out set is asked so too).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from harness.config import TrainConfig, model_config
from tasks.problem import Problem
from tasks.prompts import build_prompt
from tasks.records import TrainingRecord
from verilog_tools.text import module_names


def record_to_problem(rec: TrainingRecord, style: str = "module") -> Problem:
    """A training record seen as a problem for prompts and simulation; its completion mode is the
    training prompt style (module: a whole module; body: what follows the header)."""
    names = module_names(rec.header) if rec.header else []
    return Problem(task_id=rec.id, benchmark=rec.source, description=rec.instruction, header=rec.header,
                   reference=rec.reference, testbench=rec.testbench or "", top=rec.top or "tb",
                   dut_module=rec.dut_module or (names[0] if names else "top_module"),
                   completion_mode=style)


def record_prompt(rec: TrainingRecord, style: str = "module") -> str:
    return build_prompt(record_to_problem(rec, style))


def workers(cfg: TrainConfig) -> int:
    return cfg.workers or os.cpu_count() or 1


def sample_texts(cfg: TrainConfig, base: str, weights: str | None, instructions: list[str], scfg,
                 stats_path: Path) -> list[list[str]]:
    """scfg.num_samples completions per instruction from cfg.sampler (hf or vllm), same contract for both;
    the sampler's measured throughput goes to ``stats_path`` (sample_stats.json)."""
    from harness.model.models import load_tokenizer
    from harness.model.prompting import format_prompt
    from harness.runs.folder import atomic_write_json

    mcfg = model_config(cfg, base)
    tokenizer = load_tokenizer(mcfg)
    prompts = [format_prompt(tokenizer, i) for i in instructions]
    stats: dict = {"sampler": cfg.sampler}
    if cfg.sampler == "vllm":
        from harness.sample import vllm_sampler
        engine = vllm_sampler.EngineSettings(gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                                             max_model_len=cfg.vllm_max_model_len,
                                             base=cfg.vllm_base if cfg.quant == "4bit" else "bf16")
        texts = vllm_sampler.sample_completions(base, weights, tokenizer, prompts, scfg, stats=stats,
                                                tensor_parallel_size=cfg.tensor_parallel_size,
                                                engine=engine, in_child=True)
    else:
        from harness.model.models import load_model
        from harness.sample.sampling import sample_completions
        model = load_model(mcfg, adapter_path=weights, trainable=False)
        texts = sample_completions(model, tokenizer, prompts, scfg, stats=stats)
    stats["prompts"] = len(prompts)
    stats["prompt_tokens"] = sum(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])
    stats["device"] = device_name()
    atomic_write_json(stats_path, stats)
    return texts


def device_name() -> str:
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def sample_stage(cfg: TrainConfig, base: str, weights: str | None, records: list[TrainingRecord],
                 seed: int, out: Path) -> None:
    """k-1 completions per instruction from the model (base + optional weights) into ``out``, and the
    sampler's throughput into sample_stats.json beside it."""
    from harness.sample.sampling import training_sampling_config
    from tasks.samples import atomic_write_text

    # The paper's rule: until EOS, a closing fence or the token limit (not the first `endmodule`).
    scfg = training_sampling_config(num_samples=cfg.k - 1, temperature=cfg.temperature, top_p=cfg.top_p,
                          max_new_tokens=cfg.max_new_tokens, batch_size=cfg.sample_batch_size, seed=seed)
    instructions = [record_prompt(r, cfg.train_prompt_style) for r in records]
    texts = sample_texts(cfg, base, weights, instructions, scfg, out.with_name("sample_stats.json"))
    rows = [{"id": r.id, "instruction": i, "samples": t} for r, i, t in zip(records, instructions, texts)]
    atomic_write_text(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def score_stage(cfg: TrainConfig, records: list[TrainingRecord], candidates: list[dict],
                scores_path: Path, stats_path: Path, instructions: dict | None = None) -> dict:
    """Score every candidate (the paper's, the functional or the equivalence rule) and summarise the
    iteration, with its diagnostics (harness.loop.diagnostics) and ``instructions`` (where they came from)."""
    from harness.loop.diagnostics import candidate_diagnostics, testbench_verdicts
    from harness.runs.folder import atomic_write_json, atomic_write_jsonl
    from harness.objective.scoring import ScoreConfig, score_groups, score_stats

    by_id = {r.id: r for r in records}
    recs = [by_id[row["id"]] for row in candidates]
    scfg = ScoreConfig(mode=cfg.score, multi_module_penalty=cfg.filter, completion_mode=cfg.train_prompt_style)
    rows = score_groups(recs, [row["samples"] for row in candidates], scfg, workers=workers(cfg))
    for row, cand in zip(rows, candidates):
        row["instruction"] = cand["instruction"]  # the prompt the model was trained and sampled with
    if cfg.pass_diagnostic:
        testbench_verdicts(recs, rows, cfg.score, workers(cfg))
    stats = score_stats(rows, recs, scfg)
    stats["diagnostics"] = candidate_diagnostics(rows, cfg.min_score_gap)
    if instructions is not None:
        stats["instructions"] = instructions
    atomic_write_jsonl(scores_path, rows)
    atomic_write_json(stats_path, stats)
    return stats


def train_stage(cfg: TrainConfig, base: str, weights: str | None, groups: list[dict], *,
                epochs: float, learning_rate: float, seed: int, out: Path, schedule=None) -> dict:
    """Train on scored groups (CE on the reference + alpha * ranking loss); save into ``out``/model.

    ``schedule`` (harness.objective.schedule.StageSchedule, default: a stage of its own) places the stage in its
    learning-rate schedule and says where the optimiser state comes from and whether to save it
    (``out``/optimizer.pt). Runs in this process, or in each of the processes `accelerate launch`
    started (harness.loop.distributed: WORLD_SIZE > 1), which share the optimiser batch; their main process
    writes ``out``.
    """
    import time

    from harness.objective import schedule as sched
    from harness.loop.diagnostics import PairCountingTrainer
    from harness.loop.distributed import save_from_processes
    from harness.model.models import load_model, load_tokenizer, save_adapter_or_model
    from harness.model.prompting import format_example
    from harness.objective.ranking import build_ranking_dataset

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
                          logging_steps=max(1, len(dataset) // (cfg.groups_per_batch * 10)))
    optimizers = (None, None)
    if not args.deepspeed:  # DeepSpeed builds its own optimiser (schedule: cosine without warmup)
        optimizers = sched.build(model, args, learning_rate, schedule, steps, cfg.lr_warmup_ratio)
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
    import torch

    from harness.loop.distributed import DEEPSPEED_JSON
    from harness.objective.trainer import RankingConfig

    per_device, accumulation = cfg.process_batch(processes)
    deepspeed = str(DEEPSPEED_JSON) if processes > 1 and cfg.distributed == "deepspeed" else None
    cuda = torch.cuda.is_available()
    return RankingConfig(
        output_dir=str(out / "trainer"), per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation, num_train_epochs=epochs, max_steps=steps,
        learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=0,
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


def eval_problems(cfg: TrainConfig, heldout: list[TrainingRecord]) -> list[Problem]:
    """The held-out problems of the run: the synthetic held-out split, or a named benchmark."""
    from tasks.benchmarks import load_benchmark

    if cfg.eval_bench == "synthetic" and heldout:
        problems = [record_to_problem(r, cfg.train_prompt_style) for r in heldout]
        problems = [Problem(**{**p.__dict__, "benchmark": "synthetic"}) for p in problems]
    else:
        problems = load_benchmark(cfg.eval_bench)
    return problems[: cfg.eval_limit] if cfg.eval_limit else problems


def eval_stage(cfg: TrainConfig, base: str, weights: str | None, problems: list[Problem], *,
               seed: int, out: Path) -> dict:
    """Sample eval_n completions per problem and score them with the harness into ``out``."""
    from harness.sample.sampling import SamplingConfig, sample_rows
    from tasks.evaluate import evaluate
    from tasks.reports import write_outcome
    from tasks.samples import write_samples
    from verilog_tools.icarus import SimLimits

    scfg = SamplingConfig(num_samples=cfg.eval_n, temperature=cfg.eval_temperature, top_p=cfg.top_p,
                          max_new_tokens=cfg.max_new_tokens, batch_size=cfg.sample_batch_size, seed=seed)
    texts = sample_texts(cfg, base, weights, [build_prompt(p) for p in problems], scfg, out / "sample_stats.json")
    samples = sample_rows(problems, texts)
    write_samples(out / "samples.jsonl", samples)
    ks = tuple(k for k in (1, 5, 10) if k <= cfg.eval_n)
    limits = SimLimits(sim_wall_seconds=cfg.eval_sim_seconds, cpu_seconds=cfg.eval_sim_seconds)
    outcome = evaluate(problems, samples, workers=workers(cfg), ks=ks, progress=True, limits=limits)
    outcome.metrics.update(temperature=cfg.eval_temperature, top_p=cfg.top_p, n=cfg.eval_n,
                           smoke=bool(cfg.eval_limit), benchmark=cfg.eval_bench)
    write_outcome(outcome, out)
    return outcome.metrics
