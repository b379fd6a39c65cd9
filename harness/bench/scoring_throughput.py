"""Benchmark 2: one iteration's scoring stage, `harness.objective.scoring.score_groups` against the obvious way.

Input: ``candidates`` sampled-candidate texts built from the rtlcoder-small references
(``RTLCODER_SMALL_DIR``), a seeded mix of what a model produces: exact copies of the reference, one-
to three-edit mutants (`tasks.synthetic.mutate`), copies with a comment added, and broken ones (a
dropped ';' or a cut-off end). Candidates are dealt round-robin over candidates / 3 references (K-1 = 3
per group, as in the tiny-cpu preset; more per group when there are fewer references).

Project: ``score_groups`` (module count, ``iverilog -t null`` with de-duplication through the
sandbox, `tasks.rouge` Rouge-L with each reference tokenised once). Baselines: one plain
``iverilog -t null`` process per candidate, no de-duplication, ``workers`` at a time; and
``rouge_score``'s RougeL scorer per pair. Both Rouge-L implementations score the same pairs (every
compiling candidate against its reference), and their values must be identical.
"""
from __future__ import annotations

import os
import random
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.bench.common import (
    BenchResult,
    Goal,
    Row,
    seeded_subset,
    stopwatch,
    timed_calls,
    times,
)
from harness.objective.scoring import ScoreConfig, score_groups

NAME = "scoring_throughput"
TITLE = "scoring stage (syntax check + Rouge-L): candidates/s"
SCALES = {
    "full": {"candidates": 10_000, "baseline_syntax": 3_000},
    "small": {"candidates": 1_000, "baseline_syntax": None},
    "tiny": {"candidates": 24, "baseline_syntax": None},
}
GOAL_ROUGE_SPEEDUP = 20.0
GOAL_EQUAL = 1e-9
PER_GROUP = 3
# Shares of the candidate kinds (copy, mutant, commented copy, broken).
MIX = (("copy", 0.2), ("mutant", 0.5), ("commented", 0.1), ("broken", 0.2))


def load_references(limit: int | None = None) -> list:
    """Single-module rtlcoder-small references as `TrainingRecord`s (instruction, header, reference)."""
    from tasks.records import TrainingRecord
    from tasks.rtlcoder import clean_examples, read_examples
    from verilog_tools.errors import UserError

    directory = os.environ.get("RTLCODER_SMALL_DIR")
    if not directory or not Path(directory).is_dir():
        raise UserError("scoring_throughput needs the rtlcoder-small data: set RTLCODER_SMALL_DIR")
    examples = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        examples += read_examples(path).examples
        if limit and len(examples) >= 2 * limit:
            break
    cleaned, _ = clean_examples(examples)
    single = [ex for ex in cleaned if ex.modules == 1][:limit or None]
    return [TrainingRecord(id=TrainingRecord.make_id(ex.source, ex.instruction, ex.reference),
                           instruction=ex.instruction, header=ex.header, reference=ex.reference,
                           source=ex.source) for ex in single]


