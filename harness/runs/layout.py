"""The file layout of a train run's iterations, read by the loop's summary and by the reports alike:
the folder of iteration N (``iter-NN``) and the diagnostic keys of its score_stats.json and
train_log.json as summary-row keys. The loop writes these files (harness.loop.loop documents the
whole run folder); everything here only reads them.
"""
from __future__ import annotations

import json
from pathlib import Path

# The sampled candidates' score buckets (harness.loop.diagnostics): -1 (multi-module), 0, between, 1, unscorable
SCORE_BUCKETS = ("<0", "0", "(0,1)", ">=1", "none")


def iter_dir(it: int) -> str:
    return f"iter-{it:02d}"


def diagnostic_row(folder: Path) -> dict:
    """An iteration's diagnostics (harness.loop.diagnostics) as row keys: the candidates' pass rate, score
    buckets and informative-group share, the violated pairs over the whole stage, fresh instructions and
    the sum of the learning rates of its optimiser steps. Keys are absent where the files are."""
    row: dict = {}
    stats = _read_json(folder / "score_stats.json")
    diag = stats.get("diagnostics") or {}
    if diag:
        row.update(cand_pass_rate=diag.get("pass_rate"), informative_share=diag.get("informative_group_share"),
                   cand_score_buckets=diag.get("score_buckets"))
    if "instructions" in stats:
        row["fresh_instructions"] = stats["instructions"].get("fresh")
    log_ = _read_json(folder / "train_log.json")
    if "diagnostics" in log_:
        row["violated_pairs"] = log_["diagnostics"].get("violated_fraction")
    rates = (log_.get("schedule") or {}).get("learning_rates")
    if rates:
        row["lr_sum"] = sum(rates)
    return row


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
