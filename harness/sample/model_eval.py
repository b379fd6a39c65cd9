"""`make eval MODEL=...`: turn a model into samples.jsonl rows for the evaluator.

MODEL may be a Hugging Face id (must be in the local cache: nothing is downloaded at run time), a local
model folder, a LoRA adapter folder (its base is read from adapter_config.json), or a training run
folder, optionally with ``:N`` for iteration N (default: the latest iteration whose training finished),
or ``openai:<name>``: a model behind an OpenAI-compatible endpoint (`harness.sample.api_sampler`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.model.models import ModelConfig, load_tokenizer, resolve_model_path
from harness.model.prompting import format_prompt, has_chat_template
from harness.sample.api_sampler import endpoint_from_env, prompt_sha256, sample_api
from harness.sample.sampling import SamplingConfig, generate_samples_for_problems
from verilog_tools.errors import UserError


@dataclass(frozen=True)
class ResolvedModel:
    base: str                 # HF id or folder of the base weights
    weights: str | None       # adapter or full fine-tuned folder on top of it (None: the base itself)
    quant: str = "none"
    lora: bool = False
    label: str = ""


def _run_model(run: Path, iteration: int | None) -> ResolvedModel:
    config = json.loads((run / "manifest.json").read_text()).get("config", {})
    state = json.loads((run / "state.json").read_text()).get("stages", {})
    trained = sorted(int(k[5:7]) for k, v in state.items()
                     if k.startswith("iter-") and k.endswith("/train") and v.get("done"))
    if iteration is None:
        iteration = trained[-1] if trained else 0
    elif iteration not in trained and iteration != 0:
        raise UserError(f"run {run} has no finished iteration {iteration}; finished: {trained or 'none'}")
    base = str(run / "base-model" / "model") if config.get("model") == "tiny" else config.get("model")
    weights = run / f"iter-{iteration:02d}" / "model"
    return ResolvedModel(base=base, weights=str(weights) if weights.exists() else None,
                         quant=config.get("quant", "none"), lora=bool(config.get("lora")),
                         label=f"{run.name}:{iteration}")


def resolve_model(spec: str) -> ResolvedModel:
    """Where the weights of ``spec`` are; a one-line UserError when they cannot be found offline."""
    if spec.startswith("openai:"):
        return _api_model(spec)
    head, sep, it = spec.rpartition(":")
    path, it = (Path(head), it) if sep and Path(head).is_dir() else (Path(spec), "")
    if (path / "manifest.json").is_file() and (path / "state.json").is_file():
        if it and not it.isdigit():
            raise UserError(f"MODEL={spec}: the iteration after ':' must be a number")
        return _run_model(path, int(it) if it else None)
    if (path / "adapter_config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise UserError(f"adapter {path} does not name its base model (base_model_name_or_path)")
        return ResolvedModel(base=base, weights=str(path), lora=True, label=str(path))
    resolve_model_path(spec)  # raises the offline / missing-files error
    return ResolvedModel(base=spec, weights=None, label=spec)


def _api_model(spec: str) -> ResolvedModel:
    if not spec[len("openai:"):].strip():
        raise UserError("MODEL=openai:<name> needs a model name after 'openai:'")
    try:
        import openai  # noqa: F401
    except ImportError:
        raise UserError("MODEL=openai:<name> needs the openai client: pip install -e '.[api]'") from None
    endpoint_from_env()
    return ResolvedModel(base=spec, weights=None, label=spec)


def generate_for_eval(problems: list, config) -> tuple[list[dict], dict]:
    """The eval CLI's generator hook: ``config.n`` samples per problem from ``config.model``."""
    if config.model.startswith("openai:"):
        from tasks.fetch import cache_root
        return sample_api(problems, config, cache_path=config.api_cache or cache_root() / "api-completions.sqlite")
    model = resolve_model(config.model)
    mcfg = ModelConfig(name_or_path=model.base, quant=model.quant, lora=model.lora)
    scfg = SamplingConfig(num_samples=config.n, temperature=config.temperature, top_p=config.top_p,
                          max_new_tokens=config.max_new_tokens, seed=config.seed, batch_size=32)
    samples = generate_samples_for_problems(problems, mcfg, scfg, adapter_path=model.weights)
    _record_prompts(samples, problems, mcfg)
    info = {"temperature": config.temperature, "top_p": config.top_p, "n": config.n,
            "model_resolved": {"base": model.base, "weights": model.weights, "label": model.label}}
    return samples, info


def _record_prompts(samples: list[dict], problems: list, mcfg) -> None:
    """Give each row the id of the prompt layout and the sha256 of the exact text the model was given."""
    tokenizer = load_tokenizer(mcfg)
    template = "hf-chat-template/v1" if has_chat_template(tokenizer) else "hf-plain/v1"
    from tasks.prompts import build_prompt
    hashes = {p.task_id: prompt_sha256(format_prompt(tokenizer, build_prompt(p))) for p in problems}  # as sampling.py does
    for row in samples:
        row.update(prompt_template=template, prompt_sha256=hashes[row["task_id"]])
