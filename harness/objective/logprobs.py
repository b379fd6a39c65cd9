"""Per-token log-probabilities of responses, in float32, for the ranking loss (harness.objective.ranking, harness.objective.trainer).

``sequence_logprobs`` is the entry point. Two paths:

* whole logits (``chunk_tokens=0`` or an output layer that cannot be chunked): the model returns the
  logits of the response positions and ``token_logprobs`` reduces them in float32.
* chunked (``chunk_tokens > 0`` and a plain ``nn.Linear`` output layer, ``chunkable_head``): the model
  returns its final hidden states and ``HeadLogprobs``, an autograd function, turns ``chunk_tokens``
  positions at a time into float32 logits, gathers the target's logit and takes the log-sum-exp *in
  place*, so one [chunk, V] buffer is alive at a time. Nothing vocabulary-sized is saved for backward
  (only the hidden states, the targets and one log-sum-exp per position); backward recomputes each
  chunk's logits into one buffer and turns them, again in place, into the gradient
  g * (onehot(target) - softmax). The output layer's weight gradient (when it is trained) is summed over
  the chunks into one V x H buffer with ``addmm_``, instead of one V x H temporary per chunk summed by
  autograd. The same idea as fused linear cross-entropy kernels (Liger), written in plain torch.

The weight is cast to float32 once per forward and once per backward (a no-op for float32 weights; a
V x H float32 copy, transient, for a bf16 model). Gradients equal autograd's on the unchunked
computation (tests/test_trainer.py, tests/test_ranking.py).
"""
from __future__ import annotations

import torch

# Config attributes of models whose logits are more than lm_head(hidden): the chunked path skips them.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def token_logprobs(logits, targets):
    """log P(target) per position, in float32 (or wider), one row at a time so that no second
    full-vocabulary tensor is ever held for the whole batch (logits: [B, T, V], targets: [B, T])."""
    dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16/fp16 logits: reduce in fp32
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1).to(dtype)
    norms = torch.stack([torch.logsumexp(row.to(dtype), dim=-1) for row in logits])
    return picked - norms


def _logits(hidden, weight32, bias32):
    """Float32 logits [n, V] of a chunk of hidden states [n, H]."""
    return torch.nn.functional.linear(hidden.to(weight32.dtype), weight32, bias32)


