"""Benchmark 3: memory and time of one ranking-loss step, two-pass (``split_gradients=True``, the
project's way) against the joint computation (all K candidates in one graph, the obvious way).

Each variant runs in a fresh process (`harness.bench.ranking_step`), one after the other, on the same
weights and tokens; the gradients of the two must be equal. Both use the trainer's float32 chunked
log-softmax at the default ``logprob_chunk_tokens`` (`harness.objective.logprobs`). Activation memory = peak
resident memory of a warm step minus resident memory after set-up (model, AdamW state, gradient
buffers, one cold step). The margin is set so that every hinge is active, so the two-pass path re-runs
all K candidates: its worst case in time.

What is trained. The goal (about 1/K) is checked on ``lora``: the setting the two-pass gradient is
used in (the paper preset's QLoRA: adapters on every linear layer, base weights with the embedding and
the output layer frozen). ``full`` (every weight trained; the tiny-cpu preset trains so, with the joint
computation) is reported beside it: there the output layer's and the embedding's V x H weight
gradients are computed during the step (one buffer each, summed over chunks), memory that does not
scale with K and is no activation, so the ratio is reported, not held to the goal.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.bench.common import BenchResult, Goal, Row
from harness.config import TrainConfig, load_config
from harness.model.tiny_model import TinyModelConfig

NAME = "ranking_memory"
TITLE = "ranking-loss step: two-pass vs joint, activation memory and time"
# "tiny": the tiny-cpu preset's model (shape read from the preset, see `shape`); "mid": a mid-size
# Llama whose 32k-vocabulary logits dominate memory, as a real model's do.
CONFIGS = {
    "tiny": {"seq_len": 512, "prompt_tokens": 64, "tied": True},
    "mid": {"vocab": 32000, "hidden": 256, "layers": 2, "heads": 4, "intermediate": 688, "seq_len": 1024,
            "prompt_tokens": 128, "tied": False},
    "micro": {"vocab": 512, "hidden": 32, "layers": 1, "heads": 2, "intermediate": 64, "seq_len": 64,
              "prompt_tokens": 8, "tied": True},  # tests only
}
SCALES = {
    "full": {"configs": ["tiny", "mid"], "k": 4, "trains": ["lora", "full"]},
    "small": {"configs": ["tiny", "mid"], "k": 4, "trains": ["lora"]},
    "tiny": {"configs": ["micro"], "k": 4, "trains": ["lora"]},
}
GOAL_TRAIN = "lora"        # the setting the goal is checked on (see the module docstring)
GRAD_TOLERANCE = 1e-5      # as tests/test_trainer.py
GOAL_SLACK = 1.25          # "about 1/K": the two-pass activation memory at most 1.25 x naive / K


def shape(config: str) -> dict:
    """The model shape and sequence layout of ``config``."""
    if config != "tiny":
        return dict(CONFIGS[config])
    cfg = load_config("tiny-cpu")
    return {"vocab": TinyModelConfig().vocab_size, "hidden": cfg.tiny_hidden_size, "layers": cfg.tiny_layers,
            "heads": cfg.tiny_heads, "intermediate": cfg.tiny_intermediate_size, **CONFIGS["tiny"]}


def run_variant(spec: dict, work_dir: Path) -> dict:
    """One variant in a fresh process; its JSON report."""
    name = f"{spec['config']}-{spec['train']}-{spec['variant']}"
    spec_path, out_path = work_dir / f"{name}.spec.json", work_dir / f"{name}.out.json"
    spec = {**spec, "grads_path": str(work_dir / f"{name}.grads.pt")}
    spec_path.write_text(json.dumps(spec))
    # Fixed mmap threshold (64 KiB, below the tiny model's 384 KiB activations): tensors are mmapped and
    # go back to the OS when freed, so resident memory follows the live tensors instead of glibc's free
    # lists (at 1 MiB the tiny model's activations stayed resident after the cold step: the warm step
    # then reused them and its peak hardly grew).
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 16), "OMP_NUM_THREADS": str(spec["threads"])}
    proc = subprocess.run([sys.executable, "-m", "harness.bench.ranking_step", str(spec_path), str(out_path)],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ranking step {name} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return {**json.loads(out_path.read_text()), "grads_path": spec["grads_path"]}


def max_grad_diff(a_path: str, b_path: str) -> float:
    import torch

    a, b = torch.load(a_path), torch.load(b_path)
    if a.keys() != b.keys():
        return float("inf")
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def default_chunk_tokens() -> int:
    return TrainConfig().logprob_chunk_tokens


def measure_config(config: str, train: str, k: int, threads: int, work_dir: Path) -> dict:
    from tqdm import tqdm

    scores = [round(0.9 - 0.3 * i, 2) for i in range(k - 1)] + [1.0]  # all different: every pair ranked
    base = {**shape(config), "config": config, "train": train, "k": k, "scores": scores, "margin": 1.0,
            "seed": 0, "threads": threads, "chunk_tokens": default_chunk_tokens()}
    reports = {}
    for variant in tqdm(("split", "joint"), desc=f"ranking step ({config}, {train})", unit="variant",
                        leave=False):
        reports[variant] = run_variant({**base, "variant": variant}, work_dir)
    for r in reports.values():
        r["activation_mib"] = max(0.0, r["peak_mib"] - r["setup_rss_mib"])
        r["warm_step_seconds"] = r["step_seconds"][-1]
    diff = max_grad_diff(reports["split"]["grads_path"], reports["joint"]["grads_path"])
    for r in reports.values():
        os.unlink(r.pop("grads_path"))
    return {"config": {k_: v for k_, v in base.items() if k_ != "scores"}, "split": reports["split"],
            "joint": reports["joint"], "max_grad_diff": diff, "grads_equal": diff <= GRAD_TOLERANCE}


def linear_fit(split_mib: float, joint_mib: float, k: int) -> dict:
    """Read the two activations as ``joint = K*a + c`` and ``split = a + c``: ``a`` scales with the
    candidates held at once (layer activations), ``c`` does not (one chunk's logits; under ``full`` the
    V x H weight gradients of the embedding and output layer). A derived reading, not a measurement."""
    per_candidate = (joint_mib - split_mib) / (k - 1) if k > 1 else None
    constant = split_mib - per_candidate if per_candidate is not None else None
    return {"per_candidate_mib": per_candidate, "constant_mib": constant}


def measured_activation(report: dict) -> float | None:
    """A variant's activation MiB, or None where it is below what RSS can show: 0 after subtracting the
    set-up, or a set-up peak above the step's (tiny models: a step's tensors fit in memory glibc kept)."""
    if report["peak_hidden_by_setup"] or report["activation_mib"] <= 0:
        return None
    return report["activation_mib"]


def activation_note(split: dict, joint: dict) -> str:
    hidden = [name for name, r in (("two-pass", split), ("joint", joint)) if measured_activation(r) is None]
    return f"{' and '.join(hidden)}: below RSS resolution (peak hidden by set-up)" if hidden else ""


def add_config(result: BenchResult, m: dict, k: int) -> None:
    """The rows, goals and linear fit of one measured (config, train) pair."""
    split, joint, dims = m["split"], m["joint"], m["config"]
    train = dims["train"]
    label = f"{dims['config']} {train} (V={dims['vocab']}, T={dims['seq_len']}, K={k})"
    result.rows += [
        Row(f"{label}: activation MiB", measured_activation(split), measured_activation(joint),
            higher_is_better=False, note=activation_note(split, joint)),
        Row(f"{label}: peak RSS MiB", split["peak_mib"], joint["peak_mib"], higher_is_better=False),
        Row(f"{label}: step s (warm)", split["warm_step_seconds"], joint["warm_step_seconds"],
            higher_is_better=False),
    ]
    split_mib, joint_mib = measured_activation(split), measured_activation(joint)
    fraction = split_mib / joint_mib if split_mib is not None and joint_mib is not None else None
    measured = "n/a (below RSS resolution)" if fraction is None else f"{fraction:.2f} of joint"
    result.goals.append(Goal(f"{dims['config']} {train}: gradients equal (max abs diff <= {GRAD_TOLERANCE:g})",
                             f"max abs diff = {m['max_grad_diff']:.3g}", m["grads_equal"]))
    if train == GOAL_TRAIN:
        result.goals.append(Goal(
            f"{dims['config']} {train}: activation memory about 1/K of joint (<= {GOAL_SLACK:g}/{k} = "
            f"{GOAL_SLACK / k:.2f})", measured, None if fraction is None else fraction <= GOAL_SLACK / k))
    else:
        result.notes.append(f"{dims['config']} {train}: two-pass activation = {measured} (reported, no goal: "
                            "the V x H weight gradients of the step do not scale with K)")
    m["fraction_of_joint"] = fraction
    m["linear_fit"] = linear_fit(split_mib, joint_mib, k) if fraction is not None else None
    fit = m["linear_fit"]
    if fit and fit["per_candidate_mib"] is not None:
        result.notes.append(f"{dims['config']} {train}: read as joint = K*a + c, split = a + c: a = "
                            f"{fit['per_candidate_mib']:.0f} MiB per candidate held, c = {fit['constant_mib']:.0f} "
                            "MiB that does not scale with K")


def run(work_dir: Path, workers: int, configs: list[str], k: int, trains: list[str]) -> BenchResult:
    work_dir.mkdir(parents=True, exist_ok=True)
    result = BenchResult(name=NAME, scale="")
    for config in configs:
        for train in trains:
            m = measure_config(config, train, k, workers, work_dir)
            add_config(result, m, k)
            result.details[f"{config}-{train}"] = m
    result.notes += [(f"one group of K={k} candidates, one fresh process per variant, {workers} torch threads, "
                      f"logprob_chunk_tokens={default_chunk_tokens()}; margin 1 makes every hinge active, so the "
                      "two-pass path re-runs all K candidates"),
                     "activation = peak RSS of a warm step (VmHWM reset before it) - RSS after model + AdamW "
                     "state + gradient buffers + one cold step (glibc mmap threshold 64 KiB); lora: adapters on "
                     "every linear layer but the output layer, embedding and output layer frozen (the paper "
                     "preset's setting)"]
    return result
