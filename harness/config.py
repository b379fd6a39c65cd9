"""`TrainConfig`: every knob of an ITERTL run, its presets (YAML) and how overrides merge.

Order of precedence: dataclass defaults < preset YAML (``PRESET=``) < a user YAML (``CONFIG=``) <
command-line flags / Make variables. The merged result is written into the run folder.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.model.models import ModelConfig
from harness.model.prompting import PROMPT_STYLES
from harness.objective.ranking import PAIR_REDUCTIONS
from harness.model.tiny_model import TinyModelConfig
from verilog_tools.errors import UserError
from verilog_tools.config import option as _f

PRESET_DIR = Path(__file__).with_name("presets")
MODES = ("iterative", "static")
SCORES = ("paper", "functional", "equivalence")
QUANTS = ("none", "4bit", "8bit")
SAMPLERS = ("hf", "vllm")
VLLM_BASES = ("bf16", "nf4")
DISTRIBUTED = ("ddp", "deepspeed")
# GPU types the DRY_RUN compute estimate has rates for (harness/loop/compute.py)
GPU_TYPES = ("h100", "a100", "l4", "cpu")
OPTIMIZER_SCHEDULES = ("reset", "continued")
LR_SCHEDULES = ("cosine", "linear", "constant")  # harness.objective.schedule.lr_factor
# What a run made before a field existed used. A resumed run's manifest lacks such a field; its config is
# compared with this value, not with today's default (which may differ: warmup_limit's is now 1,200).
# Only fields whose default differs from that are listed; for the others the default is what old runs did.
BEFORE_THE_FIELD = {"optimizer_schedule": "reset", "warmup_limit": 0, "eval_sim_seconds": 60.0,
                    "score_sim_seconds": 60.0, "eval_every": 1}


@dataclass
class TrainConfig:
    """One train run's every setting. The defaults are the CPU default (the ``tiny-cpu`` preset, which
    overrides nothing); the ``paper`` preset lists what it changes."""

    preset: str = _f("tiny-cpu", "named setup in harness/presets/*.yaml")
    model: str = _f("tiny", "'tiny' (the project's own model, built offline), an HF id, or a local path")
    tiny_hidden_size: int = _f(192, "model=tiny: width of the residual stream")
    tiny_layers: int = _f(3, "model=tiny: decoder layers")
    tiny_heads: int = _f(3, "model=tiny: attention heads (must divide tiny_hidden_size)")
    tiny_intermediate_size: int = _f(512, "model=tiny: MLP width (a multiple of 32 for 4-bit on CPU)")
    torch_threads: int = _f(2, "CPU threads for torch (0 = torch's default; 2: the whole 2-core machine, 1 per arm "
                                 "when make experiment runs two at once)")
    quant: str = _f("none", "weight quantisation of the trained model: none | 4bit (QLoRA, NF4) | 8bit")
    lora: bool = _f(False, "train LoRA adapters instead of all weights (forced on with 4bit/8bit)")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    data: str = _f("synthetic", "training data: synthetic | resyn27k | path to a JSONL file")
    filter: bool = _f(True, "the paper's filter: drop multi-module and non-compiling references and score "
                            "multi-module candidates -1 (False: the no-filter ablation)")
    iters: int = _f(7, "number of ITERTL iterations after the warm start (the paper runs 7)")
    mode: str = _f("iterative", "iterative: sample from the current model; static: always from the start model")
    restart: bool = _f(False, "retrain every iteration from the warm-start weights instead of continuing")
    k: int = _f(4, "candidates per instruction: k-1 sampled + 1 reference")
    score: str = _f("paper", "paper: syntax + Rouge-L; functional: testbench pass first (synthetic only); "
                            "equivalence: differential simulation against the reference (any data)")
    alpha: float = _f(1.0, "weight of the ranking loss in L = L_CE + alpha * L_rank")
    margin: float = _f(0.0, "hinge margin of the ranking loss")
    min_score_gap: float = _f(0.0, "a candidate pair is ranked only if its scores differ by at least this "
                                   "(0 = every strict difference; e.g. 0.05 drops near-ties of Rouge-L)")
    pair_reduction: str = _f("mean", "ranking loss over a group's pairs: mean (alpha independent of K) | sum "
                                     "(the paper's and RRHF's)")
    length_normalize: bool = _f(True, "rank on per-token (length-normalised) log-likelihoods")
    train_prompt_style: str = _f("module", "layout of training prompts (sampling, scoring, training and the "
                                           "synthetic held-out set alike): module (the interface given, a whole "
                                           "module asked for) | body (VerilogEval v1's: the prompt ends with the "
                                           "module header, the model writes the body)")
    instructions_per_iter: int = _f(64, "instructions sampled per iteration (0 = all)")
    temperature: float = _f(0.8, "sampling temperature for training candidates")
    top_p: float = _f(0.95, "top-p for training candidates")
    max_new_tokens: int = _f(240, "generation limit per candidate")
    sample_batch_size: int = _f(32, "prompts per generate() call")
    warmup_epochs: float = _f(2.0, "supervised epochs on the references before iteration 1 (iteration 0)")
    warmup_limit: int = _f(1200, "instructions the warm start trains on: a seeded subset of the training set "
                                 "(0 = all); iterations then draw first from the instructions it did not see. "
                                 "1,200 x 2 epochs: pilot runs (results/pilot-s22*, left out of every analysis) gave "
                                 "iteration-0 pass@1 0.000 at 600 x 2, 0.081 at 600 x 4, 0.111 at 1,200 x 2, "
                                 "which leaves ~750 unseen instructions for the iterations")
    warmup_learning_rate: float = _f(3e-3, "learning rate of the warm start")
    epochs_per_iter: float = _f(1.0, "ranking-loss epochs over each iteration's candidates")
    learning_rate: float = _f(1e-3, "learning rate of the ITERTL iterations (at 1e-4 a pilot's iterations summed "
                                     "to < 0.001 of learning rate against 0.23 in its warm start: no treatment)")
    optimizer_schedule: str = _f("continued", "AdamW state and learning-rate schedule of iterations 1..N: reset (a "
                                          "fresh optimiser and warmup+cosine schedule per iteration) | continued "
                                          "(one optimiser and one schedule over all iterations' steps, saved "
                                          "in each iteration's folder); no step is ever taken at learning rate 0")
    lr_warmup_ratio: float = _f(0.05, "share of a schedule's steps spent in linear warmup (the first step "
                                      "already at learning_rate / (warmup steps + 1))")
    lr_schedule: str = _f("cosine", "learning-rate shape after the warmup, over the schedule's steps: cosine "
                                    "(towards 0, never 0 at a step) | linear (likewise) | constant")
    weight_decay: float = _f(0.0, "AdamW weight decay (decoupled)")
    max_grad_norm: float = _f(1.0, "gradient clipping: largest global gradient norm of a step (0 = none)")
    logs_per_stage: int = _f(10, "loss logging points per train stage (train_log.json's history; the last "
                                 "window's figures are its 'final')")
    split_gradients: bool = _f(False, "two-pass ranking gradient: about one candidate's activations in memory "
                                     "(False: all k candidates in one graph; faster for tiny models)")
    forward_chunk_size: int = _f(1, "candidates per forward pass in the two-pass gradient")
    logprob_chunk_tokens: int = _f(64, "positions per chunk of the ranking's float32 log-softmax over the "
                                        "vocabulary (0 = all at once, from the model's logits)")
    max_length: int = _f(0, "longest training sequence (prompt + response, tokens): longer candidates are "
                            "dropped and counted in train_log.json (0 = the model's max_position_embeddings)")
    gradient_checkpointing: bool = _f(False, "recompute activations in backward to save memory (slower)")
    groups_per_batch: int = _f(8, "instructions (each with its k candidates) per optimiser micro-batch")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimiser step")
    eval_bench: str = _f("synthetic", "held-out benchmark, evaluated at the iterations eval_every names ('' = none)")
    eval_n: int = _f(1, "samples per held-out problem")
    eval_temperature: float = _f(0.0, "sampling temperature for evaluation (0 = greedy)")
    eval_limit: int = _f(0, "evaluate only the first N held-out problems (0 = all); marked as a smoke run")
    eval_sim_seconds: float = _f(5.0, "wall-clock and CPU limit (s) of each held-out compile and simulation "
                                      "step; a sample that runs longer is a timeout. The synthetic references "
                                      "simulate in < 0.1 s; at 60 s, 3 of 800 held-out samples of one evaluation "
                                      "(endless loops) took 180 of its 214 s of simulation (results/exp-s22)")
    score_sim_seconds: float = _f(5.0, "wall-clock and CPU limit (s) of each simulation while scoring training "
                                       "candidates (the pass diagnostic, functional and equivalence scores); a "
                                       "candidate that runs longer is a timeout. At 60 s, one endless loop among "
                                       "an iteration's 192 candidates made its score stage take 62 s instead of "
                                       "3 s (results/exp-s23)")
    eval_every: int = _f(0, "evaluate after iteration 0, every N-th iteration and the last (1 = every one; 0 = "
                            "iteration 0 and the last only: the comparison the experiment registers, and a "
                            "per-iteration curve invites reading its noisiest point as the result)")
    limit: int = _f(0, "use only the first N training instructions (0 = all); marked as a smoke run")
    seed: int = _f(0, "seed of training and sampling (weights' initialisation, data order, iteration "
                      "subsets, candidates, evaluation samples); the data come from data_seed")
    data_seed: int = _f(0, "seed of the data: the synthetic tasks (held-out benchmark included) and the "
                           "train/validation split, so that runs with different seeds share one benchmark")
    pass_diagnostic: bool = _f(True, "run each compiling sampled candidate's testbench (records that have one) "
                                     "to record the candidates' pass rate per iteration; not used by the loss")
    workers: int = _f(0, "parallel simulator processes (0 = all cores)")
    requires_gpu: bool = _f(False, "refuse to start without a CUDA device")
    sampler: str = _f("hf", "sampler of candidates and evaluation samples: hf (transformers generate) | vllm "
                            "(the [vllm] extra and a CUDA GPU; LoRA adapters served unmerged)")
    tensor_parallel_size: int = _f(1, "sampler=vllm: GPUs one vLLM engine spans (tensor parallelism)")
    vllm_gpu_memory_utilization: float = _f(0.85, "sampler=vllm: fraction of GPU memory the engine may take; "
                                                  "the stage waits for that much to be free, else stops")
    vllm_max_model_len: int = _f(0, "sampler=vllm: longest sequence the engine holds (0 = the stage's "
                                    "longest prompt + max_new_tokens)")
    vllm_base: str = _f("bf16", "sampler=vllm with quant=4bit: the base the LoRA adapter is served on: bf16 "
                                "(the stored weights, QLoRA's usual serving; slightly off-policy) | nf4 (vLLM's "
                                "bitsandbytes 4-bit, the rounding training saw)")
    gpus: int = _f(1, "GPUs of the train stage: 1 trains in this process; N > 1 runs it under "
                      "`accelerate launch` with N processes (same optimiser batch, split across them)")
    distributed: str = _f("ddp", "gpus > 1: ddp (data parallel: full, LoRA or QLoRA) | deepspeed (ZeRO-3; "
                                 "full or LoRA fine-tuning without quantisation, split_gradients=false)")
    gpu_type: str = _f("cpu", "DRY_RUN compute estimate: GPU type to price hours for (h100 | a100 | l4 | cpu)")
    measured_from: str = _f("", "DRY_RUN compute estimate: an earlier run folder whose measured tokens/s and "
                                "completion lengths replace the assumed ones")
    dry_run: bool = _f(False, "print the resolved config and a compute estimate, run nothing")

    def __post_init__(self) -> None:
        checks = [
            ("mode", self.mode in MODES, f"one of {MODES}"),
            ("score", self.score in SCORES, f"one of {SCORES}"),
            ("quant", self.quant in QUANTS, f"one of {QUANTS}"),
            ("iters", self.iters >= 0, "an integer >= 0"),
            ("k", self.k >= 2, "an integer >= 2 (at least one sample besides the reference)"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("temperature", self.temperature > 0, "> 0"),
            ("eval_n", self.eval_n >= 1, ">= 1"),
            ("eval_sim_seconds", self.eval_sim_seconds > 0, "> 0 seconds"),
            ("score_sim_seconds", self.score_sim_seconds > 0, "> 0 seconds"),
            ("eval_every", self.eval_every >= 0, "an integer >= 0 (1 = every iteration, 0 = 0 and the last)"),
            ("eval_temperature", self.eval_temperature >= 0, ">= 0 (0 = greedy)"),
            ("alpha", self.alpha >= 0, ">= 0"),
            ("margin", self.margin >= 0, ">= 0"),
            ("min_score_gap", self.min_score_gap >= 0, ">= 0"),
            ("pair_reduction", self.pair_reduction in PAIR_REDUCTIONS, f"one of {PAIR_REDUCTIONS}"),
            ("train_prompt_style", self.train_prompt_style in PROMPT_STYLES, f"one of {PROMPT_STYLES}"),
            ("groups_per_batch", self.groups_per_batch >= 1, ">= 1"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, ">= 1"),
            ("max_new_tokens", self.max_new_tokens >= 1, ">= 1"),
            ("sample_batch_size", self.sample_batch_size >= 1, ">= 1"),
            ("forward_chunk_size", self.forward_chunk_size >= 1, ">= 1"),
            ("limit", self.limit >= 0, ">= 0 (0 = all)"),
            ("eval_limit", self.eval_limit >= 0, ">= 0 (0 = all)"),
            ("workers", self.workers >= 0, ">= 0 (0 = all cores)"),
            ("torch_threads", self.torch_threads >= 0, ">= 0 (0 = torch's default)"),
            ("sampler", self.sampler in SAMPLERS, f"one of {SAMPLERS}"),
            ("tensor_parallel_size", self.tensor_parallel_size >= 1, ">= 1"),
            ("vllm_gpu_memory_utilization", 0 < self.vllm_gpu_memory_utilization <= 1, "in (0, 1]"),
            ("vllm_max_model_len", self.vllm_max_model_len >= 0, ">= 0 (0 = from the prompts)"),
            ("vllm_base", self.vllm_base in VLLM_BASES, f"one of {VLLM_BASES}"),
            ("logprob_chunk_tokens", self.logprob_chunk_tokens >= 0, ">= 0 (0 = unchunked)"),
            ("max_length", self.max_length >= 0, ">= 0 (0 = the model's maximum)"),
            ("gpus", self.gpus >= 1, ">= 1"),
            ("distributed", self.distributed in DISTRIBUTED, f"one of {DISTRIBUTED}"),
            ("gpu_type", self.gpu_type in GPU_TYPES, f"one of {GPU_TYPES}"),
            ("optimizer_schedule", self.optimizer_schedule in OPTIMIZER_SCHEDULES, f"one of {OPTIMIZER_SCHEDULES}"),
            ("lr_warmup_ratio", 0 <= self.lr_warmup_ratio < 1, "in [0, 1)"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("max_grad_norm", self.max_grad_norm >= 0, ">= 0 (0 = no clipping)"),
            ("logs_per_stage", self.logs_per_stage >= 1, ">= 1"),
            ("warmup_limit", self.warmup_limit >= 0, ">= 0 (0 = every training instruction)"),
            ("warmup_epochs", self.warmup_epochs >= 0, ">= 0 (0 = no warm start)"),
            ("epochs_per_iter", self.epochs_per_iter > 0, "> 0"),
            ("instructions_per_iter", self.instructions_per_iter >= 0, ">= 0 (0 = all)"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise UserError(f"config field {name}={getattr(self, name)!r} is invalid: must be {allowed}")
        if self.quant != "none":
            self.lora = True
        if self.score == "functional" and self.data not in ("synthetic",):
            raise UserError("config field score='functional' needs tasks with testbenches: use data=synthetic")
        if self.distributed == "deepspeed" and self.quant != "none":
            raise UserError(f"distributed=deepspeed is for fine-tuning without quantisation, not quant={self.quant}: "
                            "use distributed=ddp for QLoRA, or quant=none")
        if self.optimizer_schedule == "continued" and self.restart:
            raise UserError("optimizer_schedule=continued carries one optimiser across iterations, but restart "
                            "retrains each from the warm start: use optimizer_schedule=reset with restart")
        if self.optimizer_schedule == "continued" and self.distributed == "deepspeed" and self.gpus > 1:
            raise UserError("optimizer_schedule=continued is not available under distributed=deepspeed (ZeRO-3 "
                            "shards the optimiser state): use distributed=ddp or optimizer_schedule=reset")
        if self.distributed == "deepspeed" and self.split_gradients:
            raise UserError("distributed=deepspeed needs split_gradients=false (DeepSpeed steps its optimiser "
                            "on every backward pass): set split_gradients: false, or use distributed=ddp")
        self.process_batch(self.gpus)
        self.check_stage_configs()

    def check_stage_configs(self) -> None:
        """Build the model's own configs from these fields now, so that a value they refuse (a LoRA
        dropout of 1.5, a tiny width that is no multiple of 32) fails before any data or model work, its
        message naming this config's fields (``tiny_hidden_size``, not ``TinyModelConfig.hidden_size``)."""
        try:
            model_config(self, self.model)
            if self.model == "tiny":
                TinyModelConfig(hidden_size=self.tiny_hidden_size, num_layers=self.tiny_layers,
                                num_heads=self.tiny_heads, intermediate_size=self.tiny_intermediate_size)
        except UserError as exc:
            raise UserError(in_train_fields(str(exc))) from None

    def process_batch(self, processes: int) -> tuple[int, int]:
        """(groups per micro-batch, accumulation steps) of each of ``processes`` training processes.

        The optimiser batch stays groups_per_batch x gradient_accumulation_steps groups on any number of
        GPUs: the accumulation steps are divided among the processes, else the micro-batch is.
        """
        n, ga, gb = processes, self.gradient_accumulation_steps, self.groups_per_batch
        if ga % n == 0:
            return gb, ga // n
        if gb % n == 0:
            return gb // n, ga
        raise UserError(f"gpus={n} must divide gradient_accumulation_steps={ga} or groups_per_batch={gb} "
                        "so that every GPU count trains with the same optimiser batch; change one of them")

    def evaluated_iterations(self) -> list[int]:
        """The iterations whose model is evaluated on the held-out benchmark (``eval_every``)."""
        every = self.eval_every or self.iters or 1
        return [it for it in range(self.iters + 1) if it % every == 0 or it == self.iters]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The model's own config fields under the names this config gives them (`TrainConfig.check_stage_configs`).
