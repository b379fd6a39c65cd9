"""Benchmark: equivalence scoring of K-1 = 3 candidates per group, one simulation per group vs one per candidate.

Input: compiling single-module rtlcoder-small references (``RTLCODER_SMALL_DIR``), each with three
seeded candidates of `scoring_throughput.make_candidate`'s kinds that compile (copies, mutants,
commented copies; broken ones never reach the simulator). Project: `tasks.equivalence.check_groups`
with ``group=True`` (the candidates and the reference's self-check in one differential testbench).
Baseline: the same call with ``group=False`` (the reference's self-check, then one simulation per
candidate), the same testbench and the same verifier. Their verdicts must be identical.
"""
from __future__ import annotations

import random
from pathlib import Path

from harness.bench.common import BenchResult, Goal, Row, stopwatch, times
from harness.bench.scoring_throughput import load_references, make_candidate

NAME = "equivalence_throughput"
TITLE = "equivalence scoring (differential simulation, K-1 = 3 per group): candidates/s"
SCALES = {"full": {"groups": 200}, "small": {"groups": 40}, "tiny": {"groups": 3}}
PER_GROUP = 3
GOAL_SPEEDUP = 1.5


def build(groups: int, seed: int, workers: int) -> list[tuple[str, list[str], str | None]]:
    from verilog_tools.icarus import check_syntax_many
    from verilog_tools.text import module_names

    rng = random.Random(seed)
    records = load_references(limit=groups * 2)
    items = []
    for rec in records:
        texts = [make_candidate(rec.reference, rng) for _ in range(PER_GROUP * 2)]
        ok = check_syntax_many([rec.reference, *texts], workers)
        compiling = [t for t, r in zip(texts, ok[1:]) if r.ok][:PER_GROUP]
        if ok[0].ok and len(compiling) == PER_GROUP:
            items.append((rec.reference, compiling, next(iter(module_names(rec.header)), None)))
        if len(items) == groups:
            break
    return items


def run(work_dir: Path, workers: int, groups: int, seed: int = 0) -> BenchResult:
    from tasks.equivalence import check_groups

    items = build(groups, seed, workers)
    with stopwatch() as grouped:
        together = check_groups(items, workers=workers, group=True)
    with stopwatch() as alone:
        single = check_groups(items, workers=workers, group=False)
    n = sum(len(c) for _, c, _ in items)
    same = sum(a.excluded == b.excluded and [v and v.status for v in a.verdicts] == [v and v.status for v in b.verdicts]
               for a, b in zip(together, single))
    sims = (sum(r.simulations for r in together), sum(r.simulations for r in single))
    result = BenchResult(name=NAME, scale="", rows=[
        Row("candidates scored/s", n / grouped.seconds if grouped.seconds else None,
            n / alone.seconds if alone.seconds else None, note="baseline: one simulation per candidate"),
        Row("simulations per group", sims[0] / len(items), sims[1] / len(items), higher_is_better=False),
    ])
    speedup = result.rows[0].ratio
    result.goals = [
        Goal(f"grouped >= {GOAL_SPEEDUP:g}x per-candidate", times(speedup),
             None if speedup is None else speedup >= GOAL_SPEEDUP),
        Goal("identical verdicts", f"{same} of {len(items)} groups", same == len(items)),
    ]
    fallback = sum(not r.grouped for r in together)
    excluded = sum(bool(r.excluded) for r in together)
    result.notes = [f"{n} candidates in {len(items)} groups of rtlcoder-small references; {excluded} groups "
                    f"excluded (reference unusable), {fallback} group runs fell back to one per candidate; "
                    f"{workers} workers on both sides"]
    result.details = {"groups": len(items), "candidates": n, "grouped_seconds": grouped.seconds,
                      "single_seconds": alone.seconds, "simulations": sims, "fallbacks": fallback,
                      "excluded": excluded, "identical_groups": same}
    return result
