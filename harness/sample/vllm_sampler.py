"""Sample completions with vLLM (``sampler=vllm``): the contract of harness.sample.sampling.sample_completions,
on a GPU engine with continuous batching.

Same inputs and outputs as the HF sampler: formatted prompts in, one list of ``num_samples`` texts per
prompt out, in prompt order, each cut after its first ``endmodule``. Completion (i, j) is its own
request with the seed ``harness.sample.sampling.completion_seed(seed, i, j)`` (vLLM draws it from a
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

Memory and length. The engine takes ``gpu_memory_utilization`` of each GPU (vLLM's default is 0.9;
here a config field, 0.85 by default) and holds sequences of at most ``max_model_len`` tokens (0 = the
stage's longest prompt + max_new_tokens, so the KV cache is sized for this stage, not for the model's
longest context). Before the engine is built, ``harness.model.gpu.wait_for_free_gpu_memory`` waits
until that fraction of the GPU is free (memory of an earlier stage may take a moment to come back) and
otherwise stops with one line giving the figures.

Which process. The loop's stages call ``sample_completions(..., in_child=True)``: the engine is built,
used and shut down in a child process (``python -m harness.sample.vllm_sampler JOB OUT``), so whatever vLLM
allocates, in its own engine-core process or in the child, is gone when the child exits, and the
engine's life never overlaps the training process's. Prompts travel as token ids in a JSON job file
and the texts come back the same way. In-process (the default, tests with a fake engine) the engine
lives for one call: built by ``_make_engine`` (the one place vLLM is constructed, replaced in tests),
used, shut down.

The base under the adapter (``EngineSettings.base``, config field ``vllm_base``, recorded in
sample_stats.json): ``bf16`` serves it on the stored weights as above; ``nf4`` has vLLM quantise the
base with bitsandbytes (``quantization="bitsandbytes"``), the rounding the adapter was trained on, so
the sampled and evaluated model is the trained one (slower kernels than bf16).
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.model.gpu import cuda_device_count, release_cuda_cache, wait_for_free_gpu_memory
from harness.model.models import resolve_model_path
from harness.sample.sampling import (STOP_TEXT, SamplingConfig, completion_seed, record_stats, truncate_at_fence,
                              truncate_at_stop)
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
class EngineSettings:
    """How the vLLM engine uses the GPU (TrainConfig's vllm_* fields)."""

    gpu_memory_utilization: float = 0.85
    max_model_len: int = 0  # 0 = longest prompt + max_new_tokens
    base: str = "bf16"  # bf16 | nf4: the base weights a LoRA adapter is served on
    free_memory_wait_s: float = 120.0  # how long to wait for an earlier stage's memory to come back

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UserError(f"vllm_gpu_memory_utilization={self.gpu_memory_utilization} must be in (0, 1]")
        if self.base not in ("bf16", "nf4"):
            raise UserError(f"vllm_base={self.base!r} must be bf16 or nf4")

    def model_len(self, prompt_ids: list[list[int]], max_new_tokens: int) -> int:
        return self.max_model_len or max((len(i) for i in prompt_ids), default=0) + max_new_tokens


@dataclass(frozen=True)
class Weights:
    """What vLLM loads: the model folder, and a LoRA adapter on it (or None)."""

    model: str
    adapter: str | None = None
    lora_rank: int | None = None


def resolve_weights(base: str, weights: str | None) -> Weights:
    """The base model plus an adapter folder, or a full model folder as the model itself."""
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
                       tensor_parallel_size: int = 1, engine: EngineSettings | None = None,
                       in_child: bool = False, stats: dict | None = None,
                       progress: bool = True) -> list[list[str]]:
    """cfg.num_samples completions per formatted prompt from ``base`` + ``weights`` (see module doc).

    ``in_child`` runs the engine in a child process. ``stats``, when given, receives completions,
    tokens, seconds and tokens_per_s of the generation, and the engine settings under "vllm".
    """
    check_available(tensor_parallel_size)
    settings = engine or EngineSettings()
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    run = generate_in_child if in_child else generate_ids
    results, tokens, seconds = run(base, weights, ids, cfg, tensor_parallel_size=tensor_parallel_size,
                                   settings=settings, progress=progress)
    if stats is not None:
        record_stats(stats, completions=len(prompts) * cfg.num_samples, tokens=tokens, seconds=seconds)
        stats["vllm"] = {**dataclasses.asdict(settings), "max_model_len": settings.model_len(ids, cfg.max_new_tokens),
                         "child_process": in_child}
    return results


