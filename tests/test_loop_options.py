"""The loop's options that make iterations a treatment: data_seed, the optimiser/schedule across
iterations, the limited warm start with fresh instructions, and the per-iteration diagnostics.

Training here is a 2-layer Llama of width 32 on a character tokenizer (tests/test_ranking.py), on CPU.
"""
from __future__ import annotations

import json
import math
import os
import random

import pytest

torch = pytest.importorskip("torch")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from harness.config import TrainConfig  # noqa: E402
from harness.loop import diagnostics, loop, stages  # noqa: E402
from harness.loop import train_stage as train_stage_module  # noqa: E402
from harness.loop.train_stage import train_stage  # noqa: E402
from harness.objective import schedule as sched  # noqa: E402
from harness.runs import layout  # noqa: E402
from harness.runs.folder import RunFolder  # noqa: E402
from tasks.records import TrainingRecord  # noqa: E402
from verilog_tools.errors import UserError  # noqa: E402
from test_ranking import group_row, tiny_model, tiny_tokenizer  # noqa: E402

LR = 1e-3


def _records(n: int) -> list[TrainingRecord]:
    return [TrainingRecord(id=f"r{i:03d}", instruction="x", header="", reference="", source="t") for i in range(n)]


# ---- data_seed -------------------------------------------------------------------------------------

def _prepare(tmp_path, name: str, **fields) -> dict[str, str]:
    run = RunFolder.create(tmp_path, name, "train")
    loop.prepare_data_stage(run, TrainConfig(limit=24, workers=1, **fields))
    run.release()
    return {split: (run.path / "data" / f"{split}.jsonl").read_text() for split in ("train", "heldout")}


def test_data_seed_fixes_the_benchmark_while_seed_varies(tmp_path):
    a = _prepare(tmp_path, "a", seed=1, data_seed=0)
    b = _prepare(tmp_path, "b", seed=2, data_seed=0)
    c = _prepare(tmp_path, "c", seed=1, data_seed=5)
    assert a == b                                   # another seed: the same tasks and split
    assert a["heldout"] != c["heldout"] and a["train"] != c["train"]


def test_seed_still_varies_training_choices():
    recs = _records(50)
    one, two = TrainConfig(seed=1, instructions_per_iter=10), TrainConfig(seed=2, instructions_per_iter=10)
    assert loop.iteration_subset(recs, one, 1) != loop.iteration_subset(recs, two, 1)


# ---- the schedule -----------------------------------------------------------------------------------

def test_schedule_has_no_step_at_learning_rate_zero_and_known_values():
    # 12 steps, 5% warmup: one warmup step at half the rate, then cosine from the full rate.
    factors = [sched.lr_factor(s, 12, 0.05) for s in range(12)]
    assert factors[0] == 0.5 and factors[1] == 1.0
    assert factors[2] == pytest.approx(0.5 * (1 + math.cos(math.pi / 11)))
    for total in (1, 2, 3, 12, 97):
        for ratio in (0.0, 0.05, 0.5, 0.9):
            assert all(sched.lr_factor(s, total, ratio) > 0 for s in range(total + 3)), (total, ratio)
    # past the planned total the last factor holds (an extended run)
    assert sched.lr_factor(20, 12, 0.05) == factors[-1]


@pytest.mark.parametrize("shape", ["linear", "constant"])
def test_other_schedule_shapes_keep_the_warmup_and_never_reach_zero(shape):
    factors = [sched.lr_factor(s, 12, 0.05, shape) for s in range(12)]
    assert factors[0] == 0.5 and factors[1] == 1.0 and min(factors) > 0
    expected = [(12 - s) / 11 for s in range(1, 12)] if shape == "linear" else [1.0] * 11
    assert factors[1:] == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        sched.lr_factor(3, 12, 0.05, "step")


