"""One ranking-loss training step in a fresh process, for `harness.bench.ranking_memory` (run it as
``python -m harness.bench.ranking_step SPEC.json OUT.json``; the parent starts one per variant).

Runs the trainer's own gradient code (`harness.trainer.split_backward` for ``split``, ``joint_loss``
then ``backward`` for ``joint``) on one group of K random-token candidates and writes JSON: resident
memory after set-up (model, AdamW state and gradient buffers allocated), the process's peak resident
memory during the first step, the time of each of two steps (the second is warm), and the first
step's gradients (saved to ``grads_path``, after the peak was read).

Peak memory is ``getrusage(RUSAGE_SELF).ru_maxrss`` of this process alone, which is why every variant
gets a fresh one (torch's CPU allocations are invisible to tracemalloc). The parent sets
``MALLOC_MMAP_THRESHOLD_`` so freed large blocks go back to the OS and resident memory tracks live
tensors. If set-up itself reached a higher peak than the steps, the step's peak is hidden; that is
reported (``peak_hidden_by_setup``), not guessed around.
"""
from __future__ import annotations

import json
import resource
import sys
import tempfile
import time


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def build_batch(spec: dict):
    """One group of K candidates (the last is the reference), random tokens, every response the same
    length, through the trainer's own collator."""
    import torch

    from harness.ranking import RankingCollator

    gen = torch.Generator().manual_seed(spec["seed"])
    prompt = torch.randint(3, spec["vocab"], (spec["prompt_tokens"],), generator=gen).tolist()
    scores = spec["scores"]
    cands = []
    for i, score in enumerate(scores):
        response = torch.randint(3, spec["vocab"], (spec["seq_len"] - len(prompt),), generator=gen).tolist()
        cands.append({"input_ids": prompt + response, "response_start": len(prompt), "score": score,
                      "source": "reference" if i == len(scores) - 1 else "model"})
    return RankingCollator(pad_token_id=0)([{"id": "bench", "candidates": cands}])


def build_model(spec: dict):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=spec["vocab"], hidden_size=spec["hidden"],
                         intermediate_size=spec["intermediate"], num_hidden_layers=spec["layers"],
                         num_attention_heads=spec["heads"], num_key_value_heads=spec["heads"],
                         max_position_embeddings=spec["seq_len"],
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=spec["tied"])
    torch.manual_seed(spec["seed"])
    return LlamaForCausalLM(config)


def main(argv: list[str]) -> int:
    import torch

    from harness.trainer import RankingConfig, joint_loss, split_backward

    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    torch.set_num_threads(spec["threads"])
    model = build_model(spec)
    model.train()
    batch = build_batch(spec)
    with tempfile.TemporaryDirectory() as tmp:
        args = RankingConfig(output_dir=tmp, alpha=1.0, margin=spec["margin"], length_normalize=True,
                             split_gradients=spec["variant"] == "split", forward_chunk_size=1, use_cpu=True,
                             report_to=[])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    for p in model.parameters():  # gradient buffers and AdamW state belong to set-up, not to the step
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradients: allocates the state, leaves the weights unchanged
    setup_rss, setup_peak = rss_mib(), peak_mib()
    seconds = []
    for step in range(2):
        optimizer.zero_grad(set_to_none=False)
        start = time.monotonic()
        if spec["variant"] == "split":
            split_backward(model, batch, args, scale=1.0, backward=lambda t: t.backward())
        else:
            joint_loss(model, batch, args)[0].backward()
        seconds.append(time.monotonic() - start)
        if step == 0:
            peak = peak_mib()  # before saving: the copy of the gradients is not the step's memory
            torch.save({n: p.grad.detach().clone() for n, p in model.named_parameters()}, spec["grads_path"])
        optimizer.step()
    out = {"variant": spec["variant"], "setup_rss_mib": setup_rss, "setup_peak_mib": setup_peak,
           "peak_mib": peak, "step_seconds": seconds, "peak_hidden_by_setup": peak <= setup_peak,
           "parameters": sum(p.numel() for p in model.parameters())}
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
