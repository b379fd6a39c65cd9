"""Tests for the tiny default model, model loading (LoRA, QLoRA on CPU, adapters), offline errors and
the prompt layout. All on CPU with models of a few hundred thousand parameters."""
from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from harness.model.models import ModelConfig, load_model, load_tokenizer, save_adapter_or_model  # noqa: E402
from harness.model.prompting import PLAIN_TEMPLATE, format_example, format_prompt  # noqa: E402
from harness.model.tiny_model import build_tiny_model  # noqa: E402
from verilog_tools.errors import UserError  # noqa: E402

SMALL = dict(vocab_size=512, hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=256)


def verilog_corpus(n: int = 60) -> list[str]:
    """A small varied Verilog corpus, enough for a BPE vocabulary of a few hundred tokens."""
    ops = ["+", "&", "|", "^", "-"]
    texts = []
    for i in range(n):
        width = i % 8 + 1
        texts.append(
            f"module top_module (\n    input clk,\n    input reset,\n    input [{width - 1}:0] a, b,\n"
            f"    output reg [{width - 1}:0] q\n);\n    always @(posedge clk) begin\n"
            f"        if (reset) q <= {width}'d0;\n        else q <= a {ops[i % len(ops)]} b;\n"
            f"    end\nendmodule\n")
    return texts


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("m") / "tiny", verilog_corpus(), seed=0, **SMALL)


