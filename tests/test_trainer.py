"""RankingTrainer: split gradients equal joint ones, training moves the right weights, accumulation is exact."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from harness.model.prompting import format_example  # noqa: E402
from harness.objective.ranking import RankingCollator, build_ranking_dataset  # noqa: E402
from harness.objective.trainer import RankingConfig, RankingTrainer, joint_loss, split_backward  # noqa: E402
from test_ranking import group_row, tiny_model, tiny_tokenizer  # noqa: E402
from verilog_tools.errors import UserError  # noqa: E402


def _rows():
    return [
        group_row("a", [("module a; endmodule", 0.4, "model"), ("wire x;", 0.0, "model"),
                        ("garbage", None, "model"), ("module a(input i); endmodule", 1.0, "reference")]),
        group_row("b", [("module b(output o); assign o = 1; endmodule", 1.0, "reference"),
                        ("module b; endmodule", 0.7, "model"), ("module c; endmodule", -1.0, "model"),
                        ("assign o = 0;", 0.0, "model")]),
        group_row("c", [("x", 0.5, "model"), ("y", 0.5, "model"), ("module c; endmodule", 1.0, "reference")]),
        group_row("d", [("always @(posedge clk) q <= d;", 0.2, "model"), ("module d; endmodule", 1.0, "reference"),
                        ("module d; endmodule module e; endmodule", -1.0, "model")]),
    ]


def _dataset(tok):
    return build_ranking_dataset(_rows(), tok, format_example)


def _config(tmp_path, **overrides):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=2, learning_rate=1e-2, max_steps=2,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False,
                gradient_checkpointing=False, seed=0, lr_scheduler_type="constant", warmup_steps=0,
                dataloader_num_workers=0, max_grad_norm=0.0)
    base.update(overrides)
    return RankingConfig(**base)


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("length_normalize,margin,chunk,gap,reduction",
                         [(True, 0.0, 1, 0.0, "mean"), (False, 0.5, 3, 0.0, "mean"), (True, 0.5, 2, 0.25, "sum")])
def test_split_gradients_equal_joint_gradients(tmp_path, length_normalize, margin, chunk, gap, reduction):
    tok = tiny_tokenizer()
    batch = RankingCollator(tok.pad_token_id)(_dataset(tok))
    args = _config(tmp_path, alpha=0.7, margin=margin, length_normalize=length_normalize,
                   forward_chunk_size=chunk, min_score_gap=gap, pair_reduction=reduction)
    model = tiny_model()
    loss, stats = joint_loss(model, batch, args)
    (loss * 0.5).backward()
    joint = _grads(model)
    model.zero_grad()
    split_loss, split_stats = split_backward(model, batch, args, scale=0.5, backward=lambda t: t.backward())
    split = _grads(model)
    assert split_loss.item() == pytest.approx(loss.item(), abs=1e-5)
    assert stats["pairs"] == split_stats["pairs"] > 0 and stats["correct"] == split_stats["correct"]
    assert split_stats["rank_loss"] > 0 and joint.keys() == split.keys()
    for name in joint:
        torch.testing.assert_close(split[name], joint[name], atol=1e-5, rtol=1e-4, msg=name)


def test_unscorable_candidate_gets_no_gradient_signal(tmp_path):
    tok = tiny_tokenizer()
    rows = [group_row("a", [("zzz", None, "model"), ("module a; endmodule", 1.0, "reference")])]
    batch = RankingCollator(tok.pad_token_id)(build_ranking_dataset(rows, tok, format_example))
    model = tiny_model()
    loss, stats = joint_loss(model, batch, _config(tmp_path))
    assert stats["pairs"] == 0 and stats["rank_loss"] == 0.0
    assert loss.item() == pytest.approx(stats["ce_loss"])  # CE only


def _train(tmp_path, model, tok, **overrides):
    trainer = RankingTrainer(model=model, args=_config(tmp_path, **overrides), train_dataset=_dataset(tok),
                             processing_class=tok)
    trainer.train()
    return trainer


@pytest.mark.parametrize("split", [True, False])
def test_training_changes_weights_and_logs_terms(tmp_path, split):
    tok = tiny_tokenizer()
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = _train(tmp_path, model, tok, split_gradients=split)
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(changed) == len(before)
    logged = [h for h in trainer.state.log_history if "ce_loss" in h]
    assert logged and all({"rank_loss", "rank_accuracy", "loss"} <= h.keys() for h in logged)
    assert logged[0]["loss"] == pytest.approx(logged[0]["ce_loss"] + logged[0]["rank_loss"], rel=1e-4)


def test_lora_changes_only_adapter_weights(tmp_path):
    from peft import LoraConfig
    tok = tiny_tokenizer()
    peft_config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    trainer = RankingTrainer(model=tiny_model(), args=_config(tmp_path), train_dataset=_dataset(tok),
                             processing_class=tok, peft_config=peft_config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert {n for n in before if "lora_B" in n} <= changed


@pytest.mark.parametrize("split", [True, False])
def test_gradient_accumulation_matches_bigger_batch(tmp_path, split):
    tok = tiny_tokenizer()
    big, small = tiny_model(), tiny_model()
    # SGD: the update is lr * gradient, so equal updates mean equal gradients
    _train(tmp_path / "big", big, tok, split_gradients=split, per_device_train_batch_size=2, max_steps=1,
           optim="sgd")
    _train(tmp_path / "acc", small, tok, split_gradients=split, per_device_train_batch_size=1,
           gradient_accumulation_steps=2, max_steps=1, optim="sgd")
    start = tiny_model()
    for (name, p_big), p_acc, p0 in zip(big.named_parameters(), small.parameters(), start.parameters()):
        assert not torch.equal(p_big, p0) or "embed" in name
        torch.testing.assert_close(p_acc - p0, p_big - p0, atol=1e-6, rtol=1e-4, msg=name)


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(UserError, match="alpha"):
        _config(tmp_path, alpha=-1.0)
    with pytest.raises(UserError, match="forward_chunk_size"):
        _config(tmp_path, forward_chunk_size=0)
    with pytest.raises(UserError, match="pair_reduction"):
        _config(tmp_path, pair_reduction="median")
    with pytest.raises(UserError, match="min_score_gap"):
        _config(tmp_path, min_score_gap=-0.1)


def test_min_score_gap_and_sum_change_the_pairs_and_the_loss(tmp_path):
    """Group "b" has scores 1.0, 0.7, -1.0, 0.0: 6 pairs, 5 at a gap >= 0.5 (not 0.7 vs 1.0)."""
    tok = tiny_tokenizer()
    batch = RankingCollator(tok.pad_token_id)(_dataset(tok)[1:2])
    model = tiny_model()
    with torch.no_grad():
        losses = {opts: joint_loss(model, batch, _config(tmp_path, margin=5.0, min_score_gap=opts[0],
                                                         pair_reduction=opts[1]))
                  for opts in ((0.0, "mean"), (0.5, "mean"), (0.0, "sum"))}
    assert [losses[o][1]["pairs"] for o in losses] == [6, 5, 6]
    mean_rank, sum_rank = losses[(0.0, "mean")][1]["rank_loss"], losses[(0.0, "sum")][1]["rank_loss"]
    assert sum_rank == pytest.approx(6 * mean_rank) and mean_rank > 0


def test_4bit_nf4_lora_training_step_on_cpu(tmp_path):
    """QLoRA on CPU: bitsandbytes 0.50 quantises and runs NF4 Linear4bit layers without CUDA."""
    pytest.importorskip("bitsandbytes")
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    tok = tiny_tokenizer()
    tiny_model(hidden_size=64).save_pretrained(tmp_path / "base")  # NF4 blocks are 64 wide
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base", quantization_config=quant,
                                                 device_map={"": "cpu"}, dtype=torch.float32)
    assert model.is_loaded_in_4bit
    peft_config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    trainer = RankingTrainer(model=model, args=_config(tmp_path / "out", max_steps=1), train_dataset=_dataset(tok),
                             processing_class=tok, peft_config=peft_config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("ce_loss" in h for h in trainer.state.log_history)


def _lora_with_dropout(rate: float):
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(tiny_model(), LoraConfig(r=4, lora_alpha=8, lora_dropout=rate,
                                                    target_modules=["q_proj", "v_proj", "down_proj"]))
    for name, p in model.named_parameters():  # non-zero B, so the LoRA path (and its dropout) matters
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5, generator=torch.Generator().manual_seed(1))
    return model.train()


def test_split_gradients_turn_dropout_off_and_equal_the_joint_gradient(tmp_path):
    """LoRA dropout 0.5 in training mode: without the fix the two passes see different masks and the
    split gradient differs from any joint one; the trainer sets dropout to 0 and they agree."""
    tok = tiny_tokenizer()
    batch = RankingCollator(tok.pad_token_id)(_dataset(tok))
    args = _config(tmp_path, alpha=0.7, margin=0.5)
    torch.manual_seed(0)
    unfixed = _lora_with_dropout(0.5)
    split_backward(unfixed, batch, args, scale=1.0, backward=lambda t: t.backward())
    noisy = _grads(unfixed)

    trainer = RankingTrainer(model=_lora_with_dropout(0.5), args=args, train_dataset=_dataset(tok),
                             processing_class=tok)
    model = trainer.model.train()
    assert trainer.dropout_disabled == 6  # q_proj, v_proj, down_proj in each of 2 layers
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    loss, _ = joint_loss(model, batch, args)
    loss.backward()
    joint = _grads(model)
    model.zero_grad()
    split_backward(model, batch, args, scale=1.0, backward=lambda t: t.backward())
    split = _grads(model)
    assert joint.keys() == split.keys() and joint
    for name in joint:
        torch.testing.assert_close(split[name], joint[name], atol=1e-5, rtol=1e-4, msg=name)
    assert any(not torch.allclose(noisy[n], joint[n], atol=1e-3) for n in joint)  # the test can fail


def test_joint_mode_keeps_dropout(tmp_path):
    tok = tiny_tokenizer()
    trainer = RankingTrainer(model=_lora_with_dropout(0.1), args=_config(tmp_path, split_gradients=False),
                             train_dataset=_dataset(tok), processing_class=tok)
    assert trainer.dropout_disabled == 0
    assert any(m.p == 0.1 for m in trainer.model.modules() if isinstance(m, torch.nn.Dropout))


@pytest.mark.parametrize("chunk", [0, 7])
def test_logprobs_are_float32_from_bf16_weights(chunk):
    """A bf16 model: the ranking's log-probabilities come out in float32 and, with chunking, equal a
    float32 log-softmax of float32 logits computed from the same hidden states."""
    from harness.objective.ranking import sequence_logprobs
    tok = tiny_tokenizer()
    batch = RankingCollator(tok.pad_token_id)(_dataset(tok)[:1])
    model = tiny_model().to(torch.bfloat16)
    sums, counts = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["response_mask"],
                                     chunk_tokens=chunk)
    assert sums.dtype == torch.float32
    if chunk:
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True).hidden_states[-1]
        logp = torch.log_softmax(hidden.float() @ model.lm_head.weight.float().T, -1)[:, :-1]
        per_token = logp.gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1) * batch["response_mask"][:, 1:]
        torch.testing.assert_close(sums, per_token.sum(1), atol=1e-4, rtol=1e-5)


def test_chunked_logprobs_and_gradients_equal_the_unchunked_ones(tmp_path):
    tok = tiny_tokenizer()
    batch = RankingCollator(tok.pad_token_id)(_dataset(tok))
    grads = []
    for chunk in (0, 5):
        model = tiny_model().train()
        loss, _ = joint_loss(model, batch, _config(tmp_path, margin=0.5, logprob_chunk_tokens=chunk))
        loss.backward()
        grads.append((loss.item(), _grads(model)))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-6)
    for name in grads[0][1]:
        torch.testing.assert_close(grads[1][1][name], grads[0][1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_checkpointing_gives_the_same_split_gradient(tmp_path):
    tok = tiny_tokenizer()
    batch = RankingCollator(tok.pad_token_id)(_dataset(tok))
    args = _config(tmp_path, margin=0.5)
    grads = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        split_backward(model, batch, args, scale=1.0, backward=lambda t: t.backward())
        grads.append(_grads(model))
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5, msg=name)


def test_chunked_logprobs_stay_float32_under_autocast():
    """The GPU trainer runs the forward, and the two-pass gradient its backward, inside a bf16 autocast
    region: the chunked log-softmax must still compute float32 logits and gradients (an H200 gpu-check
    failed here: a bf16 matmul's output met a float32 scatter_add_)."""
    from harness.objective.logprobs import HeadLogprobs

    torch.manual_seed(0)
    targets, hidden0, weight0 = torch.randint(0, 40, (9,)), torch.randn(9, 16), torch.randn(40, 16)
    results = []
    for autocast in (False, True):
        hidden, weight = hidden0.clone().requires_grad_(), weight0.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logp = HeadLogprobs.apply(hidden, weight, None, targets, 4)
            logp.sum().backward()
        assert logp.dtype == torch.float32
        results.append((logp.detach(), hidden.grad, weight.grad))
    for plain, autocast in zip(*results):
        torch.testing.assert_close(autocast, plain, atol=1e-6, rtol=1e-6)
