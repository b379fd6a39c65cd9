"""`python -m harness bench`: each benchmark at a tiny scale gives well-formed results, the CLI writes them
into a new versioned folder, and --only rejects unknown names. Structure only: no timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.bench import (
    end_to_end,
    eval_throughput,
    ranking_memory,
    sampling_throughput,
    scoring_throughput,
)
from harness.bench.common import BenchResult
from harness.commands import bench as cli
from verilog_tools.errors import UserError


def check_result(result: BenchResult, name: str) -> None:
    assert result.name == name and not result.skipped
    assert result.rows and result.notes
    for row in result.rows:
        assert row.measure
        if row.project is not None and row.baseline is not None:
            assert row.ratio is not None and row.ratio > 0, row
    for goal in result.goals:
        assert goal.goal and goal.measured and goal.met in (True, False, None)
    data = json.loads(json.dumps(result.to_dict()))  # JSON-serialisable, ratios included
    assert {"name", "scale", "seconds", "rows", "goals", "notes", "details", "skipped"} <= data.keys()
    assert all("ratio" in row for row in data["rows"])


def goal(result: BenchResult, words: str):
    found = [g for g in result.goals if words in g.goal]
    assert len(found) == 1, [g.goal for g in result.goals]
    return found[0]


def test_equivalence_throughput(tmp_path, rtlcoder_dir):
    from harness.bench import equivalence_throughput

    result = equivalence_throughput.run(tmp_path, 2, **equivalence_throughput.SCALES["tiny"])
    check_result(result, "equivalence_throughput")
    assert result.details["groups"] == 3 and result.details["candidates"] == 9
    assert goal(result, "identical verdicts").met is True


def test_eval_throughput(tmp_path, v1_dir):
    result = eval_throughput.run(tmp_path, 2, **eval_throughput.SCALES["tiny"])
    check_result(result, "eval_throughput")
    assert result.rows[0].project > 0 and result.rows[0].baseline > 0
    assert goal(result, "baseline").met is not None and goal(result, "floor").met is not None
    # the straightforward way and the project's agree on which designs pass
    passes = result.details["passes_on_baseline_subset"]
    assert passes["project"] == passes["baseline"] > 0


def test_scoring_throughput(tmp_path, rtlcoder_dir):
    result = scoring_throughput.run(tmp_path, 2, **scoring_throughput.SCALES["tiny"])
    check_result(result, "scoring_throughput")
    assert result.details["candidates"] == 24 and result.details["rouge_pairs"] > 0
    assert goal(result, "values equal").met is True
    assert goal(result, "Rouge-L >=").met is not None
    compiled = result.details["compiled_on_baseline_subset"]
    assert compiled["project"] == compiled["baseline"]


def variant_report(peak: float, setup: float, hidden: bool = False) -> dict:
    return {"peak_mib": peak, "setup_rss_mib": setup, "activation_mib": max(0.0, peak - setup),
            "peak_hidden_by_setup": hidden, "warm_step_seconds": 0.1}


def measured(split: dict, joint: dict, train: str = "lora") -> tuple[BenchResult, dict]:
    dims = {"config": "micro", "train": train, "vocab": 512, "seq_len": 64}
    m = {"split": split, "joint": joint, "config": dims, "max_grad_diff": 0.0, "grads_equal": True}
    result = BenchResult(name="ranking_memory", scale="")
    ranking_memory.add_config(result, m, 4)
    result.notes.append("synthetic")
    return result, m


def test_ranking_memory_reads_activations_it_can_measure():
    result, m = measured(variant_report(110.0, 100.0), variant_report(140.0, 100.0))
    check_result(result, "ranking_memory")
    assert result.rows[0].project == 10.0 and result.rows[0].ratio == 4.0
    assert m["fraction_of_joint"] == 0.25 and m["linear_fit"] == {"per_candidate_mib": 10.0, "constant_mib": 0.0}
    assert goal(result, "1/K").met is True


@pytest.mark.parametrize("split", [variant_report(100.0, 100.0), variant_report(120.0, 100.0, hidden=True)])
def test_ranking_memory_below_rss_resolution_is_no_measurement(split):
    # a tiny model's step can fit in memory the set-up left resident: 0 MiB is not a figure (CI once
    # failed on a 0.0 MiB row whose ratio could not be formed)
    result, m = measured(split, variant_report(100.57, 100.0))
    check_result(result, "ranking_memory")
    row = result.rows[0]
    assert row.project is None and row.ratio is None and "below RSS resolution" in row.note
    assert m["fraction_of_joint"] is None and m["linear_fit"] is None
    assert goal(result, "1/K").met is None and "n/a" in goal(result, "1/K").measured


@pytest.mark.slow
def test_ranking_memory(tmp_path):
    result = ranking_memory.run(tmp_path, 1, **ranking_memory.SCALES["tiny"])
    check_result(result, "ranking_memory")
    assert goal(result, "gradients equal").met is True
    assert goal(result, "1/K").measured
    micro = result.details["micro-lora"]
    assert micro["config"]["train"] == "lora" and 0 < micro["split"]["trained_parameters"] < micro["split"]["parameters"]
    assert micro["grads_equal"] and micro["split"]["peak_mib"] > 0 and micro["joint"]["peak_mib"] > 0
    assert not list(tmp_path.glob("*.grads.pt"))  # the gradient copies are cleaned up


def test_sampling_throughput(tmp_path, torch_one_thread):
    result = sampling_throughput.run(tmp_path, 1, **sampling_throughput.SCALES["tiny"])
    check_result(result, "sampling_throughput")
    hf, plain, vllm = result.rows
    assert hf.project > 0 and hf.baseline > 0 and plain.baseline > 0 and result.details["project_tokens"] > 0
    # the decode loop and the generate() path draw the same completions
    assert result.details["identical_completions"] == result.details["completions"]
    assert result.details["generate_path_tokens"] == result.details["project_tokens"]
    import torch
    if not torch.cuda.is_available():
        assert vllm.project is None and vllm.note == "skipped: no GPU"


def test_end_to_end(tmp_path, torch_one_thread):
    result = end_to_end.run(tmp_path, 2, **end_to_end.SCALES["tiny"])
    check_result(result, "end_to_end")
    assert set(result.details["iteration_seconds"]) == {"sample", "score", "train", "eval"}
    assert all(s > 0 for s in result.details["iteration_seconds"].values())
    assert result.details["setup_seconds"]["warm start"] > 0
    assert result.details["slowest_stage"] in result.details["iteration_seconds"]
    assert any("slowest stage" in note for note in result.notes)


def test_cli_writes_a_new_versioned_folder(tmp_path, v1_dir):
    args = ["--scale", "tiny", "--only", "eval_throughput", "--results-dir", str(tmp_path)]
    assert cli.main_bench([*args, "--run", "b1"]) == 0
    folder = tmp_path / "b1"
    data = json.loads((folder / "bench.json").read_text())
    assert [b["name"] for b in data["benchmarks"]] == ["eval_throughput"] and data["scale"] == "tiny"
    assert data["machine"]["cores"] and "commit" in data
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["machine"]["cpu_model"] and manifest["kind"] == "bench" and manifest["finished"]
    assert "eval_throughput" in (folder / "bench.md").read_text()
    assert not (folder / ".incomplete").exists()
    with pytest.raises(UserError, match="already exists"):   # never overwritten
        cli.main_bench([*args, "--run", "b1"])
    assert cli.main_bench(args) == 0   # no name: a new timestamped folder beside it
    assert len([p for p in tmp_path.iterdir() if (p / "bench.json").is_file()]) == 2


def test_only_with_an_unknown_name_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "bench", "--only", "eval_throughput,nope",
                           "--results-dir", str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0]
    assert all(name in lines[0] for name in cli.BENCHMARKS)
    assert not list(tmp_path.iterdir())  # no run folder for a refused command


def test_ranking_profile_replays_a_timeline_to_the_peak():
    pytest.importorskip("torch")
    from torch.profiler._memory_profiler import Action

    from harness.bench.ranking_profile import live_at_peak
    timeline = [(0, Action.PREEXISTING, ("w", 0), 100), (1, Action.CREATE, ("a", 0), 50),
                (2, Action.CREATE, ("b", 0), 30), (3, Action.INCREMENT_VERSION, ("b", 1), 30),
                (4, Action.DESTROY, ("a", 0), 50), (5, Action.CREATE, ("c", 0), 10)]
    start, peak, live = live_at_peak(timeline)
    assert (start, peak) == (150, 180) and live == {"w": (100, 0), "a": (50, 0), "b": (30, 0)}
