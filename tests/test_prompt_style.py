"""train_prompt_style: training prompts, sampled completions, scores and training responses agree in
``module`` (a whole module asked for) and ``body`` (VerilogEval v1's layout: header given, body asked for)."""
from __future__ import annotations

import json

import pytest

from harness.model.prompting import format_example, format_prompt, response_text
from harness.config import TrainConfig
from tasks.prompts import BODY_INSTRUCTION, MODULE_INSTRUCTION
from tasks.records import TrainingRecord
from verilog_tools.errors import UserError

HEADER = "module top_module(input a, input b, output y);"
BODY = "\n  assign y = a & b;\nendmodule\n"
REFERENCE = HEADER + BODY


def _record() -> TrainingRecord:
    return TrainingRecord(id="r1", instruction="Build an AND gate.", header=HEADER, reference=REFERENCE,
                          source="test", dut_module="top_module")


def test_prompts_of_both_styles():
    from harness.loop.stages import record_prompt, record_to_problem
    module, body = record_prompt(_record()), record_prompt(_record(), "body")
    assert MODULE_INSTRUCTION.format(name="top_module") in module and BODY_INSTRUCTION not in module
    assert BODY_INSTRUCTION in body and body.rstrip().endswith(HEADER)
    assert record_to_problem(_record(), "body").completion_mode == "body"
    assert record_to_problem(_record()).completion_mode == "module"


def test_response_text_cuts_the_header_only_in_body_style():
    assert response_text(REFERENCE, HEADER, "module") == REFERENCE
    assert response_text(REFERENCE, HEADER, "body") == BODY
    assert response_text("module other(); endmodule", HEADER, "body") is None
    assert response_text(REFERENCE, "", "body") is None
    with pytest.raises(ValueError, match="prompt style"):
        response_text(REFERENCE, HEADER, "chat")


def test_config_field_defaults_to_module_and_rejects_others_in_one_line():
    assert TrainConfig().train_prompt_style == "module"
    with pytest.raises(UserError, match="train_prompt_style") as err:
        TrainConfig(train_prompt_style="header")
    assert "\n" not in str(err.value)


def test_body_completions_are_scored_as_header_plus_body():
    from harness.objective.scoring import ScoreConfig, score_groups
    # right, broken, header repeated, no code at all
    completions = [BODY, "\n  assign y = a &;\nendmodule\n", REFERENCE, "I cannot help."]
    (row,) = score_groups([_record()], [completions], ScoreConfig(completion_mode="body"))
    sampled = row["candidates"][:4]
    assert all(c["text"].startswith(HEADER) for c in sampled)  # so training can cut the header off again
    assert [c["syntax_ok"] for c in sampled] == [True, False, True, None]
    assert sampled[3]["status"] == "no_code" and sampled[3]["text"] == HEADER + "I cannot help."
    assert sampled[0]["score"] == pytest.approx(1.0) and sampled[1]["score"] == 0.0
    assert sampled[2]["text"].count("module top_module") == 1 and sampled[2]["modules"] == 1


def test_training_responses_are_bodies_and_foreign_candidates_are_counted(tmp_path):
    from test_ranking import tiny_tokenizer

    from harness.objective.ranking import build_ranking_dataset
    from harness.loop.stages import record_prompt
    tok = tiny_tokenizer()
    row = {"id": "r1", "instruction": record_prompt(_record(), "body"), "header": HEADER,
           "candidates": [{"text": HEADER + "\n  assign y = a;\nendmodule\n", "source": "model", "score": 0.5},
                          {"text": "module other(input a); endmodule\n", "source": "model", "score": 0.0},
                          {"text": REFERENCE, "source": "reference", "score": 1.0}]}
    stats: dict = {}
    (item,) = build_ranking_dataset([row], tok, format_example, style="body", stats=stats)
    assert stats["not_in_style"] == 1 and stats["candidates_dropped"] == 1
    ref = item["candidates"][-1]
    response = "".join(tok.convert_ids_to_tokens(ref["input_ids"][ref["response_start"]:-1]))  # EOS last
    assert response == BODY
    prompt = "".join(tok.convert_ids_to_tokens(ref["input_ids"][:ref["response_start"]]))
    assert prompt == format_prompt(tok, row["instruction"]) and HEADER + "\n" in prompt  # as evaluation asks
    (module_item,) = build_ranking_dataset([row], tok, format_example)
    assert len(module_item["candidates"]) == 3


def test_the_run_records_the_style(tmp_path):
    from harness.commands.train import open_run, parse_args
    cfg, args = parse_args(["--results-dir", str(tmp_path), "--run", "r", "--train-prompt-style", "body"])
    run = open_run(cfg, args)
    assert json.loads((run.path / "manifest.json").read_text())["config"]["train_prompt_style"] == "body"
    run.release()


def test_synthetic_heldout_is_asked_in_the_training_style():
    from harness.loop.stages import eval_problems
    cfg = TrainConfig(train_prompt_style="body", eval_limit=1)
    (problem,) = eval_problems(cfg, [_record()])
    assert problem.completion_mode == "body" and problem.benchmark == "synthetic"
    assert problem.reference_completion() == BODY
