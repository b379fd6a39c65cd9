"""Load and save the model being fine-tuned: a Hugging Face causal LM, optionally 4-/8-bit quantised
(bitsandbytes), with LoRA adapters (peft) or fully trainable.

Loading never touches the network: a hub id must already be in the local Hugging Face cache, otherwise a
one-line UserError says how to get it there. The three training set-ups:

- quant="4bit", lora=True: QLoRA as in the paper (NF4 weights, double quantisation, bf16 compute,
  `prepare_model_for_kbit_training`, LoRA on every linear layer). Works on CPU too, slowly.
- quant="none", lora=True: plain LoRA on the full-precision model.
- quant="none", lora=False: full fine-tuning (the tiny default model is small enough for this).

Iteration i continues from iteration i-1 by passing `adapter_path` (a folder written by
`save_adapter_or_model`): a LoRA adapter is loaded on top of the base model, a full model replaces it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from verilog_tools.errors import UserError

QUANTS = ("none", "4bit", "8bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass
class ModelConfig:
    """Which model to load and how to make it trainable."""

    name_or_path: str = field(metadata={"help": "local model folder or Hugging Face hub id (must be cached locally)"})
    quant: str = field(default="none", metadata={"help": "weight quantisation: none | 4bit (NF4, QLoRA) | 8bit"})
    lora: bool = field(default=True, metadata={"help": "train LoRA adapters (True) or all weights (False)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input, in [0, 1)"})
    target_modules: str | list[str] = field(
        default="all-linear", metadata={"help": "modules that get LoRA: 'all-linear' or a list of module names"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations in backward to save memory (slower)"})
    dtype: str = field(
        default="auto", metadata={"help": "weight dtype: auto (bf16 on a GPU that has it, else fp32) | float32 | "
                                          "bfloat16 | float16"})
    device: str = field(default="auto", metadata={"help": "auto (cuda if available) | cpu | cuda"})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "run model code shipped with the checkpoint (only for models you trust)"})

    def __post_init__(self) -> None:
        if not self.name_or_path or not str(self.name_or_path).strip():
            raise UserError("ModelConfig.name_or_path must be a model folder or hub id, got an empty string")
        self.name_or_path = str(self.name_or_path)
        _check_choice("quant", self.quant, QUANTS)
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("device", self.device, DEVICES)
        if self.quant != "none" and not self.lora:
            raise UserError(f"ModelConfig.lora must be True when quant={self.quant!r}: quantised weights cannot be "
                            "fine-tuned directly (use quant='none' for full fine-tuning)")
        if self.lora_r <= 0:
            raise UserError(f"ModelConfig.lora_r must be a positive integer, got {self.lora_r}")
        if self.lora_alpha <= 0:
            raise UserError(f"ModelConfig.lora_alpha must be positive, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UserError(f"ModelConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if isinstance(self.target_modules, str):
            if self.target_modules != "all-linear":
                self.target_modules = [m.strip() for m in self.target_modules.split(",") if m.strip()]
        if not self.target_modules:
            raise UserError("ModelConfig.target_modules must be 'all-linear' or a non-empty list of module names")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"ModelConfig.{name} must be one of {', '.join(allowed)}; got {value!r}")


def resolve_model_path(name_or_path: str) -> Path:
    """The local folder holding `name_or_path`: the path itself, or the cached snapshot of a hub id."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or name_or_path.startswith((".", "~")) or path.exists():
        raise UserError(f"model folder {name_or_path} does not exist (or is not a folder)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name_or_path, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        raise UserError(
            f"model '{name_or_path}' is not available offline: download it on a connected machine "
            f"(huggingface-cli download {name_or_path}) and pass MODEL=/path/to/local/copy, "
            "or set HF_HOME to a cache that has it") from None


def check_model_folder(path: Path, *, need_weights: bool = True) -> None:
    """UserError naming the missing files if `path` lacks a config, weights or a tokenizer."""
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if need_weights and not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        missing.append("model weights (*.safetensors or *.bin)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json, tokenizer.model or vocab.json)")
    if missing:
        raise UserError(f"model folder {path} is incomplete: missing {'; '.join(missing)}")