def make_candidate(reference: str, rng: random.Random) -> str:
    """One seeded candidate text of a kind drawn from MIX."""
    from tasks.synthetic.mutate import mutate

    kind = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
    if kind == "copy":
        return reference
    if kind == "commented":
        return f"// candidate {rng.randrange(10**6)}\n{reference}"
    if kind == "mutant":
        code = reference
        for _ in range(rng.choice((1, 1, 2, 3))):
            code = mutate(code, rng) or code
        return code
    semis = [i for i, ch in enumerate(reference) if ch == ";"]
    if semis and rng.random() < 0.5:
        at = rng.choice(semis)
        return reference[:at] + reference[at + 1:]
    return reference[: rng.randrange(len(reference) // 3, max(len(reference) // 3 + 1, len(reference) - 10))]


def build_groups(records: list, candidates: int, seed: int) -> tuple[list, list[list[str]]]:
    """The records that get candidates and, per record, its candidate texts (round-robin)."""
    rng = random.Random(seed)
    texts: list[list[str]] = [[] for _ in records]
    for i in range(candidates):
        texts[i % len(records)].append(make_candidate(records[i % len(records)].reference, rng))
    used = [i for i, t in enumerate(texts) if t]
    return [records[i] for i in used], [texts[i] for i in used]


def plain_syntax_check(codes: list[str], workers: int, timeout: float) -> list[bool]:
    """One plain ``iverilog -t null`` process per code, ``workers`` at a time: compiled or not."""
    from tqdm import tqdm

    from verilog_tools.icarus import IVERILOG_FLAGS
    from verilog_tools.tools import find_tool

    iverilog = find_tool("iverilog")

    def one(code: str) -> bool:
        with tempfile.TemporaryDirectory(prefix="itertl-bench-") as d:
            Path(d, "design.sv").write_text(code, encoding="utf-8", errors="replace")
            try:
                r = subprocess.run([iverilog, *IVERILOG_FLAGS, "-t", "null", "design.sv"], cwd=d, check=False,
                                   capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                return False
            return r.returncode == 0

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(one, codes), total=len(codes), desc="baseline: iverilog per candidate",
                         unit="cand", leave=False))


def rouge_pairs(rows) -> list[tuple[int, str, float]]:
    """(record index, candidate text, project Rouge-L) of every candidate that score_groups Rouge-scored."""
    return [(r, c["text"], c["rouge_l"]) for r, row in enumerate(rows) for c in row["candidates"]
            if c["rouge_l"] is not None]


def time_rouge(records, pairs) -> tuple[float, float, list[float], list[float]]:
    """Project and rouge_score Rouge-L over the same pairs: (project s, baseline s, values, values)."""
    from rouge_score import rouge_scorer

    from tasks.rouge import ReferenceLcs

    with stopwatch() as ours:
        refs: dict[int, ReferenceLcs] = {}
        mine = []
        for r, text, _ in pairs:
            if r not in refs:
                refs[r] = ReferenceLcs(records[r].reference)
            mine.append(refs[r].f_measure(text))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    with stopwatch() as theirs:
        base = [scorer.score(records[r].reference, text)["rougeL"].fmeasure for r, text, _ in pairs]
    return ours.seconds, theirs.seconds, mine, base


def run(work_dir: Path, workers: int, candidates: int, baseline_syntax: int | None, seed: int = 0,
        timeout: float = 60.0) -> BenchResult:
    from verilog_tools import icarus
    from verilog_tools.text import normalize_code

    records, texts = build_groups(load_references(limit=-(-candidates // PER_GROUP)), candidates, seed)
    phases: dict[str, list[float]] = {}
    limits = icarus.SimLimits(compile_wall_seconds=timeout, cpu_seconds=timeout)
    with stopwatch() as stage, timed_calls(icarus, ["check_syntax_many"], phases):
        rows = score_groups(records, texts, ScoreConfig(), workers=workers, limits=limits)
    checked = [(c["text"], c["syntax_ok"]) for row in rows for c in row["candidates"]
               if c["syntax_ok"] is not None]
    pairs = rouge_pairs(rows)
    ours_s, theirs_s, mine, base = time_rouge(records, pairs)
    # Both the stage's own values and the timed recomputation must equal rouge_score's.
    rouge_diff = max((max(abs(p - b), abs(m - b)) for (_, _, p), m, b in zip(pairs, mine, base)), default=0.0)
    subset = seeded_subset(checked, baseline_syntax, seed)
    with stopwatch() as plain:
        plain_ok = plain_syntax_check([text for text, _ in subset], workers, timeout)
    plain_s = plain.seconds * len(checked) / len(subset) if subset else 0.0
    n = sum(len(t) for t in texts)
    syntax_s = sum(phases.get("check_syntax_many", []))
    extrapolated = len(subset) < len(checked)
    result = BenchResult(name=NAME, scale="", rows=[
        Row("Rouge-L pairs/s", len(pairs) / ours_s if ours_s else None,
            len(pairs) / theirs_s if theirs_s else None, note=f"{len(pairs)} compiling candidates"),
        Row("syntax-check candidates/s", len(checked) / syntax_s if syntax_s else None,
            len(checked) / plain_s if plain_s else None,
            note=(f"baseline timed on {len(subset)} of {len(checked)}, extrapolated" if extrapolated else "")),
        Row("scoring stage s per 1k candidates", 1000 * stage.seconds / n,
            1000 * (plain_s + theirs_s) / n, higher_is_better=False,
            note="baseline: plain iverilog per candidate + rouge_score"),
    ])
    speedup = result.rows[0].ratio
    result.goals = [
        Goal(f"Rouge-L >= {GOAL_ROUGE_SPEEDUP:g}x rouge_score", times(speedup),
             None if speedup is None else speedup >= GOAL_ROUGE_SPEEDUP),
        Goal(f"Rouge-L values equal rouge_score's to {GOAL_EQUAL:g}", f"max abs diff = {rouge_diff:.3g}",
             rouge_diff <= GOAL_EQUAL),
    ]
    distinct = len({normalize_code(text) for text, _ in checked})
    result.notes = [(f"{n} candidates over {len(records)} rtlcoder-small references; {len(checked)} syntax-"
                    f"checked ({distinct} distinct after normalisation), {len(pairs)} Rouge-scored; "
                    f"{workers} workers on both sides")]
    if extrapolated:
        result.notes.append(f"baseline syntax check timed on a seeded subset of {len(subset)} of "
                            f"{len(checked)} candidates, extrapolated per candidate")
    result.details = {
        "candidates": n, "references": len(records), "syntax_checked": len(checked), "distinct": distinct,
        "rouge_pairs": len(pairs), "stage_seconds": stage.seconds, "syntax_seconds": syntax_s,
        "rouge_seconds": ours_s, "rouge_score_seconds": theirs_s, "baseline_syntax_seconds": plain.seconds,
        "baseline_syntax_timed": len(subset), "rouge_max_abs_diff": rouge_diff,
        # The two syntax checks should agree (the sandbox's limits can only add timeouts).
        "compiled_on_baseline_subset": {"project": sum(ok for _, ok in subset), "baseline": sum(plain_ok)},
    }
    return result