def test_trainer_constants_are_config_fields(tmp_path, base):
    info = _train(base, tmp_path / "a", lr_schedule="constant", weight_decay=0.1, max_grad_norm=0.5,
                  logs_per_stage=1)
    assert info["schedule"]["learning_rates"] == pytest.approx([LR / 2, LR, LR])
    cfg = TrainConfig(weight_decay=0.1, max_grad_norm=0.5, lr_schedule="linear")
    args = train_stage_module._training_args(cfg, 1, 3, epochs=1.0, learning_rate=LR, seed=3, out=tmp_path / "b", logging_steps=1)
    assert (args.weight_decay, args.max_grad_norm, args.lr_scheduler_type) == (0.1, 0.5, "linear")
    with pytest.raises(UserError, match="lr_schedule='step' is invalid"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(UserError, match="logs_per_stage=0 is invalid"):
        TrainConfig(logs_per_stage=0)


def test_optimizer_steps_counts_as_the_trainer():
    assert sched.optimizer_steps(96, 8, 1, 1, 1.0) == 12
    assert sched.optimizer_steps(97, 8, 1, 1, 1.0) == 13
    assert sched.optimizer_steps(96, 8, 2, 1, 1.5) == 9     # ceil(1.5 * 6)
    assert sched.optimizer_steps(96, 4, 1, 2, 1.0) == 12    # two processes share the batch
    assert sched.optimizer_steps(3, 8, 4, 1, 1.0) == 1


def _rows(n: int = 6) -> list[dict]:
    rows = []
    for g in range(n):
        rows.append(group_row(f"g{g}", [(f"module m{g}; endmodule", 1.0, "reference"),
                                        (f"wire w{g};", 0.3, "model"), ("x" * (g + 1), 0.0, "model")]))
    return rows


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("base") / "model"
    tiny_model().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def _train(base, out, schedule=None, weights=None, lr=LR, **fields):
    cfg = TrainConfig(**{"groups_per_batch": 2, "split_gradients": False, "lr_warmup_ratio": 0.25, **fields})
    out.mkdir(parents=True)
    return train_stage(cfg, base, weights, _rows(), epochs=1.0, learning_rate=lr, seed=3, out=out,
                       schedule=schedule)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_reset_schedule_starts_above_zero_and_saves_no_state(tmp_path, base):
    info = _train(base, tmp_path / "a")
    assert info["steps"] == 3
    want = [LR * sched.lr_factor(s, 3, 0.25) for s in range(3)]
    assert info["schedule"]["learning_rates"] == pytest.approx(want)
    assert min(info["schedule"]["learning_rates"]) > 0 and want[0] == LR / 2
    assert not (tmp_path / "a" / sched.STATE_FILE).exists()


def test_continued_schedule_carries_optimizer_and_resumes_identically(tmp_path, base):
    first = _train(base, tmp_path / "1", sched.StageSchedule(total_steps=6, save=True))
    assert first["schedule"]["learning_rates"] == pytest.approx([LR * sched.lr_factor(s, 6, 0.25) for s in range(3)])
    saved = _state(tmp_path / "1" / sched.STATE_FILE)
    assert saved["global_step"] == 3
    second = sched.StageSchedule(start_step=3, total_steps=6, state_in=str(tmp_path / "1" / sched.STATE_FILE),
                                 save=True)
    weights = str(tmp_path / "1" / "model")
    info = _train(base, tmp_path / "2", second, weights=weights)
    assert info["schedule"]["learning_rates"] == pytest.approx([LR * sched.lr_factor(s, 6, 0.25)
                                                                for s in range(3, 6)])
    after = _state(tmp_path / "2" / sched.STATE_FILE)
    assert after["global_step"] == 6
    steps = {float(s["step"]) for s in after["optimizer"]["state"].values()}
    assert steps == {6.0}                          # AdamW's step count ran on from the first stage
    # a rerun of the second stage (what a kill and resume does) ends in exactly the same state
    _train(base, tmp_path / "2b", second, weights=weights)
    again = _state(tmp_path / "2b" / sched.STATE_FILE)
    for key, state in after["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, again["optimizer"]["state"][key][name]), (key, name)
    from safetensors.torch import load_file
    w1, w2 = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("2", "2b"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # without the carried state the same stage trains differently
    fresh = sched.StageSchedule(start_step=3, total_steps=6, save=True)
    _train(base, tmp_path / "2c", fresh, weights=weights)
    w3 = load_file(tmp_path / "2c" / "model" / "model.safetensors")
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


def test_continued_loop_plans_one_schedule_over_all_iterations(tmp_path):
    run = RunFolder.create(tmp_path, "r", "train")
    (run.path / "data").mkdir()
    (run.path / "data" / "train.jsonl").write_text("".join(r.to_json() + "\n" for r in _records(40)))
    cfg = TrainConfig(iters=3, instructions_per_iter=16, groups_per_batch=8, optimizer_schedule="continued")
    first = loop.stage_schedule(run, cfg, 1)
    assert (first.start_step, first.total_steps, first.state_in, first.save) == (0, 6, None, True)
    with pytest.raises(Exception, match="optimizer.pt is missing"):
        loop.stage_schedule(run, cfg, 2)
    assert loop.stage_schedule(run, TrainConfig(iters=3, optimizer_schedule="reset"), 2) == sched.StageSchedule()
    run.release()


# ---- warm start limit and fresh instructions ----------------------------------------------------------

def test_warmup_limit_and_fresh_instructions_first():
    recs = _records(50)
    cfg = TrainConfig(warmup_limit=20, instructions_per_iter=10)
    warm = {r.id for r in loop.warmup_records(recs, cfg)}
    assert len(warm) == 20 and warm == {r.id for r in loop.warmup_records(recs, cfg)}
    for it in (1, 2, 3):
        subset = loop.iteration_subset(recs, cfg, it)
        assert len(subset) == 10 and not warm & {r.id for r in subset}
        assert loop.instruction_counts(recs, subset, cfg) == {"used": 10, "fresh": 10, "seen_by_warm_start": 0,
                                                              "fresh_available": 30}
    more = TrainConfig(warmup_limit=20, instructions_per_iter=40)
    subset = loop.iteration_subset(recs, more, 1)
    counts = loop.instruction_counts(recs, subset, more)
    assert counts == {"used": 40, "fresh": 30, "seen_by_warm_start": 10, "fresh_available": 30}
    assert loop.warmup_records(recs, TrainConfig(warmup_limit=20, warmup_epochs=0)) == []


def test_without_a_warmup_limit_the_subsets_are_as_before():
    recs = _records(50)
    cfg = TrainConfig(instructions_per_iter=10, seed=4)
    old = sorted(random.Random("4:2").sample(recs, 10), key=lambda r: r.id)
    assert loop.iteration_subset(recs, cfg, 2) == old


# ---- diagnostics --------------------------------------------------------------------------------------

def test_candidate_diagnostics_known_counts():
    rows = [group_row("a", [("a", -1.0, "model"), ("b", 0.0, "model"), ("c", 1.0, "reference")]),
            group_row("b", [("a", 0.5, "model"), ("b", 1.0, "model"), ("c", None, "model"), ("d", 1.0, "reference")]),
            group_row("c", [("a", 1.0, "model"), ("b", 1.0, "reference")])]
    passed = iter([False, False, False, True, None, True])
    for row in rows:
        for c in row["candidates"]:
            if c["source"] == "model":
                c["passed"] = next(passed)
    rows[0]["candidates"][0]["syntax_ok"] = False
    d = diagnostics.candidate_diagnostics(rows)
    assert d["score_buckets"] == {"<0": 1, "0": 1, "(0,1)": 1, ">=1": 2, "none": 1}
    assert d["pass_rate"] == pytest.approx(2 / 5) and d["pass_checked"] == 5
    assert d["compile_rate"] == pytest.approx(5 / 6)
    assert d["informative_group_share"] == pytest.approx(2 / 3)   # group c: all scores equal
    # with the loss's minimum score gap 0.6, group b's pairs (1.0 over 0.5) no longer count
    assert diagnostics.candidate_diagnostics(rows, min_gap=0.6)["informative_group_share"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("split", [False, True])
def test_violated_pairs_counted_over_the_whole_stage(tmp_path, base, split):
    """With a learning rate too small to move the model, the stage's count equals one computed from the
    start model's log-likelihoods over every group (not only the last logging window's)."""
    from harness.model.prompting import format_example
    from harness.objective.ranking import RankingCollator, build_ranking_dataset, ordered_pairs, sequence_logprobs

    tok = tiny_tokenizer()
    model = tiny_model().eval()
    pairs = violated = 0
    for item in build_ranking_dataset(_rows(), tok, format_example):
        batch = RankingCollator(tok.pad_token_id)([item])
        with torch.no_grad():
            sums, counts = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"],
                                             batch["response_mask"])
        p = (sums / counts).tolist()
        for i, j in ordered_pairs([c["score"] for c in item["candidates"]]):
            pairs += 1
            violated += p[i] <= p[j]
    info = _train(base, tmp_path / "d", lr=1e-12, split_gradients=split)
    assert pairs == 18 and 0 < violated < pairs      # 6 groups of 3 distinct scores; a mixed case
    assert info["diagnostics"] == {"pairs": pairs, "violated_pairs": violated,
                                   "violated_fraction": violated / pairs, "micro_batches": 3}
    assert info["final"]["rank_pairs"] == 6          # the last window alone saw a third of them


def test_testbench_pass_rate_in_paper_mode(tmp_path):
    """The pass rate comes from each compiling candidate's testbench whatever the score: the reference
    passes, another task's design and a syntax error do not."""
    from tasks.synthetic import generate_tasks, to_records

    train, _ = generate_tasks(0, 20, 2)
    recs = to_records(train[:2], split="train")
    broken = "module top_module(; endmodule"
    candidates = [{"id": recs[0].id, "instruction": "i", "samples": [recs[0].reference, broken]},
                  {"id": recs[1].id, "instruction": "i", "samples": [recs[0].reference, recs[1].reference]}]
    cfg = TrainConfig(workers=2, score="paper")
    stats = stages.score_stage(cfg, recs, candidates, tmp_path / "s.jsonl", tmp_path / "st.json",
                               instructions={"used": 2})
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    passed = [[c.get("passed") for c in r["candidates"] if c["source"] == "model"] for r in rows]
    assert passed == [[True, False], [False, True]]
    assert stats["diagnostics"]["pass_rate"] == pytest.approx(2 / 4)
    assert stats["instructions"] == {"used": 2}


def test_diagnostics_reach_the_summary_and_the_report(tmp_path):
    from harness.reports import report, data as report_data

    d = tmp_path / "iter-01"
    d.mkdir()
    (d / "score_stats.json").write_text(json.dumps({
        "syntax_valid_rate": 0.5, "diagnostics": {"pass_rate": 0.25, "informative_group_share": 0.75,
                                                  "score_buckets": {"(0,1)": 3, "0": 2, "<0": 1, ">=1": 4, "none": 0}},
        "instructions": {"used": 8, "fresh": 6}}))
    (d / "train_log.json").write_text(json.dumps({
        "final": {"rank_accuracy": 1.0}, "diagnostics": {"violated_fraction": 0.4},
        "schedule": {"learning_rates": [0.5, 0.25]}}))
    row = layout.diagnostic_row(d)
    assert row == {"cand_pass_rate": 0.25, "informative_share": 0.75, "fresh_instructions": 6,
                   "cand_score_buckets": {"(0,1)": 3, "0": 2, "<0": 1, ">=1": 4, "none": 0},
                   "violated_pairs": 0.4, "lr_sum": 0.75}
    # in bucket order, whatever order the JSON file holds them in
    assert "<0:1 0:2 (0,1):3 >=1:4 none:0" in loop.format_table([{"iteration": 1, **row}])
    table = report.iteration_table([report_data.iteration_row(d, 1)])
    for label in ("violated pairs (whole iteration)", "candidates pass (testbench)", "groups with a ranked pair",
                  "sum of learning rates", "rank accuracy (last log window)"):
        assert label in table


def test_iterative_and_static_arms_use_the_same_instructions():
    """The arms differ only in the sampling model: the same seed gives each iteration the same subset, so
    their candidates' pass rates compare on the same instructions."""
    recs = _records(50)
    for it in (1, 2, 3):
        arms = [TrainConfig(mode=m, warmup_limit=20, instructions_per_iter=10, seed=2) for m in ("iterative", "static")]
        assert loop.iteration_subset(recs, arms[0], it) == loop.iteration_subset(recs, arms[1], it)


def test_score_stage_caps_each_simulation_at_score_sim_seconds(tmp_path, monkeypatch):
    """score_sim_seconds reaches every tool run of the score stage (the compile check and the pass
    diagnostic): a candidate that loops forever at time 0 fails at that limit, not the 60 s default."""
    from tasks.synthetic import generate_tasks, to_records
    from verilog_tools import icarus

    seen = []
    for name in ("simulate", "check_syntax_many"):
        original = getattr(icarus, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(kwargs.get("limits"))
            return _original(*args, **kwargs)
        monkeypatch.setattr(icarus, name, spy)
    (rec,) = to_records(generate_tasks(0, 20, 2)[0][:1], split="train")
    endless = rec.reference.replace("endmodule", "integer spin;\ninitial for (spin = 0; spin >= 0; spin = spin + 0) ;\nendmodule", 1)
    candidates = [{"id": rec.id, "instruction": "i", "samples": [endless]}]
    stats = stages.score_stage(TrainConfig(workers=1, score="paper", score_sim_seconds=1.5), [rec], candidates,
                               tmp_path / "s.jsonl", tmp_path / "st.json")
    assert seen and all(lim.sim_wall_seconds == 1.5 and lim.cpu_seconds == 1.5 for lim in seen)
    (row,) = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    (cand,) = [c for c in row["candidates"] if c["source"] == "model"]
    assert cand["syntax_ok"] is True and cand["passed"] is False
    assert stats["diagnostics"]["pass_rate"] == 0.0


def test_eval_every_zero_evaluates_iteration_zero_and_the_last():
    assert TrainConfig(iters=7, eval_every=0).evaluated_iterations() == [0, 7]
    assert TrainConfig(iters=0, eval_every=0).evaluated_iterations() == [0]
    assert TrainConfig(iters=7, eval_every=1).evaluated_iterations() == list(range(8))
    with pytest.raises(UserError, match="eval_every"):
        TrainConfig(eval_every=-1)
