"""One ranking-loss training step in a fresh process, for `harness.bench.ranking_memory` (run it as
``python -m harness.bench.ranking_step SPEC.json OUT.json``; the parent starts one per variant).

Runs the trainer's own gradient code (`harness.objective.trainer.split_backward` for ``split``, ``joint_loss``
then ``backward`` for ``joint``) on one group of K random-token candidates. ``train`` says what is
trained: ``lora`` (peft LoRA adapters on every linear layer but the output layer, as the paper preset
trains; the base weights, embedding and output layer included, frozen; LoRA dropout 0, as the trainer
sets it under the two-pass gradient) or ``full`` (every weight). Writes JSON: resident memory after
set-up, the peak resident memory of the measured step, the time of a cold and a warm step, and the
measured step's gradients of the trained weights (saved to ``grads_path``, after the peak was read).

Set-up = model, AdamW state, gradient buffers, and one cold step of the same batch (its gradients
zeroed), so one-time allocations (thread pools, kernel caches, allocator arenas) belong to set-up.
The peak is then ``VmHWM`` after resetting it (``/proc/self/clear_refs`` = 5, Linux >= 4.0): the
high-water mark of this process during the warm step alone. Where the reset is refused, the cold step
is measured with ``getrusage`` instead (``hwm_reset: false``; one-time allocations then count as
activations, and a set-up peak above the step's hides it: ``peak_hidden_by_setup``). The parent sets
``MALLOC_MMAP_THRESHOLD_`` so freed large blocks go back to the OS and resident memory tracks live
tensors (torch's CPU allocations are invisible to tracemalloc, hence a fresh process per variant).
"""
from __future__ import annotations

import json
import resource
import sys
import tempfile
import time

from harness.model.models import ModelConfig
from harness.objective.ranking import RankingCollator
from harness.objective.trainer import RankingConfig, joint_loss, split_backward


def rss_mib(field: str = "VmRSS") -> float:
    """``field`` (VmRSS: resident now; VmHWM: its high-water mark) of this process, MiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current resident memory; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def build_batch(spec: dict):
    """One group of K candidates (the last is the reference), random tokens, every response the same
    length, through the trainer's own collator."""
    import torch

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
    """The bench model; under ``train: lora`` wrapped in LoRA adapters (the base frozen)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=spec["vocab"], hidden_size=spec["hidden"],
                         intermediate_size=spec["intermediate"], num_hidden_layers=spec["layers"],
                         num_attention_heads=spec["heads"], num_key_value_heads=spec["heads"],
                         max_position_embeddings=spec["seq_len"],
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=spec["tied"])
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM(config)
    if spec["train"] == "full":
        return model
    from peft import LoraConfig, get_peft_model

    defaults = ModelConfig(name_or_path="bench")
    lora = LoraConfig(r=defaults.lora_r, lora_alpha=defaults.lora_alpha, lora_dropout=0.0,
                      target_modules=defaults.target_modules, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    for name, param in model.named_parameters():  # peft initialises B = 0: give the adapters a gradient
        if "lora_B" in name:                         # path into A, so every trained weight is compared
            torch.nn.init.normal_(param, std=0.02)
    return model


def step(model, batch, args, split: bool) -> None:
    if split:
        split_backward(model, batch, args, scale=1.0, backward=lambda t: t.backward())
    else:
        joint_loss(model, batch, args)[0].backward()


def main(argv: list[str]) -> int:
    import torch

    with open(argv[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    torch.set_num_threads(spec["threads"])
    model = build_model(spec)
    model.train()
    batch = build_batch(spec)
    split = spec["variant"] == "split"
    with tempfile.TemporaryDirectory() as tmp:
        args = RankingConfig(output_dir=tmp, alpha=1.0, margin=spec["margin"], length_normalize=True,
                             split_gradients=split, forward_chunk_size=1, use_cpu=True, report_to=[],
                             logprob_chunk_tokens=spec["chunk_tokens"])
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.0)
    for p in trained:  # gradient buffers and AdamW state belong to set-up, not to the step
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradients: allocates the state, leaves the weights unchanged
    hwm_reset = reset_peak()
    before_cold = rss_mib()
    seconds = []
    if hwm_reset:
        start = time.monotonic()
        step(model, batch, args, split)  # the cold step belongs to set-up
        seconds.append(time.monotonic() - start)
        optimizer.zero_grad(set_to_none=False)
        reset_peak()
    setup_rss, setup_peak = rss_mib(), (rss_mib("VmHWM") if hwm_reset else peak_mib())
    start = time.monotonic()
    step(model, batch, args, split)
    seconds.append(time.monotonic() - start)
    peak = rss_mib("VmHWM") if hwm_reset else peak_mib()  # before saving: the copy is not the step's
    torch.save({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
               spec["grads_path"])
    out = {"variant": spec["variant"], "train": spec["train"], "setup_rss_mib": setup_rss,
           "rss_before_cold_step_mib": before_cold,
           "setup_peak_mib": setup_peak, "peak_mib": peak, "step_seconds": seconds, "hwm_reset": hwm_reset,
           "peak_hidden_by_setup": not hwm_reset and peak <= setup_peak,
           "parameters": sum(p.numel() for p in model.parameters()),
           "trained_parameters": sum(p.numel() for p in trained)}
    with open(argv[1], "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
