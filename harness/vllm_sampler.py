"""Sample completions with vLLM (``sampler=vllm``): the contract of harness.sampling.sample_completions,
on a GPU engine with continuous batching.

Same inputs and outputs as the HF sampler: formatted prompts in, one list of ``num_samples`` texts per
prompt out, in prompt order, each cut after its first ``endmodule``. Completion (i, j) is its own
request with the seed ``harness.sampling.completion_seed(seed, i, j)`` (vLLM draws it from a
per-request generator), so it is reproducible and does not depend on the other requests; kernels may
still round differently with batch composition, as padding does for the HF sampler. temperature 0 is
greedy: one request per prompt, its answer repeated ``num_samples`` times (what the HF sampler returns
too). For the same seeds the two samplers give different texts: their random streams differ.

Which weights: the iteration's weights folder is a LoRA adapter (``adapter_config.json``), served on
the base model through vLLM's LoRA support (``enable_lora``, ``max_lora_rank`` from the adapter's r,
rounded up to a rank vLLM supports) and never merged; or a full model folder, loaded as the model;
or none (the base model). With quant=4bit the adapter, trained against NF4-rounded weights, is applied
to the base's stored (bf16) weights, QLoRA's usual serving set-up; the HF sampler samples the 4-bit
model itself, so the two differ by that rounding.

Prompts are tokenised here by the HF tokenizer (no added special tokens: the chat template already
holds BOS, as in the HF sampler) and handed to vLLM as token ids, so both samplers see the same tokens.

The engine lives for one call (one stage): built by ``_make_engine`` (the one place vLLM is
constructed, replaced in tests), used, shut down, so that the train stage after it gets the GPU back.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from harness.distributed import cuda_device_count, release_cuda_cache
from harness.sampling import STOP_TEXT, SamplingConfig, completion_seed, record_stats, truncate_at_stop
from verilog_tools.errors import UserError

# LoRA ranks vLLM can allocate (its LoRAConfig accepts only these); an adapter of rank r takes the
# smallest slot >= r.
LORA_RANK_SLOTS = (8, 16, 32, 64, 128, 256, 320, 512)
FIX = "pip install -e '.[vllm]' on a machine with a CUDA GPU, or SAMPLER=hf"


def check_available(tensor_parallel_size: int = 1) -> None:
    """UserError (one line, with the fix) unless vllm imports and enough CUDA devices are visible."""
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        raise UserError(f"SAMPLER=vllm needs the [vllm] extra and a CUDA GPU, but vllm does not import "
                        f"({exc}): {FIX}") from None
    visible = cuda_device_count()
    if visible < tensor_parallel_size:
        raise UserError(f"SAMPLER=vllm needs a CUDA GPU ({tensor_parallel_size} for tensor_parallel_size="
                        f"{tensor_parallel_size}) but {visible} visible: {FIX}")


@dataclass(frozen=True)
class Weights:
    """What vLLM loads: the model folder, and a LoRA adapter on it (or None)."""

    model: str
    adapter: str | None = None
    lora_rank: int | None = None


def resolve_weights(base: str, weights: str | None) -> Weights:
    """The base model plus an adapter folder, or a full model folder as the model itself."""
    from harness.models import resolve_model_path

    if weights is None:
        return Weights(model=str(resolve_model_path(base)))
    folder = Path(weights)
    config = folder / "adapter_config.json"
    if not config.is_file():
        return Weights(model=str(folder))  # full fine-tuning saved the whole model
    rank = int(json.loads(config.read_text())["r"])
    return Weights(model=str(resolve_model_path(base)), adapter=str(folder), lora_rank=lora_rank_slot(rank))


def lora_rank_slot(rank: int) -> int:
    for slot in LORA_RANK_SLOTS:
        if rank <= slot:
            return slot
    raise UserError(f"LoRA rank {rank} is above vLLM's largest ({LORA_RANK_SLOTS[-1]}): lower lora_r or SAMPLER=hf")


@dataclass(frozen=True)
class Request:
    """One vLLM request: a prompt, the completions it fills, and SamplingParams' keyword arguments."""

    prompt_index: int
    sample_indices: tuple[int, ...]
    params: dict


