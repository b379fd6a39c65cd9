"""Per-iteration diagnostics: did the iteration give the ranking loss anything to act on, and did it act?

Written into the iteration's own files (and read from there by the summary and the report):

* score_stats.json ``diagnostics`` (``candidate_diagnostics``): the sampled candidates' score
  distribution in buckets (``<0``: the -1 of a multi-module candidate; ``0``: did not compile; ``(0,1)``;
  ``>=1``: a pass or a full score; ``none``: unscorable), their compile rate and testbench pass rate,
  and the share of groups with at least one informative pair (two scorable candidates whose scores
  differ by at least ``min_score_gap``, ``harness.objective.ranking.ordered_pairs``: the pairs the loss ranks;
  without one, the group trains on cross-entropy only).
* train_log.json ``diagnostics`` (``harness.loop.train_stage.PairCountingTrainer``): ranked pairs and violated pairs summed over
  every micro-batch of the whole stage, each counted from the log-likelihoods the loss itself computed
  before that micro-batch's update; a pair (i, j) with s_i > s_j is violated when p_i <= p_j. The
  trainer's logged ``rank_accuracy`` is only the last logging window's. With ``epochs_per_iter`` > 1 a
  group counts once per epoch; under DDP the processes' counts are summed.

The pass rate of the candidates is the testbench verdict of every compiling sampled candidate
(``testbench_verdicts``, the functional score's own simulation, ``harness.objective.scoring``), whatever score
the loss uses, so that the iterative and static samplers can be compared on the same instructions: the
candidate pass rate per iteration is how far the sampling policy moved.
"""
from __future__ import annotations

from collections import Counter

from harness.objective.ranking import ordered_pairs
from harness.objective.scoring import COMPILED, ScoreConfig, _apply_functional_scores
from harness.runs.layout import SCORE_BUCKETS
from verilog_tools import status as st

BUCKETS = SCORE_BUCKETS


def score_bucket(score: float | None) -> str:
    if score is None:
        return "none"
    if score < 0:
        return "<0"
    if score == 0:
        return "0"
    return "(0,1)" if score < 1 else ">=1"


def informative(row: dict, min_gap: float = 0.0) -> bool:
    """Whether a scored group has a pair for the ranking loss (two scorable candidates, scores apart by
    at least ``min_gap``)."""
    return bool(ordered_pairs([c["score"] for c in row["candidates"]], min_gap))


def candidate_diagnostics(rows: list[dict], min_gap: float = 0.0) -> dict:
    """Score buckets, compile and pass rates of the sampled candidates; share of informative groups."""
    sampled = [c for row in rows for c in row["candidates"] if c["source"] == "model"]
    buckets = Counter(score_bucket(c["score"]) for c in sampled)
    checked = [c for c in sampled if c.get("passed") is not None]
    return {
        "score_buckets": {b: buckets.get(b, 0) for b in BUCKETS},
        "compile_rate": sum(bool(c.get("syntax_ok")) for c in sampled) / len(sampled) if sampled else None,
        "pass_rate": sum(c["passed"] for c in checked) / len(checked) if checked else None,
        "pass_checked": len(checked),
        "informative_group_share": sum(informative(r, min_gap) for r in rows) / len(rows) if rows else None,
    }


def testbench_verdicts(records, rows: list[dict], score_mode: str, workers: int, limits=None) -> None:
    """Set ``passed`` on every sampled candidate: its testbench verdict (True/False), None where its record
    has no testbench or the simulator could not run. A candidate that did not compile has not passed.
    ``limits`` (icarus.SimLimits; None = its defaults) caps each simulation."""
    sampled = [(r, c) for r, row in enumerate(rows) for c in row["candidates"] if c["source"] == "model"]
    if score_mode == "functional":  # the score's own verdict is the testbench's
        for r, cand in sampled:
            cand["passed"] = _verdict(records[r], cand["status"], cand.get("syntax_ok"))
        return
    copies = [(r, {**c, "status": COMPILED if c.get("syntax_ok") else c["status"],
                   "rouge_l": c.get("rouge_l") or 0.0}) for r, c in sampled]
    _apply_functional_scores(records, copies, ScoreConfig(mode="functional"), workers, limits)
    for (r, cand), (_, copy) in zip(sampled, copies):
        cand["passed"] = _verdict(records[r], copy["status"], cand.get("syntax_ok"))


def _verdict(record, status: str, compiled) -> bool | None:
    if not record.testbench or status == st.INFRA_ERROR:
        return None
    return bool(compiled) and status == st.PASS
