"""Sample Verilog completions from a Hugging Face causal LM: batched decoding (the project's decode loop,
harness.sample.decode, or transformers' `generate` with `decoder: generate`) with temperature and nucleus
(top-p) sampling, a stop rule, and seeds that make results reproducible.

Stop rules: evaluation stops each completion at its first `endmodule` (`stop_at_endmodule`, the
default). Training candidates follow the paper (`training_sampling_config`): they run until EOS, a
closing code fence (`stop_at_fence`: the second ``` of the completion) or the token limit, so a helper
module written before the answer is kept and the multi-module score applies to it.

Reproducibility: every completion (prompt index i, sample index j) draws its tokens from its own
torch.Generator seeded from (seed, i, j) (SeededSampler: called by the decode loop, or a logits
processor whose drawn token `generate` then picks greedily; both draw the same tokens). So:
- the same prompts, config and model give the same completions on the same machine;
- the random stream of a completion does not depend on batch_size or on which other completions share
  its batch; the text is then identical too unless padding changes the logits by a rounding error that
  flips a near-tie (left padding alters the floating-point reduction order on some kernels);
- completion (i, j) depends on the prompt's index i, not on its text: reorder prompts, get new samples.
temperature=0 means greedy decoding (no randomness; num_samples copies of one answer).

harness.sample.decode is imported when the decode loop runs: it subclasses transformers' cache classes
when imported, and this module must import without transformers (the vLLM sampler, `make eval`'s model
resolution and the loop read SamplingConfig and the text rules from it; torch and transformers are
imported inside the functions that sample).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from harness.model.models import load_model, load_tokenizer
from harness.model.prompting import format_prompt
from verilog_tools.errors import UserError

STOP_TEXT = "endmodule"
FENCE = "```"


@dataclass
class SamplingConfig:
    """How many completions to draw per prompt, and how."""

    num_samples: int = field(default=1, metadata={"help": "completions per prompt (n in pass@k; K-1 in training)"})
    temperature: float = field(default=0.8, metadata={"help": "softmax temperature; 0 = greedy decoding"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass in (0, 1]; 1 disables it"})
    max_new_tokens: int = field(default=512, metadata={"help": "generated tokens per completion at most"})
    batch_size: int = field(default=8, metadata={"help": "completions generated together in one batch"})
    seed: int = field(default=0, metadata={"help": "base seed; completion (i, j) uses a seed derived from it"})
    decoder: str = field(default="loop", metadata={
        "help": "loop: the project's decode loop (harness.sample.decode: KV cache read over its filled part, finished "
                "rows dropped); generate: transformers' generate() (for models the loop cannot drive)"})
    kv_cache: str = field(default="static", metadata={"help": "KV cache of generate(): static | dynamic "
                                                              "(decoder: generate only)"})
    stop_at_endmodule: bool = field(
        default=True, metadata={"help": "stop each completion after its first `endmodule` and cut text after it"})
    stop_at_fence: bool = field(
        default=False, metadata={"help": "stop each completion after the code fence that closes its first "
                                         "fenced block (the second ```) and cut text after it"})

    def __post_init__(self) -> None:
        if self.decoder not in ("loop", "generate"):
            raise UserError(f"SamplingConfig.decoder must be 'loop' or 'generate', got {self.decoder!r}")
        if self.kv_cache not in ("static", "dynamic"):
            raise UserError(f"SamplingConfig.kv_cache must be 'static' or 'dynamic', got {self.kv_cache!r}")
        for name in ("num_samples", "max_new_tokens", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise UserError(f"SamplingConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.temperature < 0:
            raise UserError(f"SamplingConfig.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise UserError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")


def completion_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """A 63-bit seed for completion (prompt_index, sample_index), well mixed so nearby ids do not collide."""
    digest = hashlib.sha256(f"{seed}:{prompt_index}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def truncate_at_stop(text: str, stop: str = STOP_TEXT) -> str:
    """`text` up to and including the first `stop`; unchanged when `stop` does not occur."""
    at = text.find(stop)
    return text if at < 0 else text[: at + len(stop)]


def truncate_at_fence(text: str) -> str:
    """`text` up to and including its second ``` (the fence closing the first block); else unchanged."""
    first = text.find(FENCE)
    second = text.find(FENCE, first + len(FENCE)) if first >= 0 else -1
    return text if second < 0 else text[: second + len(FENCE)]


def training_sampling_config(**kwargs) -> SamplingConfig:
    """The paper's rule for training candidates: until EOS, a closing fence or the token limit."""
    return SamplingConfig(**{**kwargs, "stop_at_endmodule": False, "stop_at_fence": True})


def record_stats(stats: dict, *, completions: int, tokens: int, seconds: float) -> dict:
    """Fill ``stats`` with a sampler's measured throughput (the sample_stats.json fields)."""
    stats.update(completions=completions, tokens=tokens, seconds=round(seconds, 6),
                 tokens_per_s=round(tokens / seconds, 2) if seconds > 0 else None)
    return stats


def sample_completions(model, tokenizer, prompts: list[str], cfg: SamplingConfig,
                       progress: bool = True, stats: dict | None = None) -> list[list[str]]:
    """cfg.num_samples completions for each formatted prompt (see harness.model.prompting.format_prompt).

    Returns one list per prompt, in prompt order. Completions are the generated text only, special tokens
    removed, cut after the first `endmodule` when cfg.stop_at_endmodule. The model is put in eval mode
    for sampling and given back in the mode it came in. ``stats``, when given, receives completions,
    tokens (generated, padding excluded), seconds and tokens_per_s.
    """
    import torch
    from tqdm import tqdm

    units = [(i, j) for i in range(len(prompts)) for j in range(cfg.num_samples)]
    results: list[list[str]] = [[""] * cfg.num_samples for _ in prompts]
    was_training = model.training  # the loop may sample from the model it is about to train
    model.eval()
    bar = tqdm(total=len(units), desc="sampling", unit="completion", disable=not progress)
    tokens, started = 0, time.monotonic()
    for batch_index, start in enumerate(range(0, len(units), cfg.batch_size)):
        batch = units[start: start + cfg.batch_size]
        # Nothing here draws from the global RNG, but seeding it keeps any model-internal randomness fixed.
        torch.manual_seed(cfg.seed + batch_index)
        texts, produced = _generate_batch(model, tokenizer, [prompts[i] for i, _ in batch],
                                          [completion_seed(cfg.seed, i, j) for i, j in batch], cfg)
        for (i, j), text in zip(batch, texts):
            results[i][j] = text
        tokens += produced
        bar.update(len(batch))
        bar.set_postfix(tok_s=f"{tokens / max(time.monotonic() - started, 1e-9):.1f}")
    bar.close()
    model.train(was_training)
    if stats is not None:
        record_stats(stats, completions=len(units), tokens=tokens, seconds=time.monotonic() - started)
    return results


def _generate_batch(model, tokenizer, prompts: list[str], seeds: list[int],
                    cfg: SamplingConfig) -> tuple[list[str], int]:
    """Completions for one batch, and the number of tokens generated (padding excluded)."""
    import torch

    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    prompt_len = enc["input_ids"].shape[1]
    sampler = SeededSampler(seeds, cfg.temperature, cfg.top_p) if cfg.temperature > 0 else None
    stops, stop_len = [], 0 if cfg.decoder == "loop" else prompt_len  # the loop's stops see generated ids only
    if cfg.stop_at_endmodule:
        stops.append(StopAfterText(tokenizer, stop_len, STOP_TEXT))
    if cfg.stop_at_fence:
        stops.append(StopAfterFence(tokenizer, stop_len))
    with torch.inference_mode():
        if cfg.decoder == "loop":
            generated = _decode_loop(model, enc, sampler, stops, cfg, _eos_ids(model, tokenizer))
        else:
            generated = _decode_generate(model, tokenizer, enc, sampler, stops, cfg)[:, prompt_len:].tolist()
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    if cfg.stop_at_endmodule:
        texts = [truncate_at_stop(t) for t in texts]
    if cfg.stop_at_fence:
        texts = [truncate_at_fence(t) for t in texts]
    pad = tokenizer.pad_token_id
    return texts, sum(len(ids) if pad is None else sum(1 for t in ids if t != pad) for ids in generated)


def _decode_loop(model, enc, sampler, stops, cfg: SamplingConfig, eos_ids: list[int]) -> list[list[int]]:
    """harness.sample.decode's loop with the seeded draw (or greedy) and the stop criteria."""
    from harness.sample.decode import decode  # imported here: see the module docstring

    def choose(logits):
        return logits.argmax(-1) if sampler is None else sampler.draw(logits)

    def stop(generated):
        done = stops[0](generated, None)
        for criterion in stops[1:]:
            done |= criterion(generated, None)
        return done

    return decode(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=cfg.max_new_tokens,
                  eos_ids=eos_ids, choose=choose, stop=stop if stops else None,
                  on_drop=None if sampler is None else sampler.keep)


def _decode_generate(model, tokenizer, enc, sampler, stops, cfg: SamplingConfig):
    """transformers' generate(): the SeededSampler as a logits processor, greedy picks its token."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    gen_cfg = GenerationConfig(
        do_sample=False,  # SeededSampler has already chosen the token; greedy just takes it
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=_eos_ids(model, tokenizer),
        # A preallocated KV cache: the dynamic one re-concatenates every layer's cache at every step
        # (about a fifth of the CPU time of a tiny model's generation, measured).
        cache_implementation=None if cfg.kv_cache == "dynamic" else cfg.kv_cache,
    )
    processors = LogitsProcessorList([sampler] if sampler is not None else [])
    return model.generate(**enc, generation_config=gen_cfg, logits_processor=processors,
                          stopping_criteria=StoppingCriteriaList(stops))


def _eos_ids(model, tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's EOS plus any the model's generation config lists (instruct models
    often end a turn with a token other than the tokenizer's EOS)."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    return sorted({i for i in ids if i is not None})


class SeededSampler:
    """Logits processor that samples each row from its own generator (temperature, then top-p) and
    returns scores where only the drawn token is finite, so greedy selection picks it."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def draw(self, scores):
        """One token id per row of ``scores`` [rows, vocab], each from its row's generator."""
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            probs = _top_p_filter(probs, self.top_p)
        # Generators live on the CPU so draws are identical whatever device the model runs on.
        probs = probs.cpu()
        chosen = torch.cat([torch.multinomial(row, 1, generator=g) for row, g in zip(probs, self.generators)])
        return chosen.to(scores.device)

    def keep(self, rows) -> None:
        """Only ``rows`` (indices into the current rows) go on drawing (harness.sample.decode drops the rest)."""
        self.generators = [self.generators[i] for i in rows.tolist()]

    def __call__(self, input_ids, scores):
        import torch

        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, self.draw(scores)[:, None], 0.0)
        return out


def _top_p_filter(probs, top_p: float):
    """Zero the tail of each row outside the smallest set of tokens whose mass reaches top_p."""
    import torch

    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    sorted_probs[mass_before >= top_p] = 0.0  # the most likely token always survives (mass_before = 0)
    return torch.zeros_like(probs).scatter_(1, order, sorted_probs)


class StopAfterText:
    """Stopping criterion: a row is done once its generated text contains `text` (e.g. `endmodule`).

    Only the last few generated tokens are decoded each step; the window is wide enough to hold `text`
    even if every character were its own token, plus one for a token that starts before it.
    """

    def __init__(self, tokenizer, prompt_len: int, text: str):
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.text = text
        self.window = len(text) + 1

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        tail = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.window):]
        decoded = self.tokenizer.batch_decode(tail, skip_special_tokens=True)
        return torch.tensor([self.text in t for t in decoded], dtype=torch.bool, device=input_ids.device)


class StopAfterFence(StopAfterText):
    """Stopping criterion: a row is done once its generated text holds two ``` (a fenced block closed).
    The whole generated text is decoded only on steps whose last tokens contain a backtick."""

    def __init__(self, tokenizer, prompt_len: int):
        super().__init__(tokenizer, prompt_len, FENCE)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        tail = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.window):]
        done = []
        for row, recent in zip(input_ids, self.tokenizer.batch_decode(tail, skip_special_tokens=True)):
            text = self.tokenizer.decode(row[self.prompt_len:], skip_special_tokens=True) if "`" in recent else ""
            done.append(text.count(FENCE) >= 2)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def generate_samples_for_problems(problems, model_cfg, sampling_cfg: SamplingConfig, *,
                                  adapter_path=None, progress: bool = True) -> list[dict]:
    """samples.jsonl rows {task_id, completion_id, completion} for `problems` (for `make eval MODEL=...`).

    The instruction of each problem is tasks.prompts.build_prompt(problem), wrapped by format_prompt, as
    in training.
    """
    from tasks.prompts import build_prompt

    tokenizer = load_tokenizer(model_cfg)
    model = load_model(model_cfg, adapter_path=adapter_path, trainable=False)
    prompts = [format_prompt(tokenizer, build_prompt(p)) for p in problems]
    return sample_rows(problems, sample_completions(model, tokenizer, prompts, sampling_cfg, progress=progress))


def sample_rows(problems, completions: list[list[str]]) -> list[dict]:
    """samples.jsonl rows {task_id, completion_id, completion}: completions[i] are problems[i]'s."""
    return [{"task_id": p.task_id, "completion_id": j, "completion": text}
            for p, texts in zip(problems, completions) for j, text in enumerate(texts)]
