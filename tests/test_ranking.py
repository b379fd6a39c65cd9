"""The ranking objective's arithmetic, the log-likelihoods it ranks, and how groups become batches."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from harness.model.prompting import format_example  # noqa: E402
from harness.objective.ranking import (RankingCollator, build_ranking_dataset, ordered_pairs,  # noqa: E402
                             ranking_loss, ranking_loss_and_grad, sequence_logprobs)
from verilog_tools.errors import UserError  # noqa: E402

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def tiny_tokenizer():
    """A character-level fast tokenizer: every printable ASCII character is one token."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    vocab = {tok: i for i, tok in enumerate(SPECIALS + [chr(c) for c in range(32, 127)] + ["\n"])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def tiny_model(seed: int = 0, vocab_size: int = 128, hidden_size: int = 32):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def group_row(gid: str, texts_scores: list[tuple[str, float | None, str]]) -> dict:
    return {"id": gid, "instruction": f"Write module {gid}.", "header": "",
            "candidates": [{"text": t, "source": src, "modules": 1, "syntax_ok": True, "rouge_l": None,
                            "score": s, "status": "ok"} for t, s, src in texts_scores]}


# ---- the loss arithmetic -------------------------------------------------------------------------

def test_hand_computed_three_candidates():
    logps, scores = [-1.0, -2.0, -0.5], [1.0, 0.5, 0.0]
    # pairs (0,1): max(0, -(1)) = 0; (0,2): max(0, 0.5) = 0.5; (1,2): max(0, 1.5) = 1.5
    loss, grad, pairs, correct = ranking_loss_and_grad(logps, scores, margin=0.0)
    assert loss == pytest.approx(2.0 / 3.0) and pairs == 3 and correct == 1
    assert grad == pytest.approx([-1 / 3, -1 / 3, 2 / 3])
    # margin 1: (0,1) sits on the kink (0), (0,2) = 1.5, (1,2) = 2.5
    loss, grad, _, _ = ranking_loss_and_grad(logps, scores, margin=1.0)
    assert loss == pytest.approx(4.0 / 3.0)
    assert grad == pytest.approx([-1 / 3, -1 / 3, 2 / 3])
    tensor_loss = ranking_loss(torch.tensor(logps), scores, margin=0.0)
    assert tensor_loss.item() == pytest.approx(2.0 / 3.0)


def test_unscorable_candidates_take_part_in_no_pair():
    assert ordered_pairs([1.0, None, 0.0]) == [(0, 2)]
    loss, grad, pairs, _ = ranking_loss_and_grad([-3.0, -0.1, -1.0], [1.0, None, 0.0], margin=0.0)
    assert pairs == 1 and loss == pytest.approx(2.0) and grad[1] == 0.0
    # ties and all-unscorable groups give no pair: CE only
    assert ranking_loss_and_grad([-1.0, -2.0], [0.5, 0.5], 0.0)[2] == 0
    assert ranking_loss(torch.tensor([-1.0, -2.0], requires_grad=True), [None, None], 0.0).item() == 0.0


def test_closed_form_gradient_equals_autograd():
    gen = torch.Generator().manual_seed(3)
    for _ in range(50):
        logps = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
        scores = [None if r < 0.15 else round(r, 1) for r in torch.rand(5, generator=gen).tolist()]
        margin = float(torch.rand(1, generator=gen)) if _ % 2 else 0.0
        gap, reduction = (0.3, "sum") if _ % 3 == 0 else (0.0, "mean")
        loss = ranking_loss(logps, scores, margin, gap, reduction)
        if loss.requires_grad:
            loss.backward()
        auto = logps.grad.tolist() if logps.grad is not None else [0.0] * 5
        value, grad, _, _ = ranking_loss_and_grad(logps.detach().tolist(), scores, margin, gap, reduction)
        assert value == pytest.approx(loss.item(), abs=1e-12)
        assert grad == pytest.approx(auto, abs=1e-12)


