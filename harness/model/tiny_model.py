"""Build the project's own tiny default model: a BPE tokenizer trained on local Verilog text plus a
randomly initialised Llama-architecture causal LM, saved as an ordinary Hugging Face folder.

The tiny model lets `make train` run end to end on a CPU in minutes with no download. It starts from
random weights, so it writes Verilog only after training on the synthetic task set; its job is to show a
learning signal and exercise every stage, not to score well on VerilogEval.

The folder loads with `AutoModelForCausalLM.from_pretrained(path)` and `AutoTokenizer.from_pretrained(path)`.
Building is deterministic given the corpus and the seed (tokenizer training is single-threaded for that
reason) and cached: a complete folder built with the same settings is reused, not rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from verilog_tools.errors import UserError

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
# Instruction markers are single tokens so the model learns the prompt layout quickly; they also make the
# chat template below unambiguous.
USER, ASSISTANT = "<|user|>", "<|assistant|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, USER, ASSISTANT]

# A minimal chat template (Jinja, as transformers renders it): one user turn, then the assistant's answer
# ended by EOS. harness.model.prompting uses it through tokenizer.apply_chat_template.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "\n{{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "\n{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "\n{% endif %}"
)

BUILD_INFO = "itertl_tiny_model.json"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", BUILD_INFO)


@dataclass
class TinyModelConfig:
    """Shape of the tiny Llama model; the defaults favour CPU speed (about 4M parameters)."""

    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary size (special tokens included)"})
    hidden_size: int = field(default=256, metadata={"help": "width of the residual stream"})
    num_layers: int = field(default=4, metadata={"help": "number of decoder layers"})
    num_heads: int = field(default=4, metadata={"help": "attention heads (hidden_size must divide evenly)"})
    intermediate_size: int = field(default=704, metadata={"help": "MLP inner width (a multiple of 32)"})
    max_positions: int = field(default=1024, metadata={"help": "longest sequence (prompt + answer) in tokens"})
    seed: int = field(default=0, metadata={"help": "seed for weight initialisation"})

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise UserError(f"TinyModelConfig.vocab_size must be >= 300 (256 bytes + specials), got {self.vocab_size}")
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_positions"):
            if getattr(self, name) <= 0:
                raise UserError(f"TinyModelConfig.{name} must be a positive integer, got {getattr(self, name)}")
        # bitsandbytes' CPU 4-bit inference kernel packs weights in blocks of 32 output features.
        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % 32:
                raise UserError(f"TinyModelConfig.{name} must be a multiple of 32, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise UserError(
                f"TinyModelConfig.hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})"
            )


def build_tiny_model(out_dir: str | os.PathLike, corpus: Iterable[str], *, vocab_size: int = 4096,
                     seed: int = 0, **shape: int) -> Path:
    """Train the tokenizer on `corpus`, initialise the model, save both to `out_dir`; return the path.

    `shape` takes the other TinyModelConfig fields (hidden_size, num_layers, ...). If `out_dir` already
    holds a complete build with the same settings it is returned untouched (the corpus is not re-read);
    a folder with different settings or a partial build is a UserError rather than silently replaced.
    """
    cfg = TinyModelConfig(vocab_size=vocab_size, seed=seed, **shape)
    out = Path(out_dir)
    if _is_complete(out):
        built = json.loads((out / BUILD_INFO).read_text())
        if built.get("config") != asdict(cfg):
            raise UserError(f"{out} holds a tiny model built with other settings; remove it or pick another folder")
        return out
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists but is not a complete tiny-model build; remove it and build again")
    texts = [t for t in corpus if t and t.strip()]
    if not texts:
        raise UserError("cannot build the tiny model: the Verilog corpus is empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp folder and rename, so an interrupted build never looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the model is meant to be shared like any output
        tokenizer = train_tokenizer(texts, cfg.vocab_size, max_length=cfg.max_positions)
        tokenizer.save_pretrained(tmp)
        model = init_model(cfg, tokenizer)
        model.save_pretrained(tmp)
        # The BPE trainer stops early when the corpus has too few mergeable pairs; record what it reached.
        info = {"config": asdict(cfg), "vocab_size_reached": len(tokenizer),
                "corpus_sha256": _corpus_hash(texts), "corpus_texts": len(texts)}
        (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def train_tokenizer(texts: list[str], vocab_size: int, *, max_length: int = 1024):
    """Train a byte-level BPE tokenizer on `texts`; return a PreTrainedTokenizerFast with chat template.

    Byte-level means any text round-trips exactly, including characters never seen in the corpus.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # keeps merges deterministic and CPU use low
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=[USER, ASSISTANT],
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )


def init_model(cfg: TinyModelConfig, tokenizer):
    """A randomly initialised LlamaForCausalLM sized by `cfg`, seeded for reproducibility."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,  # halves the parameter count of a model this small
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def _is_complete(out: Path) -> bool:
    return out.is_dir() and all((out / name).is_file() for name in REQUIRED_FILES)


def _corpus_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()
