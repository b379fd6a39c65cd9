"""Tests for harness.sample.sampling: seeded reproducibility, the stop at `endmodule`, max_new_tokens, and the
samples.jsonl rows for problems. A tiny model is first overfitted on two fixed answers so its greedy
output is known exactly."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from harness.model.models import ModelConfig, load_model, load_tokenizer  # noqa: E402
from harness.model.prompting import encode_prompt, format_prompt  # noqa: E402
from harness.sample.sampling import (  # noqa: E402
    SamplingConfig, completion_seed, sample_completions, truncate_at_stop)
from harness.model.tiny_model import build_tiny_model  # noqa: E402
from verilog_tools.errors import UserError  # noqa: E402

SMALL = dict(vocab_size=512, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=256)
# Each answer goes on past its first `endmodule` (and has no EOS), so only the stop can end it early.
ANSWERS = {
    "Write an AND gate.": "assign y = a & b;\nendmodule\nmodule extra(input x);\nendmodule\nmodule more;",
    "Write a register with reset.": "always @(posedge clk) q <= reset ? 0 : d;\nendmodule\nmodule spare;\n",
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def encode_example(tokenizer, instruction: str, response: str) -> tuple[list[int], int]:
    """(input_ids, prompt_length): the prompt's tokens, then the response's and EOS, tokenised apart as
    the model sees them when sampling (prompt tokens, then generated ones)."""
    prompt_ids = encode_prompt(tokenizer, format_prompt(tokenizer, instruction))
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + response_ids, len(prompt_ids)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    corpus = [instruction + "\n" + answer for instruction, answer in ANSWERS.items()] * 20
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", corpus, seed=0, **SMALL)


@pytest.fixture(scope="module")
def overfit(tiny):
    """(model, tokenizer) that has memorised ANSWERS (no EOS appended) for the two instructions."""
    cfg = ModelConfig(str(tiny), lora=False)
    tokenizer, model = load_tokenizer(cfg), load_model(cfg)
    torch.manual_seed(0)
    rows = [encode_example(tokenizer, instruction, answer) for instruction, answer in ANSWERS.items()]
    rows = [(ids[:-1], prompt_len) for ids, prompt_len in rows]  # no EOS: it must write on past endmodule
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, prompt_len) in enumerate(rows):
        input_ids[r, :len(ids)] = torch.tensor(ids)
        labels[r, prompt_len:len(ids)] = torch.tensor(ids[prompt_len:])
        mask[r, :len(ids)] = 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, "the tiny model failed to memorise the answers; the tests below need it"
    model.eval()
    return model, tokenizer


def prompts_for(tokenizer):
    return [format_prompt(tokenizer, instruction) for instruction in ANSWERS]


def greedy(**kwargs) -> SamplingConfig:
    return SamplingConfig(temperature=0.0, **{"max_new_tokens": 64, **kwargs})


def test_greedy_output_stops_after_first_endmodule_per_row(overfit):
    model, tokenizer = overfit
    # Both prompts in one left-padded batch: each row must stop on its own.
    out = sample_completions(model, tokenizer, prompts_for(tokenizer), greedy(batch_size=2), progress=False)
    expected = [truncate_at_stop(answer) for answer in ANSWERS.values()]
    assert [texts[0] for texts in out] == expected


def test_without_the_stop_generation_runs_on(overfit):
    model, tokenizer = overfit
    out = sample_completions(model, tokenizer, prompts_for(tokenizer)[:1],
                             greedy(stop_at_endmodule=False, max_new_tokens=24), progress=False)
    assert out[0][0].startswith(truncate_at_stop(list(ANSWERS.values())[0]) + "\nmodule extra")


def test_max_new_tokens_is_respected(overfit):
    model, tokenizer = overfit
    instruction, answer = next(iter(ANSWERS.items()))
    ids, prompt_len = encode_example(tokenizer, instruction, answer)
    out = sample_completions(model, tokenizer, prompts_for(tokenizer)[:1], greedy(max_new_tokens=3),
                             progress=False)
    assert out[0][0] == tokenizer.decode(ids[prompt_len:prompt_len + 3])


def test_sampling_is_seeded_and_independent_of_batch_size(tiny):
    cfg = ModelConfig(str(tiny), lora=False)
    tokenizer, model = load_tokenizer(cfg), load_model(cfg, trainable=False)  # random weights: varied output
    prompts = prompts_for(tokenizer)
    base = dict(num_samples=3, temperature=1.0, top_p=0.95, max_new_tokens=12, seed=7)
    first = sample_completions(model, tokenizer, prompts, SamplingConfig(batch_size=4, **base), progress=False)
    again = sample_completions(model, tokenizer, prompts, SamplingConfig(batch_size=4, **base), progress=False)
    single = sample_completions(model, tokenizer, prompts, SamplingConfig(batch_size=1, **base), progress=False)
    other = sample_completions(model, tokenizer, prompts, SamplingConfig(batch_size=4, **{**base, "seed": 8}),
                               progress=False)
    assert [len(texts) for texts in first] == [3, 3]
    assert first == again == single
    assert other != first
    assert len({text for texts in first for text in texts}) == 6  # each completion has its own stream


def test_top_p_small_is_greedy(overfit):
    model, tokenizer = overfit
    nucleus = SamplingConfig(num_samples=2, temperature=1.0, top_p=1e-6, max_new_tokens=64, seed=3)
    out = sample_completions(model, tokenizer, prompts_for(tokenizer), nucleus, progress=False)
    assert out == sample_completions(model, tokenizer, prompts_for(tokenizer), greedy(num_samples=2),
                                     progress=False)


def test_truncate_at_stop_and_seeds():
    assert truncate_at_stop("a;\nendmodule\nmodule b; endmodule") == "a;\nendmodule"
    assert truncate_at_stop("no end here") == "no end here"
    seeds = {completion_seed(0, i, j) for i in range(50) for j in range(20)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("field,value", [("num_samples", 0), ("temperature", -1.0), ("top_p", 0.0),
                                         ("top_p", 1.5), ("batch_size", 0), ("max_new_tokens", -3)])
def test_sampling_config_validation_names_the_field(field, value):
    with pytest.raises(UserError, match=f"SamplingConfig.{field}"):
        SamplingConfig(**{field: value})


def test_generate_samples_for_problems_rows(tiny, monkeypatch):
    import sys
    import types

    from harness.sample.sampling import generate_samples_for_problems
    from tasks.problem import Problem

    try:
        from tasks.prompts import build_prompt  # noqa: F401
    except ImportError:  # tasks/prompts.py is written by another helper; stand in until it exists
        stub = types.ModuleType("tasks.prompts")
        stub.build_prompt = lambda problem: problem.description
        monkeypatch.setitem(sys.modules, "tasks.prompts", stub)
    problems = [Problem(task_id=f"t{i}", benchmark="test", description="Write an AND gate.",
                        header="module top_module(input a, b, output y);", reference="", testbench="")
                for i in range(2)]
    rows = generate_samples_for_problems(problems, ModelConfig(str(tiny), lora=False),
                                         SamplingConfig(num_samples=2, max_new_tokens=4), progress=False)
    assert [(r["task_id"], r["completion_id"]) for r in rows] == [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]
    assert all(isinstance(r["completion"], str) for r in rows)


def test_sampling_from_a_training_qlora_model_keeps_its_gradients(tiny):
    # bitsandbytes repacks 4-bit weights for its CPU inference kernel in eval mode; training must still
    # work afterwards, as in the loop (sample from the model, then train it).
    # On AVX512-BF16 CPUs that repacked layout has no autograd kernel, which silently drops gradients.
    cfg = ModelConfig(str(tiny), quant="4bit", lora=True, lora_r=4, lora_dropout=0.0)
    tokenizer, model = load_tokenizer(cfg), load_model(cfg)
    with torch.no_grad():  # non-zero B so gradients flow back through the quantised layers
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.train()
    ids = torch.randint(0, 300, (2, 10))

    def lora_grads():
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n}

    before = lora_grads()
    cfg_s = SamplingConfig(num_samples=2, max_new_tokens=6, seed=1)
    first = sample_completions(model, tokenizer, prompts_for(tokenizer), cfg_s, progress=False)
    assert model.training
    assert first == sample_completions(model, tokenizer, prompts_for(tokenizer), cfg_s, progress=False)
    after = lora_grads()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.allclose(before[name], after[name], atol=1e-5), name