def test_min_score_gap_keeps_only_pairs_far_enough_apart():
    scores = [1.0, 0.9, 0.35, 0.3, None]
    assert ordered_pairs(scores) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    # 1.0 - 0.9 is 0.09999999999999998 in floats: still a gap of 0.1; 0.35 - 0.3 is not
    assert ordered_pairs(scores, min_gap=0.1) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    assert ordered_pairs(scores, min_gap=0.6) == [(0, 2), (0, 3), (1, 3)]
    assert ordered_pairs(scores, min_gap=2.0) == []
    # logps [-1, -2, -0.5, -3]: with gap 0.6 the pairs (0,2), (0,3), (1,3) have hinges 0.5, 0, 0
    loss, grad, pairs, correct = ranking_loss_and_grad([-1.0, -2.0, -0.5, -3.0, 0.0], scores, 0.0, min_gap=0.6)
    assert (pairs, correct) == (3, 2) and loss == pytest.approx(0.5 / 3)
    assert grad == pytest.approx([-1 / 3, 0.0, 1 / 3, 0.0, 0.0])


def test_sum_over_pairs_is_the_mean_times_the_pair_count():
    logps, scores = [-1.0, -2.0, -0.5], [1.0, 0.5, 0.0]  # hinges (margin 1): 0 (kink), 1.5, 2.5
    loss, grad, pairs, _ = ranking_loss_and_grad(logps, scores, margin=1.0, reduction="sum")
    assert pairs == 3 and loss == pytest.approx(4.0) and grad == pytest.approx([-1.0, -1.0, 2.0])
    mean_loss = ranking_loss_and_grad(logps, scores, margin=1.0, reduction="mean")[0]
    assert loss == pytest.approx(3 * mean_loss)
    assert ranking_loss(torch.tensor(logps), scores, 1.0, reduction="sum").item() == pytest.approx(4.0)


@pytest.mark.parametrize("bad,match", [(dict(margin=-0.1), "margin"), (dict(min_gap=-1.0), "min_score_gap"),
                                       (dict(reduction="max"), "pair_reduction"),
                                       (dict(min_gap=float("nan")), "min_score_gap")])
def test_pair_options_are_checked(bad, match):
    from harness.objective.ranking import check_pair_options
    options = {"margin": 0.0, "min_gap": 0.0, "reduction": "mean", **bad}
    with pytest.raises(UserError, match=match):
        check_pair_options(**options)


def test_config_fields_reject_bad_pair_options_in_one_line():
    from harness.config import TrainConfig
    for field, value in (("pair_reduction", "avg"), ("min_score_gap", -0.5)):
        with pytest.raises(UserError, match=field) as err:
            TrainConfig(**{field: value})
        assert "\n" not in str(err.value)
    assert (TrainConfig().min_score_gap, TrainConfig().pair_reduction) == (0.0, "mean")


# ---- log-likelihoods -----------------------------------------------------------------------------

def test_sequence_logprobs_match_naive_log_softmax():
    model = tiny_model()
    tok = tiny_tokenizer()
    items = build_ranking_dataset([group_row("a", [("assign y = a;", 0.5, "model"),
                                                    ("module m; endmodule", 1.0, "reference")])],
                                  tok, format_example)
    batch = RankingCollator(tok.pad_token_id)(items)
    sums, counts = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["response_mask"])
    for r, cand in enumerate(items[0]["candidates"]):
        ids = torch.tensor([cand["input_ids"]])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
        per_token = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)[cand["response_start"] - 1:]
        assert counts[r].item() == len(cand["input_ids"]) - cand["response_start"]
        assert sums[r].item() == pytest.approx(per_token.sum().item(), abs=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_chunked_head_equals_autograd_of_the_float32_log_softmax(dtype):
    """HeadLogprobs (one [chunk, V] buffer, gradients by hand) against autograd on whole float32 logits:
    values and the gradients of hidden states, weight and bias, with chunks that do not divide N."""
    from harness.objective.logprobs import chunked_token_logprobs
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=True).to(dtype)
    hidden = torch.randn(2, 7, 16, generator=gen).to(dtype).requires_grad_()
    targets = torch.randint(0, 50, (2, 7), generator=gen)
    upstream = torch.randn(2, 7, generator=gen)
    fused = chunked_token_logprobs(hidden, head, targets, chunk_tokens=3)
    assert fused.dtype == torch.float32
    (fused * upstream).sum().backward()
    got = [t.grad.clone() for t in (hidden, head.weight, head.bias)]
    for t in (hidden, head.weight, head.bias):
        t.grad = None
    logits = torch.nn.functional.linear(hidden.float(), head.weight.float(), head.bias.float())
    reference = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    (reference * upstream).sum().backward()
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(got, (hidden.grad, head.weight.grad, head.bias.grad)):
        assert mine.dtype == dtype
        torch.testing.assert_close(mine.float(), theirs.float(), atol=1e-5 if dtype == torch.float32 else 2e-2,
                                   rtol=1e-4 if dtype == torch.float32 else 2e-2)
    with torch.no_grad():  # the no-grad pass (split_gradients' first) gives the same values
        torch.testing.assert_close(chunked_token_logprobs(hidden, head, targets, 3), reference.detach())


