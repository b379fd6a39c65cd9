"""Tests for harness.sample.decode: the decode loop gives what transformers' generate() gives, row for row,
when rows finish at different steps and are dropped from the batch; its cache refuses to overflow."""
from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from harness.sample.decode import PrefixLayer, cache_keyword, decode  # noqa: E402
from harness.model.models import ModelConfig, load_model, load_tokenizer  # noqa: E402
from harness.model.prompting import format_prompt  # noqa: E402
from harness.sample.sampling import SamplingConfig, SeededSampler, sample_completions  # noqa: E402
from harness.model.tiny_model import build_tiny_model  # noqa: E402

SMALL = dict(vocab_size=384, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=256)
CORPUS = ["module m(input a, output y); assign y = ~a; endmodule\n```verilog\n```"] * 30
# Prompts of different lengths: the batch is left-padded.
PROMPTS = ["Write an inverter.", "Write a module with one input, one output and a register on the clock.", "Hi"]

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", CORPUS, seed=0, **SMALL)
    cfg = ModelConfig(str(path), lora=False)
    return load_model(cfg, trainable=False), load_tokenizer(cfg)  # random weights: varied output


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("stops", [{"stop_at_endmodule": True}, {"stop_at_endmodule": False, "stop_at_fence": True}])
def test_loop_gives_what_generate_gives(model_and_tokenizer, temperature, stops):
    model, tokenizer = model_and_tokenizer
    prompts = [format_prompt(tokenizer, p) for p in PROMPTS]
    cfg = SamplingConfig(num_samples=3, temperature=temperature, top_p=0.9, max_new_tokens=40, batch_size=9,
                         seed=5, **stops)
    loop = sample_completions(model, tokenizer, prompts, cfg, progress=False)
    generate = sample_completions(model, tokenizer, prompts, dataclasses.replace(cfg, decoder="generate"),
                                  progress=False)
    assert loop == generate
    if temperature > 0:
        assert len({text for texts in loop for text in texts}) > 1


def test_dropping_finished_rows_does_not_change_the_others(model_and_tokenizer):
    """Rows stop at different steps (a stop on a token that differs per row); each row's ids equal those
    of the same row decoded alone, with its own generator."""
    model, tokenizer = model_and_tokenizer
    tokenizer.padding_side = "left"
    enc = tokenizer([format_prompt(tokenizer, p) for p in PROMPTS], return_tensors="pt", padding=True,
                    add_special_tokens=False)
    stop_lengths = torch.tensor([3, 11, 7])
    seeds = [11, 12, 13]

    def run(rows):
        sampler = SeededSampler([seeds[r] for r in rows], 1.0, 0.95)
        limits = stop_lengths[rows]
        state = {"limits": limits}

        def stop(generated):
            return torch.full((generated.shape[0],), generated.shape[1]) >= state["limits"]

        def drop(keep):
            sampler.keep(keep)
            state["limits"] = state["limits"][keep]

        with torch.inference_mode():
            return decode(model, enc["input_ids"][rows], enc["attention_mask"][rows], max_new_tokens=20,
                          eos_ids=[], choose=sampler.draw, stop=stop, on_drop=drop)

    together = run([0, 1, 2])
    assert [len(ids) for ids in together] == [3, 11, 7]
    # Alone, a row has no left padding: compare with each row's prompt un-padded.
    for row in range(3):
        width = int(enc["attention_mask"][row].sum())
        sampler = SeededSampler([seeds[row]], 1.0, 0.95)
        with torch.inference_mode():
            alone = decode(model, enc["input_ids"][row:row + 1, -width:], enc["attention_mask"][row:row + 1, -width:],
                           max_new_tokens=int(stop_lengths[row]), eos_ids=[], choose=sampler.draw)
        assert alone[0] == together[row]


def test_an_eos_ends_a_row_and_is_kept(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    enc = tokenizer([format_prompt(tokenizer, PROMPTS[0])], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        first = decode(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=5, eos_ids=[],
                       choose=lambda logits: logits.argmax(-1))[0]
        ended = decode(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=5, eos_ids=[first[1]],
                       choose=lambda logits: logits.argmax(-1))[0]
    assert ended == first[:first.index(first[1]) + 1]


def test_the_prefix_cache_refuses_to_overflow():
    layer = PrefixLayer(capacity=4)
    keys = torch.zeros(1, 2, 3, 8)
    layer.update(keys, keys)
    assert layer.get_seq_length() == 3 and layer.keys.shape == (1, 2, 3, 8)
    with pytest.raises(RuntimeError, match="capacity of 4"):
        layer.update(keys, keys)


def test_the_cache_keyword_is_one_the_model_takes(model_and_tokenizer):
    import inspect

    model, _ = model_and_tokenizer
    assert cache_keyword(model) in inspect.signature(model.forward).parameters
