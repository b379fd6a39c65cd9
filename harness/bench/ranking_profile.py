"""What holds the memory of one ranking-loss step: the live tensors at its peak, by kind and size.

    python -m harness.bench.ranking_profile mid split --train lora --chunk 64

Runs one step of `harness.bench.ranking_step` (same model, batch and trainer code as the
``ranking_memory`` benchmark) under ``torch.profiler`` with memory profiling, replays the profiler's
memory timeline (every tensor allocation and free, with torch's category: parameter, gradient,
activation, temporary, autograd detail...) and prints the tensor bytes live at the step's peak above
its start, grouped by category and by tensor size, so a vocabulary-sized buffer (chunk x V x 4 B) or a
V x H weight gradient is told apart from the layers' activations. This reads tensor bytes, not
resident memory: no allocator or runtime overhead. The timeline comes from a private torch API
(``profile._memory_profile``, torch 2.x); if it changes, this tool stops with the error, the benchmark
does not depend on it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter

from harness.bench.ranking_memory import default_chunk_tokens, shape
from harness.bench.ranking_step import build_batch, build_model, step
from harness.objective.trainer import RankingConfig


def live_at_peak(timeline) -> tuple[int, int, dict]:
    """(bytes live when the step starts, bytes at the peak, {tensor key: (bytes, version)} at the peak)
    from a profiler memory timeline of (time, action, (key, version), bytes)."""
    from torch.profiler._memory_profiler import Action

    live: dict = {}
    current = peak = 0
    start = None
    snapshot: dict = {}
    for _, action, (key, version), size in timeline:
        if action in (Action.PREEXISTING, Action.CREATE):
            live[key] = (size, version)
            current += size
        elif action == Action.INCREMENT_VERSION:
            if key in live:
                live[key] = (live[key][0], version)
            continue
        elif action == Action.DESTROY:
            current -= live.pop(key, (0, 0))[0]
        if action == Action.PREEXISTING:
            continue
        start = current if start is None else start
        if current > peak:
            peak, snapshot = current, dict(live)
    return start or 0, peak, snapshot


def profile_step(spec: dict):
    """The profiler's memory profile of one step of ``spec`` (a ranking_step spec)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(spec["threads"])
    model = build_model(spec)
    model.train()
    batch = build_batch(spec)
    with tempfile.TemporaryDirectory() as tmp:
        args = RankingConfig(output_dir=tmp, margin=spec["margin"], split_gradients=spec["variant"] == "split",
                             forward_chunk_size=1, use_cpu=True, report_to=[],
                             logprob_chunk_tokens=spec["chunk_tokens"])
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        step(model, batch, args, spec["variant"] == "split")
    return prof._memory_profile()


def report(memory_profile, top: int = 12) -> list[str]:
    start, peak, snapshot = live_at_peak(memory_profile.timeline)
    mib = 2 ** 20
    lines = [f"live tensors: {start / mib:.1f} MiB at the start, {peak / mib:.1f} MiB at the peak "
             f"(+{(peak - start) / mib:.1f} MiB)"]
    by_category, by_size = Counter(), Counter()
    for key, (size, version) in snapshot.items():
        category = str(memory_profile._categories.get(key, version)).replace("Category.", "")
        by_category[category] += size
        by_size[(category, size)] += 1
    lines += [f"  {name:16s} {size / mib:8.1f} MiB" for name, size in by_category.most_common()]
    lines.append("  largest at the peak (category, size x count):")
    lines += [f"    {name:16s} {size / mib:8.2f} MiB x {count}"
              for (name, size), count in sorted(by_size.items(), key=lambda kv: -kv[0][1] * kv[1])[:top]]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.ranking_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", choices=["tiny", "mid", "micro"], help="ranking_memory's model config")
    parser.add_argument("variant", choices=["split", "joint"], help="two-pass or joint gradient")
    parser.add_argument("--train", choices=["lora", "full"], default="lora", help="what is trained")
    parser.add_argument("--chunk", type=int, default=None, help="logprob_chunk_tokens (default: the config's)")
    parser.add_argument("--k", type=int, default=4, help="candidates in the group")
    args = parser.parse_args(argv)
    scores = [round(0.9 - 0.3 * i, 2) for i in range(args.k - 1)] + [1.0]
    spec = {**shape(args.config), "config": args.config, "train": args.train, "variant": args.variant,
            "k": args.k, "scores": scores, "margin": 1.0, "seed": 0, "threads": 1,
            "chunk_tokens": default_chunk_tokens() if args.chunk is None else args.chunk}
    print(f"{args.config} {args.variant} train={args.train} chunk={spec['chunk_tokens']} K={args.k}")
    print("\n".join(report(profile_step(spec))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
