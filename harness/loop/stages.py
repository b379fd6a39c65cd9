"""The four stages of one ITERTL iteration, each a function from files to files (see harness.loop.loop).

    sample_stage:  model + instructions         -> candidates.jsonl (k-1 samples per instruction)
    score_stage:   candidates + references      -> scores.jsonl, score_stats.json
    train_stage:   scored groups + start weights -> model/, train_log.json   (harness.loop.train_stage,
                                                    run by harness.loop.dispatch)
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
from harness.loop.diagnostics import candidate_diagnostics, testbench_verdicts
from harness.model.gpu import device_name
from harness.model.models import load_model, load_tokenizer
from harness.model.prompting import format_prompt
from harness.objective.scoring import ScoreConfig, score_groups, score_stats
from harness.runs.folder import atomic_write_json, atomic_write_jsonl
from harness.sample import vllm_sampler
from harness.sample.sampling import SamplingConfig, sample_completions, sample_rows, training_sampling_config
from tasks.problem import Problem
from tasks.prompts import build_prompt
from tasks.records import TrainingRecord
from verilog_tools.icarus import SimLimits
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


def sim_limits(seconds: float) -> SimLimits:
    """Each simulation's wall-clock limit and every tool process's CPU limit at ``seconds``; the compile's
    wall clock keeps its default (its CPU limit already stops a runaway elaboration)."""
    return SimLimits(sim_wall_seconds=seconds, cpu_seconds=seconds)


def workers(cfg: TrainConfig) -> int:
    return cfg.workers or os.cpu_count() or 1


def sample_texts(cfg: TrainConfig, base: str, weights: str | None, instructions: list[str], scfg,
                 stats_path: Path) -> list[list[str]]:
    """scfg.num_samples completions per instruction from cfg.sampler (hf or vllm), same contract for both;
    the sampler's measured throughput goes to ``stats_path`` (sample_stats.json)."""
    mcfg = model_config(cfg, base)
    tokenizer = load_tokenizer(mcfg)
    prompts = [format_prompt(tokenizer, i) for i in instructions]
    stats: dict = {"sampler": cfg.sampler}
    if cfg.sampler == "vllm":
        engine = vllm_sampler.EngineSettings(gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                                             max_model_len=cfg.vllm_max_model_len,
                                             base=cfg.vllm_base if cfg.quant == "4bit" else "bf16")
        texts = vllm_sampler.sample_completions(base, weights, tokenizer, prompts, scfg, stats=stats,
                                                tensor_parallel_size=cfg.tensor_parallel_size,
                                                engine=engine, in_child=True)
    else:
        model = load_model(mcfg, adapter_path=weights, trainable=False)
        texts = sample_completions(model, tokenizer, prompts, scfg, stats=stats)
    stats["prompts"] = len(prompts)
    stats["prompt_tokens"] = sum(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])
    stats["device"] = device_name()
    atomic_write_json(stats_path, stats)
    return texts


def sample_stage(cfg: TrainConfig, base: str, weights: str | None, records: list[TrainingRecord],
                 seed: int, out: Path) -> None:
    """k-1 completions per instruction from the model (base + optional weights) into ``out``, and the
    sampler's throughput into sample_stats.json beside it."""
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
    by_id = {r.id: r for r in records}
    recs = [by_id[row["id"]] for row in candidates]
    scfg = ScoreConfig(mode=cfg.score, multi_module_penalty=cfg.filter, completion_mode=cfg.train_prompt_style)
    limits = sim_limits(cfg.score_sim_seconds)
    rows = score_groups(recs, [row["samples"] for row in candidates], scfg, workers=workers(cfg), limits=limits)
    for row, cand in zip(rows, candidates):
        row["instruction"] = cand["instruction"]  # the prompt the model was trained and sampled with
    if cfg.pass_diagnostic:
        testbench_verdicts(recs, rows, cfg.score, workers(cfg), limits)
    stats = score_stats(rows, recs, scfg)
    stats["diagnostics"] = candidate_diagnostics(rows, cfg.min_score_gap)
    if instructions is not None:
        stats["instructions"] = instructions
    atomic_write_jsonl(scores_path, rows)
    atomic_write_json(stats_path, stats)
    return stats


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
    from tasks.evaluate import evaluate
    from tasks.reports import write_outcome
    from tasks.samples import write_samples

    scfg = SamplingConfig(num_samples=cfg.eval_n, temperature=cfg.eval_temperature, top_p=cfg.top_p,
                          max_new_tokens=cfg.max_new_tokens, batch_size=cfg.sample_batch_size, seed=seed)
    texts = sample_texts(cfg, base, weights, [build_prompt(p) for p in problems], scfg, out / "sample_stats.json")
    samples = sample_rows(problems, texts)
    write_samples(out / "samples.jsonl", samples)
    ks = tuple(k for k in (1, 5, 10) if k <= cfg.eval_n)
    limits = sim_limits(cfg.eval_sim_seconds)
    outcome = evaluate(problems, samples, workers=workers(cfg), ks=ks, progress=True, limits=limits)
    outcome.metrics.update(temperature=cfg.eval_temperature, top_p=cfg.top_p, n=cfg.eval_n,
                           smoke=bool(cfg.eval_limit), benchmark=cfg.eval_bench)
    write_outcome(outcome, out)
    return outcome.metrics
