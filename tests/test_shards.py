"""VerilogEval v1's own example files, SHARD=i/N and `merge`: merged shards equal one unsharded run."""
from __future__ import annotations

import json

import pytest

from harness.commands.eval import main_eval
from harness.commands.merge import main_merge
from tasks.shards import parse_shard, select_shard
from verilog_tools.errors import UserError

SAME_KEYS = ("pass_at_k", "syntax_pass_at_k", "status_counts", "n", "problems", "samples", "data_hash",
             "benchmark", "missing_problems")


def test_parse_and_select_shard():
    assert parse_shard(None) is None and parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="shard: expected i/N"):
            parse_shard(bad)
    items = list(range(7))
    parts = [select_shard(items, (i, 3)) for i in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]


def _eval(tmp_path, v1_dir, run, *extra):
    example = v1_dir / "data" / "example"
    argv = ["--problems", str(example / "ExampleEval.jsonl"), "--samples", str(example / "ExampleSolution.jsonl"),
            "--results-dir", str(tmp_path), "--run", run, "--k", "1,2", *extra]
    assert main_eval(argv) == 0
    return json.loads((tmp_path / run / "metrics.json").read_text())


def test_upstream_sanity_check_is_half_and_two_shards_merge_to_the_same_metrics(tmp_path, v1_dir):
    whole = _eval(tmp_path, v1_dir, "whole")
    assert whole["pass_at_k"]["pass@1"] == 0.5          # VerilogEval's documented sanity figure
    assert whole["benchmark_data_hash"] == whole["data_hash"] and whole["git"] and whole["containment"]
    assert whole["sampling"] is None and whole["shard"] is None
    s0 = _eval(tmp_path, v1_dir, "s0", "--shard", "0/2")
    s1 = _eval(tmp_path, v1_dir, "s1", "--shard", "1/2")
    assert s0["problems"] + s1["problems"] == whole["problems"]
    assert main_merge([str(tmp_path / "s1"), str(tmp_path / "s0"), "--results-dir", str(tmp_path),
                       "--run", "merged"]) == 0
    merged = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert {k: merged[k] for k in SAME_KEYS} == {k: whole[k] for k in SAME_KEYS}
    rows = lambda run: [(r["task_id"], r["completion_id"], r["status"])  # noqa: E731
                        for r in map(json.loads, (tmp_path / run / "results.jsonl").read_text().splitlines())]
    assert rows("merged") == rows("whole")
    with pytest.raises(UserError, match="shards must be 0..1"):
        main_merge([str(tmp_path / "s0"), "--results-dir", str(tmp_path)])
    with pytest.raises(UserError, match="not a shard"):
        main_merge([str(tmp_path / "s0"), str(tmp_path / "whole"), "--results-dir", str(tmp_path)])


def test_v1_rows_without_description_score_but_cannot_prompt(tmp_path, v1_dir):
    example = v1_dir / "data" / "example" / "ExampleEval.jsonl"
    with pytest.raises(UserError, match="no description for task 'gatesv'.*'description' field") as err:
        main_eval(["--problems", str(example), "--model", "some-model", "--results-dir", str(tmp_path)])
    assert "\n" not in str(err.value) and not any(tmp_path.iterdir())


def test_generated_samples_leave_provenance_in_rows_metrics_and_manifest(tmp_path):
    def generate(problems, config):
        rows = [{"task_id": p.task_id, "completion_id": j, "completion": p.reference_completion(),
                 "prompt_template": "chat/v1", "prompt_sha256": "sha256:00"} for p in problems for j in range(2)]
        return rows, {"temperature": 0.5, "top_p": 0.9, "token_usage": {"requests": 4, "cached": 0}}
    argv = ["--bench", "synthetic", "--limit", "2", "--model", "openai:fake", "--n", "2", "--temperature", "0.5",
            "--top-p", "0.9", "--k", "1,2", "--results-dir", str(tmp_path), "--run", "gen"]
    assert main_eval(argv, generate_samples=generate) == 0
    run = tmp_path / "gen"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["sampling"] == {"n": 2, "temperature": 0.5, "top_p": 0.9, "seed": 0, "max_new_tokens": 1024,
                                   "template": "chat/v1"}
    assert metrics["prompt_template"] == "chat/v1" and metrics["model"] == "openai:fake"
    assert metrics["syntax_pass_at_k"]["pass@2"] == metrics["pass_at_k"]["pass@2"] == 1.0
    assert json.loads((run / "manifest.json").read_text())["token_usage"] == {"requests": 4, "cached": 0}
    row = json.loads((run / "results.jsonl").read_text().splitlines()[0])
    assert row["prompt_template"] == "chat/v1" and row["prompt_sha256"] == "sha256:00"