SUB_CONFIG_FIELDS = {"ModelConfig": {"name_or_path": "model"},
                     "TinyModelConfig": {"hidden_size": "tiny_hidden_size", "num_layers": "tiny_layers",
                                         "num_heads": "tiny_heads", "intermediate_size": "tiny_intermediate_size"}}


def in_train_fields(message: str) -> str:
    """A ModelConfig/TinyModelConfig error reworded with the train fields a user sets."""
    for owner, names in SUB_CONFIG_FIELDS.items():
        if message.startswith(owner + "."):
            message = "config field " + message[len(owner) + 1:]
            for name, train_name in names.items():
                message = re.sub(rf"\b{name}\b", train_name, message)
    return message


def model_config(cfg: TrainConfig, base: str) -> ModelConfig:
    """The ModelConfig of ``base`` (a model folder or id) as this run trains and samples it."""
    return ModelConfig(name_or_path=base, quant=cfg.quant, lora=cfg.lora, lora_r=cfg.lora_r,
                       lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                       gradient_checkpointing=cfg.gradient_checkpointing)


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of field: value")
    return data


def _coerce(name: str, value, default):
    """Type-check one override against the field's default type (YAML and CLI both come through here)."""
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
    elif kind is int and not isinstance(value, bool):
        try:
            if float(value) == int(float(value)):
                return int(float(value))
        except (TypeError, ValueError):
            pass
    elif kind is float and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise UserError(f"config field {name}={value!r} has the wrong type: expected {kind.__name__}")


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(preset: str | None = None, config_file: str | None = None,
                overrides: dict | None = None) -> TrainConfig:
    """Merge defaults, the preset, an optional user YAML and overrides into a validated config."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    preset = preset or defaults["preset"]
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(available_presets())}")
    merged: dict = {"preset": preset}
    layers = [(str(path), _read_yaml(path))]
    if config_file:
        layers.append((config_file, _read_yaml(Path(config_file))))
    layers.append(("command line", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for origin, layer in layers:
        for name, value in layer.items():
            if name not in defaults:
                raise UserError(f"unknown config key {name!r} in {origin}; "
                                f"known keys: see `python -m harness train --help`")
            merged[name] = _coerce(name, value, defaults[name])
    return TrainConfig(**merged)