def _no_autocast(tensor):
    """A region where autocast is off on ``tensor``'s device (it would run the float32 matmuls in bf16)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def _float32(tensor):
    if tensor is None:
        return None
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


class HeadLogprobs(torch.autograd.Function):
    """log P(target) per position from hidden states [N, H] through an output layer (weight [V, H],
    bias [V] or None), ``chunk`` positions at a time, one [chunk, V] float32 buffer alive at a time."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk: int):
        with _no_autocast(hidden):  # float32 logits under a bf16 autocast too (the GPU trainer's)
            return HeadLogprobs._forward(ctx, hidden, weight, bias, targets, chunk)

    @staticmethod
    def _forward(ctx, hidden, weight, bias, targets, chunk: int):
        weight32, bias32 = _float32(weight), _float32(bias)
        picked = torch.empty(targets.shape[0], dtype=weight32.dtype, device=hidden.device)
        lse = torch.empty_like(picked)
        for start in range(0, targets.shape[0], chunk):
            stop = start + chunk
            logits = _logits(hidden[start:stop], weight32, bias32)
            picked[start:stop] = logits.gather(1, targets[start:stop, None]).squeeze(1)
            top = logits.amax(dim=1, keepdim=True)
            lse[start:stop] = logits.sub_(top).exp_().sum(dim=1).log_().add_(top.squeeze(1))
            del logits
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.chunk = chunk
        return picked - lse

    @staticmethod
    def backward(ctx, grad_out):
        with _no_autocast(grad_out):  # the two-pass gradient runs backward inside the autocast region
            return HeadLogprobs._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        weight32, bias32 = _float32(weight), _float32(bias)
        grad_out = grad_out.to(weight32.dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros_like(weight32) if need_weight else None
        grad_bias = torch.zeros_like(bias32) if need_bias else None
        for start in range(0, targets.shape[0], ctx.chunk):
            stop = start + ctx.chunk
            g = grad_out[start:stop, None]
            # d logp / d logits = onehot(target) - softmax, times the incoming gradient, in place
            grad_logits = _logits(hidden[start:stop], weight32, bias32)
            grad_logits.sub_(lse[start:stop, None]).exp_().mul_(-g)
            grad_logits.scatter_add_(1, targets[start:stop, None], g)
            if need_hidden:
                grad_hidden[start:stop] = (grad_logits @ weight32).to(hidden.dtype)
            if need_weight:
                grad_weight.addmm_(grad_logits.T, hidden[start:stop].to(weight32.dtype))
            if need_bias:
                grad_bias.add_(grad_logits.sum(dim=0))
            del grad_logits
        grad_weight = None if grad_weight is None else grad_weight.to(weight.dtype)
        grad_bias = None if grad_bias is None else grad_bias.to(bias.dtype)
        return grad_hidden, grad_weight, grad_bias, None, None


def chunked_token_logprobs(hidden, head, targets, chunk_tokens: int):
    """log P(target) per position from hidden states [B, T, H] through the output layer ``head``
    (``HeadLogprobs``): float32, never more than ``chunk_tokens`` positions' logits alive."""
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat = HeadLogprobs.apply(flat_hidden, head.weight, head.bias, targets.reshape(-1), chunk_tokens)
    return flat.reshape(targets.shape)


def chunkable_head(model):
    """The output layer when log-probabilities may be computed from hidden states in chunks: a plain
    ``nn.Linear`` with its full weight present (not a LoRA or quantised wrapper, not a ZeRO-3 shard) on
    a model whose logits are exactly that layer's output. None otherwise (the full logits are used)."""
    unwrapped = getattr(model, "module", model)  # DDP
    get = getattr(unwrapped, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if type(head) is not torch.nn.Linear or head.weight.numel() == 0 or hasattr(head.weight, "ds_id"):
        return None
    config = getattr(unwrapped, "config", None)
    if any(getattr(config, name, None) not in (None, 0, 1, 1.0) for name in LOGIT_TRANSFORMS):
        return None
    return head


def sequence_logprobs(model, input_ids, attention_mask, response_mask, chunk_tokens: int = 0):
    """Sum of response-token log-probabilities (float32) and number of response tokens, per row.

    Only positions from the first response token on are turned into logits: the prompt's logits are
    never materialised. With ``chunk_tokens > 0`` and a plain output layer (``chunkable_head``) the
    model returns only its final hidden states and the log-softmax runs ``chunk_tokens`` positions at a
    time (``chunked_token_logprobs``), so activation memory holds no [T, V] tensor per candidate;
    otherwise the model's logits are reduced in float32 (``token_logprobs``).
    """
    if not bool(response_mask.any(dim=1).all()):
        raise ValueError("every candidate needs at least one response token")
    first = int(response_mask.float().argmax(dim=1).min())  # earliest response token in the batch
    keep = input_ids.shape[1] - first + 1
    targets = input_ids[:, first:]
    head = chunkable_head(model) if chunk_tokens > 0 else None
    if head is not None:
        out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1, use_cache=False,
                    output_hidden_states=[-1])
        hidden = out.hidden_states[-1][:, first - 1:-1]  # the final (normed) hidden states, as lm_head sees
        logp = chunked_token_logprobs(hidden, head, targets, chunk_tokens)
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep,
                       use_cache=False).logits[:, :-1]
        logp = token_logprobs(logits, targets)
    mask = response_mask[:, first:].to(logp.dtype)
    return (logp * mask).sum(dim=1), mask.sum(dim=1)
