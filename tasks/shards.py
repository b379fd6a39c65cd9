"""Sharded evaluation: `SHARD=i/N` picks a deterministic slice of the problems; `merge` joins the shards.

Problem j (in benchmark order, after LIMIT) belongs to shard ``j % N`` (0-based, as Slurm's
``$SLURM_ARRAY_TASK_ID``), so every shard gets a similar mix and the slice never depends on the
machine. Each shard's metrics.json records ``shard = {index, count, task_ids}`` and the data hash of
the whole (unsharded) problem set; `merge_outcome` checks that the shards belong together (same
benchmark, data hash, model, sampling and scoring settings; indexes 0..N-1 each once; disjoint task
ids) and recomputes every metric from the joined per-sample results in the unsharded order, with the
same functions an unsharded run uses, so the merged metrics equal those of one unsharded run.

Also here: syntax pass@k (RTLLM reports it beside functional pass@k), computed from the same results.
"""
from __future__ import annotations

import re
from types import SimpleNamespace

from tasks.passk import mean_pass_at_k
from verilog_tools import status as st
from verilog_tools.errors import UserError

# A design that reached simulation compiled; anything refused or unparsed did not.
COMPILED = frozenset({st.PASS, st.MISMATCH, st.TIMEOUT, st.RUNTIME_ERROR})
# What must agree between shards of one evaluation (metrics.json keys).
SAME = ("benchmark", "benchmark_data_hash", "model", "sampling", "samples_file", "ks_requested",
        "limit", "allow_missing", "simulator", "prompt_template")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> ``(i, N)`` with 0 <= i < N; None for no sharding; a one-line error otherwise."""
    if text is None or text == "":
        return None
    m = _SHARD.match(str(text))
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise ValueError(f"shard: expected i/N with 0 <= i < N (e.g. SHARD=0/4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def select_shard(problems: list, shard: tuple[int, int] | None) -> list:
    """The problems of shard ``(i, N)``: those at positions j with j % N == i (all when None)."""
    if shard is None:
        return problems
    index, count = shard
    return [p for j, p in enumerate(problems) if j % count == index]


def syntax_pass_metrics(per_problem_results: dict[str, list[dict]], task_ids: list[str], ks) -> dict:
    """``syntax_pass_at_k``: pass@k where a sample counts when its design compiled (`COMPILED`)."""
    counts = [(len(rows), sum(1 for r in rows if r["status"] in COMPILED))
              for rows in (per_problem_results.get(t, []) for t in task_ids) if rows]
    means = mean_pass_at_k(counts, ks)
    total = len(task_ids)
    return {"syntax_pass_at_k": {k: v * len(counts) / total for k, v in means.items()} if total else {}}


def group_results(results: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in results:
        out.setdefault(r["task_id"], []).append(r)
    return out


def check_shards(metrics: list[dict], names: list[str]) -> int:
    """Raise a one-line UserError unless the shards form one evaluation; returns N."""
    shards = [m.get("shard") for m in metrics]
    for name, shard in zip(names, shards):
        if not shard:
            raise UserError(f"{name} is not a shard (no 'shard' in metrics.json); run it with SHARD=i/N")
    counts = {s["count"] for s in shards}
    if len(counts) != 1:
        raise UserError(f"the runs come from different splits (N = {sorted(counts)}); merge shards of one SHARD=i/N")
    count = counts.pop()
    for key in SAME:
        values = {repr(m.get(key)) for m in metrics}
        if len(values) != 1:
            raise UserError(f"the shards differ in {key!r} ({', '.join(sorted(values))[:200]}); "
                            f"merge only shards of the same evaluation")
    indexes = sorted(s["index"] for s in shards)
    if indexes != list(range(count)):
        missing = sorted(set(range(count)) - set(indexes))
        dup = sorted({i for i in indexes if indexes.count(i) > 1})
        raise UserError(f"shards must be 0..{count - 1}, each once: missing {missing}, repeated {dup}")
    seen: set[str] = set()
    for name, shard in zip(names, shards):
        overlap = seen & set(shard["task_ids"])
        if overlap:
            raise UserError(f"{name} repeats task {sorted(overlap)[0]!r} of another shard")
        seen |= set(shard["task_ids"])
    return count


def merged_order(shards: list[dict]) -> list[str]:
    """The unsharded problem order: position j is shard j % N's (j // N)-th task."""
    by_index = {s["index"]: s["task_ids"] for s in shards}
    count = len(by_index)
    total = sum(len(t) for t in by_index.values())
    return [by_index[j % count][j // count] for j in range(total)]


def merge_metrics(metrics: list[dict], results: list[list[dict]], names: list[str]):
    """(results in unsharded order, per_problem, metrics) of the joined shards (see module doc)."""
    from tasks.evaluate import pass_metrics, summarize_problems
    check_shards(metrics, names)
    order = merged_order([m["shard"] for m in metrics])
    grouped = group_results([r for rows in results for r in rows])
    unknown = set(grouped) - set(order)
    if unknown:
        raise UserError(f"results name task {sorted(unknown)[0]!r}, which no shard's task list holds")
    joined = [r for t in order for r in grouped.get(t, [])]
    per_problem = summarize_problems([SimpleNamespace(task_id=t) for t in order], joined)
    ks = metrics[0]["ks_requested"]
    position = {t: j for j, t in enumerate(order)}
    first = metrics[0]
    merged = {key: first.get(key) for key in SAME}
    merged.update(
        data_hash=first["benchmark_data_hash"],
        problems=sum(m["problems"] for m in metrics),
        samples=sum(m["samples"] for m in metrics),
        simulations=sum(m.get("simulations", 0) for m in metrics),
        reference_cache_hits=(None if all(m.get("reference_cache_hits") is None for m in metrics)
                              else sum(m.get("reference_cache_hits") or 0 for m in metrics)),
        missing_problems=sorted((t for m in metrics for t in m.get("missing_problems", [])), key=position.get),
        reference_failures=sorted((r for m in metrics for r in m.get("reference_failures", [])),
                                  key=lambda r: position.get(r["task_id"], 0)),
        reference_time_limited=sorted(t for m in metrics for t in m.get("reference_time_limited", [])),
        wall_seconds=round(sum(m.get("wall_seconds", 0) for m in metrics), 3),
        tool_cpu_seconds=round(sum(m.get("tool_cpu_seconds", 0) for m in metrics), 3),
        merged_from=names, smoke=any(m.get("smoke") for m in metrics), workers=first.get("workers"),
    )
    merged.update(pass_metrics(per_problem, ks))
    merged.update(syntax_pass_metrics(grouped, order, ks))
    for key in ("git", "containment", "temperature", "top_p", "model_resolved"):
        values = [m.get(key) for m in metrics]
        merged[key] = values[0] if all(v == values[0] for v in values) else values
    known = {t: why for m in metrics for t, why in (m.get("known_reference_failures") or {}).items()}
    if known:
        merged["known_reference_failures"] = known
    usages = [m["token_usage"] for m in metrics if m.get("token_usage")]
    if usages:  # API runs: what the shards requested and took from the cache, summed
        merged["token_usage"] = {k: sum(u.get(k, 0) for u in usages) for k in usages[0]}
    return joined, per_problem, merged