def test_frozen_head_gets_no_gradient_but_the_hidden_states_do():
    from harness.objective.logprobs import chunked_token_logprobs
    head = torch.nn.Linear(8, 20, bias=False).requires_grad_(False)
    hidden = torch.randn(5, 8, requires_grad=True)
    chunked_token_logprobs(hidden, head, torch.arange(5), chunk_tokens=2).sum().backward()
    assert head.weight.grad is None and hidden.grad is not None and hidden.grad.abs().sum() > 0


# ---- data and batches ----------------------------------------------------------------------------

def test_dataset_finds_reference_by_source_not_position_and_appends_eos_once():
    tok = tiny_tokenizer()
    row = group_row("g", [("module r; endmodule", 1.0, "reference"), ("module x; endmodule", None, "model")])
    (item,) = build_ranking_dataset([row], tok, format_example)
    ref, cand = item["candidates"]
    assert ref["source"] == "reference" and cand["score"] is None
    prompt, _ = format_example(tok, row["instruction"], "")
    assert ref["response_start"] == len(tok(prompt, add_special_tokens=False)["input_ids"])
    response = ref["input_ids"][ref["response_start"]:]
    assert response[-1] == tok.eos_token_id and response.count(tok.eos_token_id) == 1
    assert "".join(tok.convert_ids_to_tokens(response[:-1])) == "module r; endmodule"
    with pytest.raises(ValueError, match="exactly one"):
        build_ranking_dataset([group_row("h", [("x", 0.0, "model")])], tok, format_example)


def test_max_length_drops_long_candidates_whole_and_counts_them():
    tok = tiny_tokenizer()
    prompt_len = len(tok(format_example(tok, "Write module g.", "")[0], add_special_tokens=False)["input_ids"])
    short, long_ = "ab", "module r; endmodule " * 5

    def length(text):
        return prompt_len + len(tok(text, add_special_tokens=False)["input_ids"]) + 1  # + EOS

    cap = length("module r; endmodule")
    rows = [group_row("g", [(short, 0.0, "model"), (long_, 0.5, "model"), ("module r; endmodule", 1.0, "reference")]),
            group_row("h", [(short, 0.0, "model"), (long_, 1.0, "reference")])]
    stats: dict = {}
    (item,) = build_ranking_dataset(rows, tok, format_example, max_length=cap, stats=stats)
    assert item["id"] == "g" and [c["score"] for c in item["candidates"]] == [0.0, 1.0]
    assert all(len(c["input_ids"]) <= cap for c in item["candidates"])  # kept whole, never cut
    assert item["candidates"][1]["input_ids"][-1] == tok.eos_token_id
    assert stats == {"groups_in": 2, "groups_kept": 1, "groups_dropped": 1, "candidates_dropped": 1, "not_in_style": 0,
                     "longest": length(long_)}
    assert len(build_ranking_dataset(rows, tok, format_example, max_length=0)) == 2  # 0 = no cap


def test_collator_keeps_groups_together():
    tok = tiny_tokenizer()
    rows = [group_row("a", [("x1", 0.3, "model"), ("x22", None, "model"), ("ref", 1.0, "reference")]),
            group_row("b", [("ref-b", 1.0, "reference"), ("yy", -1.0, "model")])]
    items = build_ranking_dataset(rows, tok, format_example)
    batch = RankingCollator(tok.pad_token_id)(items)
    assert batch["group_ids"].tolist() == [0, 0, 0, 1, 1]
    assert batch["is_reference"].tolist() == [False, False, True, True, False]
    assert math.isnan(batch["scores"][1].item()) and batch["scores"][4].item() == -1.0
    for r, cand in enumerate(c for item in items for c in item["candidates"]):
        n = len(cand["input_ids"])
        assert batch["input_ids"][r, :n].tolist() == cand["input_ids"]
        assert batch["attention_mask"][r].sum().item() == n
        assert batch["response_mask"][r].nonzero().squeeze(1).tolist() == list(range(cand["response_start"], n))
