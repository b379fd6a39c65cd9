"""The file layout of a train run's iterations and the one place its per-iteration metrics are read:
the folder of iteration N (``iter-NN``) and `iteration_row`, the row of every number an iteration's
files hold (held-out pass@k, candidate statistics, loss terms, diagnostics). The loop's summary.json
and summary.md, report.md, compare, the ablation and the experiment all read these rows. The loop
writes the files (harness.loop.loop documents the whole run folder); everything here only reads them.
"""
from __future__ import annotations

import json
from pathlib import Path

from tasks.jsonl import read_jsonl
from verilog_tools import status as st

# The sampled candidates' score buckets (harness.loop.diagnostics): -1 (multi-module), 0, between, 1, unscorable
SCORE_BUCKETS = ("<0", "0", "(0,1)", ">=1", "none")
# Statuses that mean "the design did not even build": the rest compiled (and may still be wrong).
NOT_BUILT = (st.SYNTAX_ERROR, st.COMPILE_ERROR, st.NO_CODE)
# The row keys besides pass@k that reports and comparisons show, with their column headers.
METRICS = {
    "eval_syntax_valid": "held-out syntax-valid", "cand_syntax_valid_rate": "candidates syntax-valid",
    "cand_multi_module_rate": "candidates multi-module", "cand_mean_score": "mean candidate score",
    "cand_mean_rouge_l": "mean Rouge-L", "cand_pass_rate": "candidates pass (testbench)",
    "informative_share": "groups with a ranked pair", "fresh_instructions": "instructions unseen by warm start",
    "ce_loss": "CE loss", "rank_loss": "rank loss", "rank_accuracy": "rank accuracy (last log window)",
    "violated_pairs": "violated pairs (whole iteration)", "lr_sum": "sum of learning rates"}


def iter_dir(it: int) -> str:
    return f"iter-{it:02d}"


def diagnostic_row(folder: Path) -> dict:
    """An iteration's diagnostics (harness.loop.diagnostics) as row keys: the candidates' pass rate, score
    buckets and informative-group share, the violated pairs over the whole stage, fresh instructions and
    the sum of the learning rates of its optimiser steps. Keys are absent where the files are."""
    row: dict = {}
    stats = read_json(folder / "score_stats.json")
    diag = stats.get("diagnostics") or {}
    if diag:
        row.update(cand_pass_rate=diag.get("pass_rate"), informative_share=diag.get("informative_group_share"),
                   cand_score_buckets=diag.get("score_buckets"))
    if "instructions" in stats:
        row["fresh_instructions"] = stats["instructions"].get("fresh")
    log_ = read_json(folder / "train_log.json")
    if "diagnostics" in log_:
        row["violated_pairs"] = log_["diagnostics"].get("violated_fraction")
    rates = (log_.get("schedule") or {}).get("learning_rates")
    if rates:
        row["lr_sum"] = sum(rates)
    return row


def read_json(path: Path) -> dict:
    """A JSON file's object; {} when it is missing or unreadable (every run file is optional here)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def sampled_candidates(rows: list[dict]) -> list[dict]:
    """The model's candidates of scores.jsonl rows (the references left out)."""
    return [c for row in rows for c in row["candidates"] if c["source"] == "model"]


def mean_score(rows: list[dict]) -> float | None:
    """Mean score of the scorable sampled candidates (None when there is none)."""
    scores = [c["score"] for c in sampled_candidates(rows) if c["score"] is not None]
    return sum(scores) / len(scores) if scores else None


def iteration_row(folder: Path, it: int) -> dict:
    """Every metric of iteration ``it`` whose files exist in ``folder`` (``iter-NN``)."""
    row: dict = {"iteration": it}
    if (folder / "eval" / "metrics.json").exists():
        row.update(eval_row(folder / "eval"))
    row.update(candidate_row(folder))
    row.update(train_row(folder))
    row.update(diagnostic_row(folder))
    return row


def eval_row(folder: Path) -> dict:
    """Held-out metrics of one eval folder: every pass@k present, syntax-valid rate, settings."""
    m = read_json(folder / "metrics.json")
    counts = m.get("status_counts", {})
    total = sum(counts.values())
    row = dict(m.get("pass_at_k", {}))
    row.update(eval_syntax_valid=(total - sum(counts.get(s, 0) for s in NOT_BUILT)) / total if total else None,
               eval_n=m.get("n"), eval_temperature=m.get("temperature"), benchmark=m.get("benchmark"),
               simulator=m.get("simulator"), problems=m.get("problems"), smoke=bool(m.get("smoke")))
    return row


def candidate_row(folder: Path) -> dict:
    """Sampled-candidate statistics; ``mean_score`` from scores.jsonl for runs made before it existed."""
    stats = read_json(folder / "score_stats.json")
    if not stats:
        return {}
    score = stats.get("mean_score")
    if "mean_score" not in stats and (folder / "scores.jsonl").exists():
        score = mean_score(read_jsonl(folder / "scores.jsonl"))
    return {"cand_syntax_valid_rate": stats.get("syntax_valid_rate"),
            "cand_multi_module_rate": stats.get("multi_module_rate"),
            "cand_mean_rouge_l": stats.get("mean_rouge_l"), "cand_mean_score": score}


def train_row(folder: Path) -> dict:
    """Loss terms at the last logging step; no rank loss where no pair was ranked (the warm start)."""
    final = read_json(folder / "train_log.json").get("final") or {}
    row = {k: final.get(k) for k in ("ce_loss", "rank_loss", "rank_accuracy") if final}
    if final.get("rank_pairs") == 0:
        row["rank_loss"] = None
    return row
