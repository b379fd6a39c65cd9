"""DRY_RUN's compute estimate: counts from the config, measured rates over assumed ones, clear errors."""
from __future__ import annotations

import json

import pytest

from harness.loop import compute
from harness.config import GPU_TYPES, load_config
from verilog_tools.errors import UserError


def test_paper_preset_counts_come_from_the_config():
    cfg = load_config("paper")  # 27k instructions, k=4, 1024 new tokens, VerilogEval-Human n=20, vLLM
    est = compute.estimate(cfg)
    it = est["iteration"]
    assert it["instructions"] == 27000 and it["sampled"] == 27000 * 3
    assert it["gen_tokens_max"] == 81000 * 1024 and it["gen_tokens"] == 81000 * 300
    assert it["syntax_checks"] == 81000 and it["testbench_sims"] == 0
    assert it["train_sequences"] == 27000 * 4 and it["train_tokens"] == 108000 * (250 + 300)
    assert it["eval_problems"] == 156 and it["eval_sims"] == 156 * 20 and it["eval_completions"] == 3120
    assert it["sample_s"] == pytest.approx(81000 * 300 / 5000)
    assert it["train_s"] == pytest.approx(108000 * 550 * compute.SPLIT_FACTOR / 3000)
    assert est["warm_start"] is None  # warmup_epochs: 0, iteration 0 only evaluates the base model
    assert est["total_gpu_h"] == pytest.approx(it["eval_s"] / 3600 + 7 * it["gpu_h"])


def test_tiny_cpu_counts_and_its_warm_start():
    cfg = load_config("tiny-cpu")
    est = compute.estimate(cfg)
    it, warm = est["iteration"], est["warm_start"]
    assert est["training_instructions"] == 1960 and it["instructions"] == 64 and it["sampled"] == 192
    assert it["gen_tokens_max"] == 192 * 240 and it["eval_problems"] == 200 and it["eval_completions"] == 200
    assert warm["train_sequences"] == 1200 * 2 and warm["sampled"] == 0  # warmup_limit 1200, 2 epochs
    assert est["rates"].sample_tps.value == 800 and not est["rates"].sample_tps.measured
    assert "CPU hours" in compute.describe_plan(cfg)


def test_the_total_counts_only_the_evaluations_eval_every_runs():
    every, ends = (compute.estimate(load_config("tiny-cpu", overrides={"eval_every": e})) for e in (1, 0))
    eval_h = every["iteration"]["eval_s"] / 3600
    assert ends["evaluated_iterations"] == [0, 7] and every["evaluated_iterations"] == list(range(8))
    assert every["total_gpu_h"] - ends["total_gpu_h"] == pytest.approx(6 * eval_h) and eval_h > 0
    assert every["total_wall_h"] - ends["total_wall_h"] == pytest.approx(6 * eval_h)
    assert "after iterations 0, 7" in compute.describe_plan(load_config("tiny-cpu"))


def test_more_gpus_shorten_the_wall_time_not_the_gpu_hours():
    one, four = (compute.estimate(load_config("paper", overrides={"gpus": n}))["iteration"] for n in (1, 4))
    assert four["gpu_h"] == pytest.approx(one["gpu_h"])
    assert four["wall_h"] == pytest.approx(one["wall_h"] - 0.75 * one["train_s"] / 3600)


def test_functional_scoring_adds_testbench_simulations():
    it = compute.estimate(load_config("tiny-cpu", overrides={"score": "functional"}))["iteration"]
    assert it["testbench_sims"] == it["syntax_checks"] == 192


def test_a_data_file_is_counted_and_limit_applies(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"instruction": "x", "output": "y"}\n' for _ in range(50)))
    cfg = load_config("tiny-cpu", overrides={"data": str(data), "instructions_per_iter": 0})
    assert compute.training_instructions(cfg) == (50, "rows of d.jsonl, before the filter")
    assert compute.estimate(cfg)["iteration"]["instructions"] == 50
    limited = load_config("tiny-cpu", overrides={"data": str(data), "limit": 20})
    assert compute.training_instructions(limited)[0] == 20


def measured_run(tmp_path, sampler="hf"):
    run = tmp_path / "run"
    (run / "iter-01").mkdir(parents=True)
    (run / "state.json").write_text('{"stages": {}}')
    (run / "iter-01" / "sample_stats.json").write_text(json.dumps(
        {"sampler": sampler, "completions": 100, "tokens": 5000, "seconds": 10.0, "tokens_per_s": 500.0,
         "prompts": 50, "prompt_tokens": 6000, "device": "cpu"}))
    (run / "iter-01" / "train_log.json").write_text(json.dumps(
        {"tokens": 40000, "seconds": 4.0, "processes": 2, "device": "cpu"}))
    return run


def test_measured_rates_override_the_assumed_ones(tmp_path):
    run = measured_run(tmp_path)
    cfg = load_config("tiny-cpu", overrides={"measured_from": str(run)})
    rates = compute.estimate(cfg)["rates"]
    assert (rates.sample_tps.value, rates.completion_tokens.value, rates.prompt_tokens.value) == (500, 50, 120)
    assert rates.train_tps.value == 40000 / (4.0 * 2)  # per GPU
    assert all(f.measured for f in (rates.sample_tps, rates.train_tps, rates.completion_tokens, rates.prompt_tokens))
    plan = compute.describe_plan(cfg)
    assert f"sampling: 500 generated tokens/s per GPU [measured: in {run}, sampler hf on cpu]" in plan
    assert "[assumed:" not in plan


def test_a_rate_measured_with_another_sampler_is_not_used(tmp_path):
    cfg = load_config("paper", overrides={"measured_from": str(measured_run(tmp_path, sampler="hf"))})
    rates = compute.estimate(cfg)["rates"]  # paper samples with vLLM
    assert not rates.sample_tps.measured and rates.sample_tps.value == 5000
    assert rates.completion_tokens.measured and rates.train_tps.measured


def test_measured_from_must_be_a_run_with_measurements(tmp_path):
    with pytest.raises(UserError, match="is not a run folder"):
        compute.estimate(load_config("tiny-cpu", overrides={"measured_from": str(tmp_path)}))
    (tmp_path / "state.json").write_text("{}")
    with pytest.raises(UserError, match="holds no sample_stats.json"):
        compute.estimate(load_config("tiny-cpu", overrides={"measured_from": str(tmp_path)}))


def test_unknown_gpu_type_lists_the_known_ones():
    with pytest.raises(UserError) as err:
        load_config("paper", overrides={"gpu_type": "v100"})
    assert str(err.value) == ("config field gpu_type='v100' is invalid: must be one of "
                              "('h100', 'a100', 'l4', 'cpu')")


def test_every_gpu_type_has_assumed_rates_with_a_source():
    assert set(compute.ASSUMED_TRAIN_TPS) == set(GPU_TYPES)
    assert {g for g, _ in compute.ASSUMED_SAMPLE_TPS} == set(GPU_TYPES)
    assert all(value > 0 and source for value, source in
               [*compute.ASSUMED_TRAIN_TPS.values(), *compute.ASSUMED_SAMPLE_TPS.values()])
    with pytest.raises(UserError, match="vLLM needs a CUDA GPU"):
        compute.estimate(load_config("tiny-cpu", overrides={"sampler": "vllm"}))


def test_the_plan_says_which_figures_are_assumed():
    plan = compute.describe_plan(load_config("paper"))
    assert "sampled candidates: 81000" in plan and "GPU hours (h100)" in plan
    assert plan.count("[assumed:") == 4 and "train stage command" not in plan
