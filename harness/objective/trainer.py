"""`RankingTrainer`: TRL's SFTTrainer trained on ITERTL's L = L_CE + alpha * L_rank (harness.objective.ranking).

Why SFTTrainer: it already does what this project needs around the loss (PEFT / QLoRA set-up from a
``peft_config``, adapters in bf16 on 4-bit models, activation offloading, averaged custom metrics in
``log``), and ``RankingConfig`` is an ``SFTConfig`` plus the loss's fields, so ``harness.loop.stages``
builds it from the usual training arguments (learning rate, schedule, steps, precision). Its dataset
preparation is skipped (``skip_prepare_dataset``): the data are groups of candidates built by
``harness.objective.ranking.build_ranking_dataset`` and batched by ``RankingCollator``. TRL's base class
(``trl.trainer.base_trainer._BaseTrainer``) is private, hence not used.

Two ways to compute the gradient, the same gradient (tests/test_trainer.py checks it to 1e-5):

* joint (``split_gradients=False``): ``compute_loss`` runs every candidate of the batch through the
  model at once and autograd does the rest. Memory grows with K x batch.
* split (``split_gradients=True``, default): ``compute_loss`` back-propagates itself. Pass 1 computes every
  p_i under ``torch.no_grad`` (``forward_chunk_size`` candidates per forward); the hinge's gradient
  dL/dp_i then has a closed form (``ranking_loss_and_grad``). Pass 2 re-runs, with gradients, only
  the candidates whose dL/dp_i is non-zero and the reference, and back-propagates
  ``w * (alpha * dL/dp_i * p_i + [reference] L_CE)`` chunk by chunk, so peak activation memory is
  about one chunk's. Exact only if both passes compute the same p_i, so the trainer sets every dropout
  of the model to 0 in this mode (``disable_dropout``: ``nn.Dropout`` modules, LoRA's included, and
  float ``attention_dropout`` attributes; the count is ``dropout_disabled``, logged and recorded in
  train_log.json). With dropout the hinges active in pass 1 would come from one mask and the gradient
  from another. ``lora_dropout`` therefore has no effect with ``split_gradients``. Under DDP every backward
  but a micro-batch's last runs in ``no_sync``, so each process all-reduces once per micro-batch
  whatever number of chunks it needs (the count differs between processes; one all-reduce per
  backward would deadlock). DeepSpeed and FSDP, which step or shard on every backward, are refused.

Scaling. A micro-batch's loss is the mean over its groups; ``loss_is_scaled_for_ga = False`` lets the
Trainer divide it by the number of accumulation steps (split mode applies the same factor ``w``
itself). With equal-sized micro-batches, accumulation then gives exactly the gradient of one larger
batch. ``num_items_in_batch`` is ignored: every term is already a per-group mean, independent of
token counts in other groups.

Log-probabilities are float32 whatever the model's dtype. With ``logprob_chunk_tokens > 0`` (and a
plain output layer) they are computed from the final hidden states ``logprob_chunk_tokens`` positions
at a time, each chunk's logits recomputed in backward (``harness.objective.logprobs``), so
no [T, V] tensor is held per candidate and one [chunk, V] buffer is alive at a time.

Logged separately (averaged over the logging window; under DDP each micro-batch's figures are gathered
from every process first): ``ce_loss``, ``rank_loss``, ``rank_accuracy`` (fraction of ranked pairs with
p_i > p_j) and ``rank_pairs``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field

import torch
from accelerate.utils import DistributedType
from trl import SFTConfig, SFTTrainer

from harness.objective.logprobs import sequence_logprobs
from harness.objective.ranking import RankingCollator, check_pair_options, ranking_loss, ranking_loss_and_grad
from verilog_tools.errors import UserError

log = logging.getLogger(__name__)


def disable_dropout(model) -> int:
    """Set every dropout of ``model`` to 0 (``nn.Dropout`` modules and float ``attention_dropout``
    attributes, as Llama-style attention reads it); return how many were non-zero."""
    changed = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout) and module.p:
            module.p, changed = 0.0, changed + 1
        rate = getattr(module, "attention_dropout", None)
        if isinstance(rate, float) and rate:
            module.attention_dropout, changed = 0.0, changed + 1
    config = getattr(model, "config", None)
    if isinstance(getattr(config, "attention_dropout", None), float) and config.attention_dropout:
        config.attention_dropout = 0.0
    return changed


@dataclass
class RankingConfig(SFTConfig):
    """SFTConfig plus the ranking objective's fields."""

    alpha: float = field(default=1.0, metadata={"help": "weight of the ranking loss: L = L_CE + alpha * L_rank"})
    margin: float = field(default=0.0, metadata={"help": "hinge margin of the ranking loss (0 = RRHF's loss)"})
    min_score_gap: float = field(
        default=0.0, metadata={"help": "a pair (i, j) is ranked only if s_i - s_j >= this (0: every s_i > s_j)"})
    pair_reduction: str = field(
        default="mean", metadata={"help": "L_rank over a group's pairs: mean | sum (the paper's, RRHF's)"})
    length_normalize: bool = field(
        default=True, metadata={"help": "rank on per-token mean log-likelihoods (False: on sums)"})
    split_gradients: bool = field(
        default=True, metadata={"help": "two-pass gradient: one candidate chunk in memory at a time"})
    forward_chunk_size: int = field(
        default=1, metadata={"help": "candidates per forward pass in split mode"})
    logprob_chunk_tokens: int = field(
        default=64, metadata={"help": "positions per chunk of the float32 log-softmax (0 = whole logits)"})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "must stay False: the collator needs every field of a group"})

    def __post_init__(self):
        if not self.alpha >= 0:
            raise UserError(f"alpha must be >= 0, got {self.alpha}")
        check_pair_options(self.margin, self.min_score_gap, self.pair_reduction)
        if self.logprob_chunk_tokens < 0:
            raise UserError(f"logprob_chunk_tokens must be >= 0, got {self.logprob_chunk_tokens}")
        if self.forward_chunk_size < 1:
            raise UserError(f"forward_chunk_size must be >= 1, got {self.forward_chunk_size}")
        if self.remove_unused_columns:
            raise UserError("remove_unused_columns must be False for RankingConfig (groups are not columns)")
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}
        super().__post_init__()