def build_requests(num_prompts: int, cfg: SamplingConfig) -> list[Request]:
    """One seeded request per completion (i, j); with temperature 0 one greedy request per prompt."""
    common = {"n": 1, "temperature": cfg.temperature, "max_tokens": cfg.max_new_tokens,
              "skip_special_tokens": True}
    if cfg.stop_at_endmodule:
        common.update(stop=[STOP_TEXT], include_stop_str_in_output=True)
    if cfg.temperature == 0:
        every = tuple(range(cfg.num_samples))
        return [Request(i, every, {**common, "top_p": 1.0}) for i in range(num_prompts)]
    return [Request(i, (j,), {**common, "top_p": cfg.top_p, "seed": completion_seed(cfg.seed, i, j)})
            for i in range(num_prompts) for j in range(cfg.num_samples)]


def sample_completions(base: str, weights: str | None, tokenizer, prompts: list[str], cfg: SamplingConfig, *,
                       tensor_parallel_size: int = 1, stats: dict | None = None,
                       progress: bool = True) -> list[list[str]]:
    """cfg.num_samples completions per formatted prompt from ``base`` + ``weights`` (see module doc).

    ``stats``, when given, receives completions, tokens, seconds and tokens_per_s of the generation.
    """
    check_available(tensor_parallel_size)
    import vllm
    from vllm.lora.request import LoRARequest

    target = resolve_weights(base, weights)
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    requests = build_requests(len(prompts), cfg)
    lora = LoRARequest("iteration", 1, target.adapter) if target.adapter else None
    engine = _make_engine(target, tensor_parallel_size=tensor_parallel_size, seed=cfg.seed)
    try:
        started = time.monotonic()
        outputs = engine.generate([{"prompt_token_ids": ids[r.prompt_index]} for r in requests],
                                  sampling_params=[vllm.SamplingParams(**r.params) for r in requests],
                                  lora_request=lora, use_tqdm=progress)
        seconds = time.monotonic() - started
    finally:
        _shutdown(engine)
    results, tokens = parse_outputs(requests, outputs, len(prompts), cfg.num_samples, cfg.stop_at_endmodule)
    if stats is not None:
        record_stats(stats, completions=len(prompts) * cfg.num_samples, tokens=tokens, seconds=seconds)
    return results


def parse_outputs(requests: list[Request], outputs, num_prompts: int, num_samples: int,
                  stop_at_endmodule: bool = True) -> tuple[list[list[str]], int]:
    """One list of texts per prompt (vLLM returns outputs in request order), and the tokens generated."""
    if len(outputs) != len(requests):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
    results: list[list[str]] = [[""] * num_samples for _ in range(num_prompts)]
    tokens = 0
    for request, output in zip(requests, outputs):
        completion = output.outputs[0]
        text = truncate_at_stop(completion.text) if stop_at_endmodule else completion.text
        tokens += len(completion.token_ids)
        for j in request.sample_indices:
            results[request.prompt_index][j] = text
    return results, tokens


def _make_engine(target: Weights, *, tensor_parallel_size: int, seed: int):
    """The vLLM engine for ``target`` (the only place one is built; tests replace this function)."""
    import vllm

    release_cuda_cache()  # memory the HF model of an earlier stage left in torch's cache
    lora = {"enable_lora": True, "max_lora_rank": target.lora_rank, "max_loras": 1} if target.adapter else {}
    return vllm.LLM(model=target.model, tensor_parallel_size=tensor_parallel_size, seed=seed, dtype="auto",
                    **lora)


def _shutdown(engine) -> None:
    """Give the engine's GPU memory back. vLLM's V1 engine core (weights, KV cache) runs in a child
    process: ``LLM.shutdown()`` where it exists, else its engine-core client's, ends that process."""
    shutdown = getattr(engine, "shutdown", None)
    if not callable(shutdown):
        core = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
        shutdown = getattr(core, "shutdown", None)
    if callable(shutdown):
        shutdown()
    del engine
    release_cuda_cache()