def load_tokenizer(cfg: ModelConfig, *, path: str | os.PathLike | None = None):
    """The tokenizer of `cfg`'s model (or of `path`), padded on the left for batched generation.

    A tokenizer without a pad token gets the EOS token as pad; attention masks keep it from mattering.
    """
    from transformers import AutoTokenizer

    folder = Path(path) if path is not None else resolve_model_path(cfg.name_or_path)
    check_model_folder(folder, need_weights=False)
    tokenizer = AutoTokenizer.from_pretrained(
        folder, local_files_only=True, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"tokenizer in {folder} has neither a pad nor an EOS token; add one to its config")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def pick_device(cfg: ModelConfig) -> str:
    """cpu, cuda, or cuda:LOCAL_RANK in a process started by `accelerate launch` (one GPU per process)."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda was asked for but no CUDA device is visible; use DEVICE=cpu or auto")
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        # Under DDP each process must hold its own copy (QLoRA's device_map included) on its own GPU.
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def pick_dtype(cfg: ModelConfig, device: str):
    import torch

    if cfg.dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, cfg.dtype)


def quantization_config(cfg: ModelConfig):
    """The BitsAndBytesConfig for `cfg.quant`, or None; UserError if bitsandbytes cannot run here."""
    if cfg.quant == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
        from transformers.integrations import validate_bnb_backend_availability

        validate_bnb_backend_availability(raise_exception=True)
    except Exception as exc:  # ImportError, RuntimeError from missing native libraries, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"quant={cfg.quant} needs a working bitsandbytes ({reason}); "
                        "install the [train] extra or use QUANT=none") from None
    if cfg.quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        # bf16 as in QLoRA; older GPUs (before Ampere) lack it and get fp16.
        bnb_4bit_compute_dtype=torch.float16 if _gpu_without_bf16() else torch.bfloat16,
    )


def _gpu_without_bf16() -> bool:
    import torch

    return torch.cuda.is_available() and not torch.cuda.is_bf16_supported()


def load_model(cfg: ModelConfig, *, adapter_path: str | os.PathLike | None = None, trainable: bool = True):
    """The model of `cfg`, ready to train (trainable=True) or to sample from (eval mode, no grads).

    `adapter_path` continues from a previous iteration: a folder with adapter_config.json is loaded as a
    LoRA adapter on the base model; a folder with a full model (saved with lora=False) replaces the base.
    With lora=True and no adapter, a fresh LoRA adapter is added only when trainable.
    """
    adapter = Path(adapter_path) if adapter_path is not None else None
    is_adapter = adapter is not None and (adapter / "adapter_config.json").is_file()
    if adapter is not None and not adapter.is_dir():
        raise UserError(f"weights folder {adapter} does not exist; was the previous iteration's train stage run?")
    if adapter is not None and not is_adapter:
        check_model_folder(adapter)  # a full fine-tuned model from an earlier iteration
    base_path = adapter if adapter is not None and not is_adapter else resolve_model_path(cfg.name_or_path)
    check_model_folder(base_path)
    model = _load_base(cfg, base_path)
    if cfg.quant == "4bit" and trainable:
        keep_4bit_layout_trainable(model)
    if cfg.quant != "none" and trainable:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing and trainable:
        # transformers 5 renamed gradient to activation checkpointing; keep the old name for older releases.
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    elif cfg.lora and trainable:
        model = _add_lora(cfg, model)
    if not trainable:
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
    return model


def _load_base(cfg: ModelConfig, path: Path):
    from transformers import AutoModelForCausalLM

    device = pick_device(cfg)
    quant = quantization_config(cfg)
    kwargs = {"local_files_only": True, "trust_remote_code": cfg.trust_remote_code,
              "dtype": pick_dtype(cfg, device)}
    if quant is not None:
        # prepare_model_for_kbit_training later upcasts the parts left unquantised (norms) to fp32.
        kwargs.update(quantization_config=quant, device_map={"": device})
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (ImportError, RuntimeError) as exc:
        if quant is None:
            raise
        raise UserError(f"cannot load {path} with quant={cfg.quant} on {device}: "
                        f"{str(exc).splitlines()[0]}; try QUANT=none") from None
    if quant is None:
        model = model.to(device)
    return model


def keep_4bit_layout_trainable(model) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for its CPU inference kernel.

    On CPUs with AVX512-BF16, a Linear4bit run in eval mode without grad (e.g. while sampling from the
    model being trained) rewrites its weight into a packed layout for good; later training forwards then
    use a kernel with no autograd support, and the gradient through the quantised layer is silently
    dropped (bitsandbytes 0.50 only warns). Models loaded for training therefore keep the plain layout.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def _add_lora(cfg: ModelConfig, model):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def save_adapter_or_model(model, tokenizer, out_dir: str | os.PathLike) -> Path:
    """Write the LoRA adapter (for a PeftModel) or the whole model, plus the tokenizer, to `out_dir`.

    Written to a temporary sibling folder and renamed, so `out_dir` either holds a complete save or does
    not exist. An existing `out_dir` is an error: finished stages are never overwritten.
    """
    out = Path(out_dir)
    if out.exists():
        raise UserError(f"{out} already exists; refusing to overwrite a saved model")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
