"""Benchmark 4: generated tokens/s of the HF sampler (`harness.sample.sampling.sample_completions`) on the
tiny model, at the tiny-cpu preset's settings (K-1 = 3 samples per prompt, batch 32, temperature 0.8,
top-p 0.95, 240 new tokens): its decode loop (`decoder: loop`, harness.sample.decode) against the same sampler
on transformers' generate() (`decoder: generate`, static KV cache: the sampler before the loop existed;
same completions) and against a plain generate() call.

The model is the project's tiny Llama (`harness.model.tiny_model.build_tiny_model`, TrainConfig's tiny_*
shape) with its tokenizer trained on the offline Verilog corpus (`tasks.synthetic.verilog_corpus`),
untrained: its completions rarely stop early, so nearly every one runs to the token limit. Prompts
are synthetic training tasks. Baseline: the obvious call, ``model.generate(do_sample=True, ...)`` on
the same batches (dynamic KV cache, one shared random stream, no stop at ``endmodule``). Tokens are
counted as the sampler counts them (its ``stats`` argument): generated ids that are not padding.

vLLM is measured only where a CUDA GPU, the vllm package and ``harness.sample.vllm_sampler`` are all
present; otherwise its row says why it was skipped.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.bench.common import BenchResult, Row, per_second, stopwatch
from harness.config import load_config
from harness.model.models import ModelConfig, load_model, load_tokenizer
from harness.model.prompting import format_prompt
from harness.model.tiny_model import build_tiny_model
from harness.sample import vllm_sampler
from harness.sample.sampling import SamplingConfig, sample_completions

NAME = "sampling_throughput"
TITLE = "sampling: generated tokens/s (HF; vLLM on a GPU)"
SCALES = {
    "full": {"prompts": 32, "max_new_tokens": 240, "corpus_tasks": None},
    "small": {"prompts": 11, "max_new_tokens": 240, "corpus_tasks": None},
    "tiny": {"prompts": 2, "max_new_tokens": 8, "corpus_tasks": 50},
}


def preset_sampling(max_new_tokens: int):
    """The tiny-cpu preset's training-candidate sampling settings."""
    cfg = load_config("tiny-cpu")
    return cfg, SamplingConfig(num_samples=cfg.k - 1, temperature=cfg.temperature, top_p=cfg.top_p,
                               max_new_tokens=max_new_tokens, batch_size=cfg.sample_batch_size, seed=0)


def build_model(work_dir: Path, cfg, corpus_tasks: int | None):
    """The untrained tiny model, its tokenizer and its folder, built into ``work_dir``."""
    import itertools

    from tasks.synthetic import verilog_corpus

    corpus = verilog_corpus()
    if corpus_tasks:
        corpus = itertools.islice(corpus, corpus_tasks)
    path = build_tiny_model(work_dir / "tiny-model", corpus, seed=0, hidden_size=cfg.tiny_hidden_size,
                            num_layers=cfg.tiny_layers, num_heads=cfg.tiny_heads,
                            intermediate_size=cfg.tiny_intermediate_size)
    mcfg = ModelConfig(name_or_path=str(path), lora=False)
    return load_model(mcfg, trainable=False), load_tokenizer(mcfg), str(path)


def plain_generate(model, tokenizer, prompts: list[str], scfg) -> int:
    """The baseline: stock sampling with ``generate``; returns the generated non-padding tokens."""
    import torch

    units = [p for p in prompts for _ in range(scfg.num_samples)]
    tokenizer.padding_side = "left"
    produced = 0
    torch.manual_seed(scfg.seed)
    for start in range(0, len(units), scfg.batch_size):
        enc = tokenizer(units[start: start + scfg.batch_size], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=scfg.temperature, top_p=scfg.top_p,
                                 max_new_tokens=scfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        produced += int((out[:, enc["input_ids"].shape[1]:] != tokenizer.pad_token_id).sum())
    return produced


def vllm_status() -> str | None:
    """None when vLLM can be measured here, else why not."""
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        return "skipped: no GPU"
    if importlib.util.find_spec("vllm") is None:
        return "skipped: vllm is not installed"
    return None


def vllm_tokens_per_second(model_path: str, tokenizer, prompts: list[str], scfg) -> float | None:
    """`harness.sample.vllm_sampler.sample_completions` on the same prompts and settings: tokens/s."""
    stats: dict = {}
    with stopwatch() as sw:
        vllm_sampler.sample_completions(model_path, None, tokenizer, prompts, scfg, stats=stats, progress=True)
    return per_second(stats.get("tokens", 0), sw.seconds)


def run(work_dir: Path, workers: int, prompts: int, max_new_tokens: int, corpus_tasks: int | None) -> BenchResult:
    import dataclasses

    import torch

    from tasks.prompts import build_prompt
    from tasks.synthetic import load_problems

    cfg, scfg = preset_sampling(max_new_tokens)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads or workers)  # as the training loop runs it
    try:
        model, tokenizer, model_path = build_model(work_dir, cfg, corpus_tasks)
        texts = [format_prompt(tokenizer, build_prompt(p)) for p in load_problems("train")[:prompts]]
        warm = dataclasses.replace(scfg, max_new_tokens=4)  # first calls pay one-time set-up costs
        sample_completions(model, tokenizer, texts[:1], warm, progress=False)
        plain_generate(model, tokenizer, texts[:1], warm)
        stats: dict = {}
        with stopwatch() as ours:
            loop_texts = sample_completions(model, tokenizer, texts, scfg, progress=True, stats=stats)
        before: dict = {}
        with stopwatch() as generate_path:
            generate_texts = sample_completions(model, tokenizer, texts, dataclasses.replace(scfg, decoder="generate"),
                                                progress=True, stats=before)
        with stopwatch() as plain:
            plain_tokens = plain_generate(model, tokenizer, texts, scfg)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    skip = vllm_status()
    hf_rate = per_second(stats["tokens"], ours.seconds)
    vllm_rate = None if skip else vllm_tokens_per_second(model_path, tokenizer, texts, scfg)
    same = sum(a == b for x, y in zip(loop_texts, generate_texts) for a, b in zip(x, y))
    result = BenchResult(name=NAME, scale="", rows=[
        Row(f"HF sampler tokens/s (batch {scfg.batch_size})", hf_rate,
            per_second(before["tokens"], generate_path.seconds),
            note=f"baseline: the same sampler on generate() (decoder: generate); identical completions: "
                 f"{same} of {len(texts) * scfg.num_samples}"),
        Row(f"HF sampler tokens/s vs plain generate (batch {scfg.batch_size})", hf_rate,
            per_second(plain_tokens, plain.seconds), note="baseline: plain generate(do_sample=True)"),
        Row("vLLM tokens/s (engine start included)", vllm_rate, hf_rate,
            note=skip or "baseline: the HF sampler above"),
    ])
    result.notes = [(f"{len(texts)} prompts x {scfg.num_samples} samples, up to {scfg.max_new_tokens} new "
                    f"tokens, batch {scfg.batch_size}, {used_threads} torch thread(s) (the preset's "
                    f"torch_threads); untrained tiny model, so completions rarely stop early")]
    result.details = {"project_tokens": stats["tokens"], "project_seconds": ours.seconds,
                      "generate_path_tokens": before["tokens"], "generate_path_seconds": generate_path.seconds,
                      "identical_completions": same,
                      "baseline_tokens": plain_tokens, "baseline_seconds": plain.seconds,
                      "completions": len(texts) * scfg.num_samples, "vllm": skip or "measured",
                      "parameters": sum(p.numel() for p in model.parameters())}
    return result