class RankingTrainer(SFTTrainer):
    """SFTTrainer whose batches are candidate groups and whose loss is ITERTL's (see module docstring)."""

    _name = "Ranking"
    loss_is_scaled_for_ga = False

    def __init__(self, model, args: RankingConfig, train_dataset, processing_class, data_collator=None,
                 **kwargs):
        if not isinstance(args, RankingConfig):
            raise TypeError(f"args must be a RankingConfig, got {type(args).__name__}")
        if isinstance(train_dataset, list):  # build_ranking_dataset's output; SFTTrainer wants a Dataset
            from datasets import Dataset
            train_dataset = Dataset.from_list(train_dataset)
        if data_collator is None:
            pad = processing_class.pad_token_id
            data_collator = RankingCollator(pad if pad is not None else processing_class.eos_token_id)
        super().__init__(model=model, args=args, train_dataset=train_dataset,
                         processing_class=processing_class, data_collator=data_collator, **kwargs)
        if (args.split_gradients and self.accelerator.num_processes > 1
                and self.accelerator.distributed_type not in (DistributedType.MULTI_GPU, DistributedType.MULTI_CPU)):
            raise ValueError("split_gradients=True runs in one process or under DDP only; set it False for "
                             "DeepSpeed/FSDP")
        self.dropout_disabled = disable_dropout(self.model) if args.split_gradients else 0
        if self.dropout_disabled:
            log.warning("split_gradients: %d dropout layers set to 0 so that both passes compute the same "
                        "log-likelihoods", self.dropout_disabled)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The loss of one micro-batch. Joint: every candidate in one graph, autograd does the rest.
        Split (training only): the two-pass gradient is back-propagated here (`split_backward`), and the
        loss comes back as a graph-free leaf, so transformers' own ``training_step`` (input preparation,
        accumulation scaling, its ``backward``, logging) runs unchanged: its backward reaches no weight."""
        if self.args.split_gradients and model.training and torch.is_grad_enabled():
            steps = getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)
            no_sync = functools.partial(self.accelerator.no_sync, model)  # a null context in one process
            loss, stats = split_backward(model, inputs, self.args, scale=1.0 / steps,
                                         backward=self.accelerator.backward, no_sync=no_sync)
            loss = loss.detach().requires_grad_()
        else:
            loss, stats = joint_loss(model, inputs, self.args)
        self._record(stats)
        return (loss, stats) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def _record(self, stats: dict) -> None:
        """Add one micro-batch's loss terms to the logging window, summed over every process (DDP):
        the CE and rank losses as the mean over processes, the pairs and correct pairs as totals."""
        ce, rank, pairs, correct = stats["ce_loss"], stats["rank_loss"], stats["pairs"], stats["correct"]
        if self.accelerator.num_processes > 1:
            rows = self.accelerator.gather(torch.tensor([[ce, rank, pairs, correct]], dtype=torch.float64,
                                                        device=self.accelerator.device))  # one row per process
            ce, rank = rows[:, 0].mean().item(), rows[:, 1].mean().item()
            pairs, correct = int(rows[:, 2].sum().item()), int(rows[:, 3].sum().item())
        metrics = self._metrics["train" if self.model.training else "eval"]
        metrics["ce_loss"].append(ce)
        metrics["rank_loss"].append(rank)
        metrics["rank_pairs"].append(pairs)
        if pairs:
            metrics["rank_accuracy"].append(correct / pairs)


def _groups(inputs) -> list[tuple[torch.Tensor, list[float | None]]]:
    """Row indices and scores (None = unscorable) of each group in the batch."""
    out = []
    for g in range(int(inputs["group_ids"].max()) + 1):
        rows = (inputs["group_ids"] == g).nonzero().squeeze(1)
        scores = [None if s != s else s for s in inputs["scores"][rows].tolist()]  # NaN -> None
        out.append((rows, scores))
    return out


def _logprobs(model, inputs, rows, args):
    """(p, mean token log-prob) of the given rows, cropped to their longest real sequence."""
    width = int(inputs["attention_mask"][rows].sum(dim=1).max())
    sums, counts = sequence_logprobs(model, inputs["input_ids"][rows, :width],
                                     inputs["attention_mask"][rows, :width],
                                     inputs["response_mask"][rows, :width],
                                     chunk_tokens=getattr(args, "logprob_chunk_tokens", 0))
    means = sums / counts
    return (means if args.length_normalize else sums), means


def joint_loss(model, inputs, args) -> tuple[torch.Tensor, dict]:
    """Mean over groups of L_CE + alpha * L_rank, differentiable through every candidate at once."""
    all_rows = torch.arange(inputs["input_ids"].shape[0], device=inputs["input_ids"].device)
    p, means = _logprobs(model, inputs, all_rows, args)
    losses, stats = [], _empty_stats()
    for rows, scores in _groups(inputs):
        ce = -means[rows[inputs["is_reference"][rows]]].sum()
        rank = ranking_loss(p[rows], scores, args.margin, args.min_score_gap, args.pair_reduction)
        losses.append(ce + args.alpha * rank)
        _, _, pairs, correct = ranking_loss_and_grad(p[rows].detach().tolist(), scores, args.margin,
                                                     args.min_score_gap, args.pair_reduction)
        _add_stats(stats, ce.item(), rank.item(), pairs, correct)
    return torch.stack(losses).mean(), _finish_stats(stats, len(losses))


def split_backward(model, inputs, args, *, scale: float, backward,
                   no_sync=contextlib.nullcontext) -> tuple[torch.Tensor, dict]:
    """Back-propagate the joint loss (times ``scale``) in two passes; return the loss value and stats.

    Every chunk but the last is run and back-propagated inside ``no_sync()`` (DDP: gradients accumulate
    locally and the last backward all-reduces their sum).
    """
    n_rows = inputs["input_ids"].shape[0]
    device = inputs["input_ids"].device
    chunks = torch.arange(n_rows, device=device).split(args.forward_chunk_size)
    with torch.no_grad():
        p = torch.cat([_logprobs(model, inputs, rows, args)[0] for rows in chunks])
    groups = _groups(inputs)
    coef = torch.zeros(n_rows, dtype=torch.float64, device=device)  # alpha * dL_rank/dp_i
    rank_values = []
    stats = _empty_stats()
    for rows, scores in groups:
        rank, grad, pairs, correct = ranking_loss_and_grad(p[rows].tolist(), scores, args.margin,
                                                           args.min_score_gap, args.pair_reduction)
        coef[rows] = args.alpha * torch.tensor(grad, dtype=torch.float64, device=device)
        rank_values.append(rank)
        stats["pairs"] += pairs
        stats["correct"] += correct
    weight = scale / len(groups)
    is_ref = inputs["is_reference"]
    needed = ((coef != 0) | is_ref).nonzero().squeeze(1)
    ce_sum = 0.0
    pass2 = needed.split(args.forward_chunk_size)  # never empty: every group has its reference
    for index, rows in enumerate(pass2):
        with no_sync() if index < len(pass2) - 1 else contextlib.nullcontext():
            p_rows, means = _logprobs(model, inputs, rows, args)
            ce_rows = -(means * is_ref[rows]).sum()
            objective = (coef[rows].to(p_rows.dtype) * p_rows).sum() + ce_rows
            backward(objective * weight)
        ce_sum += ce_rows.item()
    total = (ce_sum + args.alpha * sum(rank_values)) / len(groups)
    stats["ce_loss"], stats["rank_loss"] = ce_sum, sum(rank_values)
    return torch.tensor(total, device=device), _finish_stats(stats, len(groups))


def _empty_stats() -> dict:
    return {"ce_loss": 0.0, "rank_loss": 0.0, "pairs": 0, "correct": 0}


def _add_stats(stats: dict, ce: float, rank: float, pairs: int, correct: int) -> None:
    stats["ce_loss"] += ce
    stats["rank_loss"] += rank
    stats["pairs"] += pairs
    stats["correct"] += correct


def _finish_stats(stats: dict, n_groups: int) -> dict:
    """Per-group means of the loss terms; pair counts stay totals."""
    return {**stats, "ce_loss": stats["ce_loss"] / n_groups, "rank_loss": stats["rank_loss"] / n_groups}