def test_default_tiny_model_reloads_with_auto_classes_and_round_trips_verilog(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny_model(tmp_path / "default", verilog_corpus(), seed=0)  # default shape
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    assert model.config.model_type == "llama"
    assert 1_000_000 < model.num_parameters() < 10_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert {tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token} == {"<s>", "</s>", "<pad>"}
    text = verilog_corpus()[3] + "// unseen: é ∑ \t tabs\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text) / 2  # the BPE merges learned something about Verilog
    out = model(input_ids=torch.tensor([ids[:16]]))
    assert out.logits.shape == (1, 16, len(tokenizer))


def test_build_is_deterministic_for_a_seed(tmp_path, tiny):
    again = build_tiny_model(tmp_path / "again", verilog_corpus(), seed=0, **SMALL)
    other = build_tiny_model(tmp_path / "other", verilog_corpus(), seed=1, **SMALL)
    assert (again / "tokenizer.json").read_bytes() == (tiny / "tokenizer.json").read_bytes()
    assert (again / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (tiny / "model.safetensors").read_bytes()


def test_build_reuses_a_complete_folder_and_refuses_a_different_one(tiny):
    before = (tiny / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(tiny, iter(()), seed=0, **SMALL) == tiny  # corpus not even read
    assert (tiny / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="other settings"):
        build_tiny_model(tiny, verilog_corpus(), seed=5, **SMALL)


def test_build_rejects_an_empty_corpus(tmp_path):
    with pytest.raises(UserError, match="empty"):
        build_tiny_model(tmp_path / "x", ["", "  "], **SMALL)
    assert not (tmp_path / "x").exists()


def test_format_prompt_uses_the_chat_template(tiny):
    tokenizer = load_tokenizer(ModelConfig(str(tiny)))
    prompt = format_prompt(tokenizer, "Build an AND gate.")
    assert prompt == "<s><|user|>\nBuild an AND gate.\n<|assistant|>\n"
    assert tokenizer.padding_side == "left"


def test_format_prompt_plain_without_chat_template(tiny):
    tokenizer = load_tokenizer(ModelConfig(str(tiny)))
    tokenizer.chat_template = None
    assert format_prompt(tokenizer, "Build it.") == "<s>" + PLAIN_TEMPLATE.format(instruction="Build it.")
    prompt, full = format_example(tokenizer, "Build it.", "assign y = a;\nendmodule")
    assert full == prompt + "assign y = a;\nendmodule</s>"


def test_pad_token_falls_back_to_eos(tiny, tmp_path):
    import json

    folder = tmp_path / "nopad"
    shutil.copytree(tiny, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("pad_token", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = load_tokenizer(ModelConfig(str(folder)))
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"


def test_lora_leaves_only_adapter_weights_trainable(tiny):
    model = load_model(ModelConfig(str(tiny), lora=True, lora_r=4, lora_alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # "all-linear" reaches attention and MLP projections but not the (tied) output head.
    assert any("q_proj" in n for n in trainable) and any("down_proj" in n for n in trainable)
    assert not any("lm_head" in n or "embed" in n for n in trainable)


def test_full_fine_tune_and_inference_modes(tiny):
    full = load_model(ModelConfig(str(tiny), lora=False, gradient_checkpointing=True))
    assert all(p.requires_grad for p in full.parameters())
    full.train()
    ids = torch.randint(0, 300, (2, 12))
    full(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in full.parameters())
    frozen = load_model(ModelConfig(str(tiny), lora=True), trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not frozen.training


def test_qlora_4bit_nf4_loads_and_trains_on_cpu(tiny):
    import bitsandbytes as bnb

    model = load_model(ModelConfig(str(tiny), quant="4bit", lora=True, lora_r=4, gradient_checkpointing=True))
    base = model.get_base_model()
    layer = base.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert layer.weight.quant_state.quant_type == "nf4"
    assert layer.weight.quant_state.nested  # double quantisation
    model.train()
    ids = torch.randint(0, 300, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all("lora_" in n for n in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())


def test_adapter_saves_and_reloads_to_continue(tiny, tmp_path):
    cfg = ModelConfig(str(tiny), lora=True, lora_r=4)
    model = load_model(cfg)
    with torch.no_grad():  # a fresh adapter is the identity (B = 0); make it matter
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.eval()
    ids = torch.randint(0, 300, (1, 10))
    expected = model(input_ids=ids).logits
    out = save_adapter_or_model(model, load_tokenizer(cfg), tmp_path / "adapter")
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    again = load_model(cfg, adapter_path=out, trainable=False)
    assert torch.allclose(again(input_ids=ids).logits, expected, atol=1e-5)
    resumed = load_model(cfg, adapter_path=out, trainable=True)
    assert any(p.requires_grad for n, p in resumed.named_parameters() if "lora_" in n)
    with pytest.raises(UserError, match="already exists"):
        save_adapter_or_model(model, load_tokenizer(cfg), out)


def test_full_model_saves_and_reloads_as_the_next_base(tiny, tmp_path):
    cfg = ModelConfig(str(tiny), lora=False)
    model = load_model(cfg)
    with torch.no_grad():
        model.model.norm.weight.mul_(2.0)
    ids = torch.randint(0, 300, (1, 10))
    expected = model.eval()(input_ids=ids).logits
    out = save_adapter_or_model(model, load_tokenizer(cfg), tmp_path / "full")
    again = load_model(cfg, adapter_path=out, trainable=False)
    assert torch.allclose(again(input_ids=ids).logits, expected, atol=1e-5)


def test_hub_id_without_local_copy_is_a_user_error():
    name = "itertl-tests/no-such-model-anywhere"
    with pytest.raises(UserError) as err:
        load_tokenizer(ModelConfig(name))
    assert str(err.value) == (
        f"model '{name}' is not available offline: download it on a connected machine "
        f"(huggingface-cli download {name}) and pass MODEL=/path/to/local/copy, "
        "or set HF_HOME to a cache that has it")


def test_local_folder_without_tokenizer_names_the_missing_files(tiny, tmp_path):
    folder = tmp_path / "no_tokenizer"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, folder / name)
    with pytest.raises(UserError, match="tokenizer.json") as err:
        load_model(ModelConfig(str(folder)))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="does not exist"):
        load_tokenizer(ModelConfig(str(tmp_path / "missing")))


@pytest.mark.parametrize("field,value,allowed", [
    ("quant", "3bit", "none, 4bit, 8bit"), ("dtype", "fp8", "auto, float32"), ("device", "tpu", "auto, cpu, cuda")])
def test_model_config_rejects_unknown_choices(field, value, allowed):
    with pytest.raises(UserError, match=f"ModelConfig.{field} must be one of {allowed}"):
        ModelConfig("m", **{field: value})


def test_model_config_rejects_quantised_full_fine_tune_and_bad_lora():
    with pytest.raises(UserError, match="ModelConfig.lora"):
        ModelConfig("m", quant="4bit", lora=False)
    with pytest.raises(UserError, match="lora_dropout"):
        ModelConfig("m", lora_dropout=1.5)
    assert ModelConfig("m", target_modules="q_proj, v_proj").target_modules == ["q_proj", "v_proj"]


def test_4bit_without_bitsandbytes_is_a_one_line_user_error(tiny, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # makes `import bitsandbytes` fail
    with pytest.raises(UserError, match="quant=4bit needs a working bitsandbytes") as err:
        load_model(ModelConfig(str(tiny), quant="4bit"))
    assert "\n" not in str(err.value) and "QUANT=none" in str(err.value)


def test_tiny_model_shape_is_checked():
    from harness.model.tiny_model import TinyModelConfig

    with pytest.raises(UserError, match="TinyModelConfig.intermediate_size must be a multiple of 32"):
        TinyModelConfig(intermediate_size=688)
    with pytest.raises(UserError, match="TinyModelConfig.hidden_size"):
        TinyModelConfig(hidden_size=96, num_heads=5)