def generate_ids(base: str, weights: str | None, ids: list[list[int]], cfg: SamplingConfig, *,
                 tensor_parallel_size: int, settings: EngineSettings, progress: bool
                 ) -> tuple[list[list[str]], int, float]:
    """Texts per prompt (prompts given as token ids), tokens generated, seconds: one engine, here."""
    import vllm
    from vllm.lora.request import LoRARequest

    target = resolve_weights(base, weights)
    requests = build_requests(len(ids), cfg)
    lora = LoRARequest("iteration", 1, target.adapter) if target.adapter else None
    engine = _make_engine(target, tensor_parallel_size=tensor_parallel_size, seed=cfg.seed, settings=settings,
                          max_model_len=settings.model_len(ids, cfg.max_new_tokens))
    try:
        started = time.monotonic()
        outputs = engine.generate([{"prompt_token_ids": ids[r.prompt_index]} for r in requests],
                                  sampling_params=[vllm.SamplingParams(**r.params) for r in requests],
                                  lora_request=lora, use_tqdm=progress)
        seconds = time.monotonic() - started
    finally:
        _shutdown(engine)
    results, tokens = parse_outputs(requests, outputs, len(ids), cfg.num_samples, cfg.stop_at_endmodule,
                                    stop_at_fence=getattr(cfg, "stop_at_fence", False))
    return results, tokens, seconds


def generate_in_child(base: str, weights: str | None, ids: list[list[int]], cfg: SamplingConfig, *,
                      tensor_parallel_size: int, settings: EngineSettings, progress: bool
                      ) -> tuple[list[list[str]], int, float]:
    """``generate_ids`` in a child process (``python -m harness.sample.vllm_sampler JOB OUT``); its output goes
    to the terminal, a UserError in it comes back as one."""
    release_cuda_cache()  # what this process's torch still caches (an earlier stage's model)
    with tempfile.TemporaryDirectory(prefix="itertl-vllm-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(json.dumps({"base": base, "weights": weights, "ids": ids, "sampling": dataclasses.asdict(cfg),
                                   "tensor_parallel_size": tensor_parallel_size,
                                   "engine": dataclasses.asdict(settings), "progress": progress}))
        code = _run_child(job, out)
        answer = json.loads(out.read_text()) if out.is_file() else {}
    if "error" in answer:
        raise UserError(answer["error"])
    if code != 0 or "texts" not in answer:
        raise UserError(f"vLLM sampling failed in its child process (exit {code}); its output is above")
    return answer["texts"], answer["tokens"], answer["seconds"]


def _run_child(job: Path, out: Path) -> int:
    """Run ``main`` on JOB and OUT in a fresh Python process; its exit status (tests run it in-process)."""
    return subprocess.run([sys.executable, "-m", "harness.sample.vllm_sampler", str(job), str(out)],
                          stdin=subprocess.DEVNULL, check=False).returncode


def main(argv: list[str]) -> int:
    """The child process: JOB.json in, OUT.json ({"texts", "tokens", "seconds"} or {"error"}) out."""
    if len(argv) != 2:
        print("usage: python -m harness.sample.vllm_sampler JOB.json OUT.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    try:
        texts, tokens, seconds = generate_ids(
            job["base"], job["weights"], job["ids"], SamplingConfig(**job["sampling"]),
            tensor_parallel_size=job["tensor_parallel_size"], settings=EngineSettings(**job["engine"]),
            progress=job["progress"])
    except UserError as exc:
        Path(argv[1]).write_text(json.dumps({"error": str(exc)}))
        return 2
    Path(argv[1]).write_text(json.dumps({"texts": texts, "tokens": tokens, "seconds": seconds}))
    return 0


def parse_outputs(requests: list[Request], outputs, num_prompts: int, num_samples: int,
                  stop_at_endmodule: bool = True, *, stop_at_fence: bool = False) -> tuple[list[list[str]], int]:
    """One list of texts per prompt (vLLM returns outputs in request order), and the tokens generated;
    texts cut as the HF sampler cuts them (after the first ``endmodule``, or after a closing fence)."""
    if len(outputs) != len(requests):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
    results: list[list[str]] = [[""] * num_samples for _ in range(num_prompts)]
    tokens = 0
    for request, output in zip(requests, outputs):
        completion = output.outputs[0]
        text = truncate_at_stop(completion.text) if stop_at_endmodule else completion.text
        text = truncate_at_fence(text) if stop_at_fence else text
        tokens += len(completion.token_ids)
        for j in request.sample_indices:
            results[request.prompt_index][j] = text
    return results, tokens


def _make_engine(target: Weights, *, tensor_parallel_size: int, seed: int, settings: EngineSettings,
                 max_model_len: int):
    """The vLLM engine for ``target`` (the only place one is built; tests replace this function), once
    the GPU memory it will take is free."""
    import vllm

    release_cuda_cache()  # memory the HF model of an earlier stage left in torch's cache
    wait_for_free_gpu_memory(settings.gpu_memory_utilization, settings.free_memory_wait_s,
                             devices=tensor_parallel_size, what="the vLLM engine (vllm_gpu_memory_utilization)")
    lora = {"enable_lora": True, "max_lora_rank": target.lora_rank, "max_loras": 1} if target.adapter else {}
    quant = {"quantization": "bitsandbytes"} if settings.base == "nf4" else {}
    return vllm.LLM(model=target.model, tensor_parallel_size=tensor_parallel_size, seed=seed, dtype="auto",
                    gpu_memory_utilization=settings.gpu_memory_utilization, max_model_len=max_model_len,
                    **lora, **quant)


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



if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
