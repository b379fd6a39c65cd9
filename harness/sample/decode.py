"""The project's decode loop: a batch of left-padded prompts, one token per step, rows that are done
dropped from the batch, and a KV cache that is allocated once and attended over its filled part only.

Why not ``model.generate``: on the CPU default (a 2.2M-parameter model, 1 thread) a step is bound by
reading the KV cache, and ``generate`` reads more of it than a step needs. Its static cache attends
over every preallocated position (prompt + max_new_tokens) from the first step on; its dynamic cache
attends over the filled part but copies the whole cache (``torch.cat``) at every step; and both keep
computing rows that stopped long ago (a batch runs until its longest completion ends). The loop here
keeps one buffer per layer (no copies while decoding), passes views of its filled prefix to attention,
and compacts the batch (buffers, mask, positions, per-row generators) whenever rows finish.

It drives any Hugging Face causal LM that takes ``past_key_values`` as a ``transformers.Cache`` and
``position_ids`` (Llama-style models, with or without PEFT adapters, 4-bit too); models whose caches
need other layer types (sliding windows, linear attention) should use ``decoder: generate``. The token
choice is the caller's (``choose``: greedy or the per-row seeded draw of ``harness.sample.sampling``), so a
completion's random stream is the same as under ``generate``; its text is the same too unless a
different batch shape changes a logit by a rounding error that flips a near-tie.
"""
from __future__ import annotations

from typing import Callable

from transformers.cache_utils import Cache, DynamicLayer


class PrefixLayer(DynamicLayer):
    """One layer's KV cache: buffers for ``capacity`` positions, filled in place; ``update`` returns
    views of the filled prefix, so attention reads only what has been written."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states, value_states) -> None:
        batch, heads, _, key_dim = key_states.shape
        self.device = key_states.device
        self.key_buffer = key_states.new_empty((batch, heads, self.capacity, key_dim))
        self.value_buffer = value_states.new_empty((batch, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"PrefixLayer: {end} positions do not fit its capacity of {self.capacity}")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self._refresh_views()
        return self.keys, self.values

    def _refresh_views(self) -> None:
        self.keys = self.key_buffer[:, :, :self.length]
        self.values = self.value_buffer[:, :, :self.length]

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices) -> None:
        """Keep only the rows ``indices`` (one copy of the buffers)."""
        if self.is_initialized:
            self.key_buffer = self.key_buffer[indices]
            self.value_buffer = self.value_buffer[indices]
            self._refresh_views()


def prefix_cache(num_layers: int, capacity: int) -> Cache:
    """A cache of ``num_layers`` PrefixLayers."""
    return Cache(layers=[PrefixLayer(capacity) for _ in range(num_layers)])


def decode(model, input_ids, attention_mask, *, max_new_tokens: int, eos_ids: list[int],
           choose: Callable, stop: Callable | None = None, on_drop: Callable | None = None) -> list[list[int]]:
    """Generated token ids per row of the left-padded batch (``input_ids``, ``attention_mask``).

    ``choose(logits)`` returns the next token of each active row from its last-position logits
    [rows, vocab]; ``stop(generated)`` returns a bool per active row from the ids generated so far
    [rows, steps] (e.g. a stop text); ``on_drop(keep)`` is told which active rows stay when some are
    dropped (so per-row state such as generators can follow). A row is done after an EOS id, a stop, or
    ``max_new_tokens`` tokens; its list holds every id it generated, the EOS id included.
    """
    import torch

    rows = input_ids.shape[0]
    cache = prefix_cache(model.config.num_hidden_layers, input_ids.shape[1] + max_new_tokens)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    mask = attention_mask
    active = torch.arange(rows, device=input_ids.device)  # the original row of each active row
    generated = input_ids.new_empty((rows, 0))
    outputs: list[list[int]] = [[] for _ in range(rows)]
    eos = torch.tensor(eos_ids or [-1], device=input_ids.device)
    step_ids, step_positions = input_ids, positions
    cache_kwarg = {cache_keyword(model): cache}
    for _ in range(max_new_tokens):
        logits = model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions,
                       use_cache=True, logits_to_keep=1, **cache_kwarg).logits[:, -1, :]
        tokens = choose(logits)
        generated = torch.cat([generated, tokens[:, None]], dim=1)
        done = torch.isin(tokens, eos)
        if stop is not None:
            done |= stop(generated)
        if bool(done.any()):
            _record(outputs, active[done], generated[done])
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() == 0:
                return outputs
            cache.batch_select_indices(keep)
            active, generated, tokens = active[keep], generated[keep], tokens[keep]
            mask, step_positions = mask[keep], step_positions[keep]
            if on_drop is not None:
                on_drop(keep)
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        step_ids, step_positions = tokens[:, None], step_positions[:, -1:] + 1
    _record(outputs, active, generated)
    return outputs


def cache_keyword(model) -> str:
    """The forward argument that takes the cache: ``cache`` from transformers 5.2x on (``past_key_values``
    deprecated), ``past_key_values`` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps the model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _record(outputs: list[list[int]], rows, generated) -> None:
    for row, ids in zip(rows.tolist(), generated.tolist()):
        outputs[row] = ids
