"""One source for every per-iteration number: the loop's summary.json, report.md, compare and the ablation
all read `harness.runs.layout.iteration_row`, so they agree (they once disagreed on an empty evaluation:
0.0 in the summary, None in the report)."""
from __future__ import annotations

import json

from harness.config import TrainConfig
from harness.experiment import ablation
from harness.loop import loop
from harness.reports.data import load_run
from harness.runs.folder import RunFolder
from harness.runs.layout import iter_dir


def write(path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def fake_iteration(run_path, it: int, *, evaluated: bool, empty_eval: bool = False) -> None:
    d = run_path / iter_dir(it)
    if evaluated:
        counts = {} if empty_eval else {"pass": 3, "mismatch": 1, "syntax_error": 1}
        write(d / "eval" / "metrics.json", {"pass_at_k": {} if empty_eval else {"pass@1": 0.6}, "n": 1,
                                            "status_counts": counts, "benchmark": "synthetic"})
    if it:
        write(d / "score_stats.json", {"syntax_valid_rate": 0.5, "multi_module_rate": 0.0, "mean_rouge_l": 0.7,
                                       "mean_score": 0.4, "diagnostics": {"pass_rate": 0.25, "score_buckets": {"0": 2}},
                                       "instructions": {"fresh": 8}})
    write(d / "train_log.json", {"final": {"ce_loss": 0.3, "rank_loss": 0.0 if it == 0 else 0.1,
                                           "rank_pairs": 0 if it == 0 else 5, "rank_accuracy": 0.8},
                                 "schedule": {"learning_rates": [0.001, 0.002]}})


def test_summary_and_reports_read_the_same_rows(tmp_path):
    run = RunFolder.create(tmp_path, "r", "train")
    fake_iteration(run.path, 0, evaluated=True)
    fake_iteration(run.path, 1, evaluated=False)
    fake_iteration(run.path, 2, evaluated=True, empty_eval=True)
    summary = loop.write_summary(run, TrainConfig(iters=2))
    run.release()
    rows = summary["iterations"]
    assert rows == load_run(run.path).rows == json.loads((run.path / "summary.json").read_text())["iterations"]
    assert rows[0]["pass@1"] == 0.6 and rows[0]["eval_syntax_valid"] == 0.8 and rows[0]["rank_loss"] is None
    assert "pass@1" not in rows[1] and rows[1]["cand_pass_rate"] == 0.25 and rows[1]["lr_sum"] == 0.003
    assert rows[2]["eval_syntax_valid"] is None  # an empty evaluation is no measurement, everywhere
    assert "| 0 | 0.600 | 0.800 |" in (run.path / "summary.md").read_text()


def test_the_ablation_table_reads_the_arms_rows(tmp_path):
    for mode, filter_on in ablation.ARMS:
        arm = RunFolder.create(tmp_path, ablation.arm_name(mode, filter_on), "train")
        fake_iteration(arm.path, 0, evaluated=True)
        arm.release()
    rows, table = ablation.pass_at_1_table(tmp_path)
    assert rows == [{"iteration": 0, **{ablation.arm_label(m, f): 0.6 for m, f in ablation.ARMS}}]
    assert "| 0 | 0.600 | 0.600 | 0.600 | 0.600 |" in table
