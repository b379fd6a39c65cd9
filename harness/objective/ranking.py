"""ITERTL's training objective, and the data it trains on: scored candidate groups as token tensors.

The loss of one group (one instruction with its candidates, one of them the reference):

    p_i    = (1 / |y_i|) * sum_t log P(y_i,t | x, y_i,<t)        (sum only, if length_normalize is off)
    L_CE   = -(1 / |y_ref|) * sum_t log P(y_ref,t | x, y_ref,<t)  (mean token cross-entropy of the reference)
    pairs  = ordered pairs (i, j), both scorable, with s_i > s_j and s_i - s_j >= min_score_gap
    L_rank = mean (pair_reduction: mean) or sum (sum) over pairs of max(0, margin - (p_i - p_j))
    L      = L_CE + alpha * L_rank

``x`` is the prompt, ``y_i`` candidate i's response tokens (the text the model writes in the run's
prompt style, ``harness.model.prompting``), ``s_i`` its score (``harness.objective.scoring``). Log-probabilities are
float32 (``harness.objective.logprobs``).
A candidate whose score is None (a tool failed) takes part in no pair; a group with no pair
contributes L_CE only (L_rank = 0). A batch's loss is the mean of its groups' losses. The ranking
accuracy is the fraction of pairs with p_i > p_j.

Where this departs from the paper: with margin 0 the hinge is RRHF's ranking loss, but RRHF and the
ITERTL paper sum over pairs; the default here is the mean over a group's pairs, so alpha does not need
retuning when K or the number of ties changes (``pair_reduction: sum`` is the paper's). A minimum score
gap (``min_score_gap``: near-ties such as two Rouge-L values 0.01 apart then make no pair) and the
margin default to 0 (every strict difference is a pair, RRHF's hinge). alpha, margin,
min_score_gap, pair_reduction and length normalisation are config fields; the gap is compared with a
1e-9 tolerance, so that 1.0 - 0.9 counts as a gap of 0.1.

The hinge's gradient with respect to each p_i has a closed form (``ranking_loss_and_grad``). This is
what lets the trainer compute every p_i without gradients first, then back-propagate one candidate at
a time (see ``harness.objective.trainer``). At a hinge's kink (margin - (p_i - p_j) == 0) the subgradient taken
is 0, like ``torch.relu``'s, so the closed form equals autograd everywhere.

Data layout. ``build_ranking_dataset`` turns scores.jsonl rows into one item per group. Inside a
group the candidates keep the row's order (harness.objective.scoring writes sampled candidates first and the
reference last) but nothing here depends on position: the reference is the candidate whose
``source`` is "reference", and exactly one is required. ``RankingCollator`` pads whole groups into
one batch; ``group_ids`` says which rows belong together.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

from harness.model.prompting import response_text
from verilog_tools.errors import UserError

log = logging.getLogger(__name__)


PAIR_REDUCTIONS = ("mean", "sum")
GAP_TOLERANCE = 1e-9  # score differences are float arithmetic: 1.0 - 0.9 must count as a gap of 0.1


def check_pair_options(margin: float, min_gap: float, reduction: str) -> None:
    """UserError naming the option unless margin >= 0, min_gap >= 0 and reduction in PAIR_REDUCTIONS."""
    if not margin >= 0:
        raise UserError(f"margin must be >= 0, got {margin}")
    if not min_gap >= 0:
        raise UserError(f"min_score_gap must be >= 0, got {min_gap}")
    if reduction not in PAIR_REDUCTIONS:
        raise UserError(f"pair_reduction must be one of {PAIR_REDUCTIONS}, got {reduction!r}")


def ordered_pairs(scores: list[float | None], min_gap: float = 0.0) -> list[tuple[int, int]]:
    """Index pairs (i, j) with scores[i] > scores[j] by at least ``min_gap``, both not None (the pairs
    the hinge ranks)."""
    return [(i, j) for i, si in enumerate(scores) for j, sj in enumerate(scores)
            if si is not None and sj is not None and si > sj and si - sj >= min_gap - GAP_TOLERANCE]


def ranking_loss_and_grad(logps: list[float], scores: list[float | None], margin: float,
                          min_gap: float = 0.0, reduction: str = "mean") -> tuple[float, list[float], int, int]:
    """L_rank of one group, dL_rank/dp_i for every candidate, the number of pairs and of correct pairs."""
    pairs = ordered_pairs(scores, min_gap)
    grad = [0.0] * len(logps)
    if not pairs:
        return 0.0, grad, 0, 0
    weight = 1.0 / len(pairs) if reduction == "mean" else 1.0
    loss, correct = 0.0, 0
    for i, j in pairs:
        gap = margin - (logps[i] - logps[j])
        correct += logps[i] > logps[j]
        if gap > 0:  # strictly: at the kink the subgradient is 0, as torch.relu's
            loss += gap
            grad[i] -= weight
            grad[j] += weight
    return loss * weight, grad, len(pairs), correct


def ranking_loss(logps, scores: list[float | None], margin: float, min_gap: float = 0.0,
                 reduction: str = "mean"):
    """L_rank of one group as a differentiable tensor (logps: 1-D tensor); 0 when there is no pair."""
    import torch
    pairs = ordered_pairs(scores, min_gap)
    if not pairs:
        return logps.sum() * 0.0
    better = torch.tensor([i for i, _ in pairs], device=logps.device)
    worse = torch.tensor([j for _, j in pairs], device=logps.device)
    hinges = torch.relu(margin - (logps[better] - logps[worse]))
    return hinges.mean() if reduction == "mean" else hinges.sum()


def sequence_logprobs(model, input_ids, attention_mask, response_mask, chunk_tokens: int = 0):
    """``harness.objective.logprobs.sequence_logprobs``, imported here: logprobs imports torch, and this
    module must import without it (TrainConfig reads PAIR_REDUCTIONS, the loop's diagnostics
    ordered_pairs)."""
    from harness.objective.logprobs import sequence_logprobs as compute
    return compute(model, input_ids, attention_mask, response_mask, chunk_tokens)


class RankingCollator:
    """Pads a list of groups into one batch; the candidates of a group always travel together.

    Output (N = candidates in the batch, T = longest sequence): ``input_ids``, ``attention_mask``,
    ``response_mask`` [N, T] (True on response tokens, i.e. the tokens whose log-prob counts),
    ``scores`` [N] float (NaN = unscorable), ``group_ids`` [N] (0..G-1) and ``is_reference`` [N] bool.
    Right padding keeps positions of real tokens unchanged.
    """

    def __init__(self, pad_token_id: int):
        if pad_token_id is None:
            raise ValueError("pad_token_id is None: give the tokenizer a pad or eos token")
        self.pad_token_id = pad_token_id

    def __call__(self, groups: list[dict]) -> dict:
        import torch
        rows = [(g, c) for g, group in enumerate(groups) for c in group["candidates"]]
        width = max(len(c["input_ids"]) for _, c in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        response_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, (_, cand) in enumerate(rows):
            n = len(cand["input_ids"])
            input_ids[r, :n] = torch.tensor(cand["input_ids"], dtype=torch.long)
            attention_mask[r, :n] = 1
            response_mask[r, cand["response_start"]:n] = True
        scores = [math.nan if c["score"] is None else float(c["score"]) for _, c in rows]
        return {
            "input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask,
            "scores": torch.tensor(scores, dtype=torch.float64),
            "group_ids": torch.tensor([g for g, _ in rows], dtype=torch.long),
            "is_reference": torch.tensor([c["source"] == "reference" for _, c in rows]),
        }


def build_ranking_dataset(candidate_rows: Iterable[dict], tokenizer,
                          format_example: Callable[[object, str, str], tuple[str, str]], *,
                          max_length: int | None = None, append_eos: bool = True, style: str = "module",
                          stats: dict | None = None) -> list[dict]:
    """One training item per scores.jsonl row: {"id", "candidates": [{"input_ids",
    "response_start", "score", "source"}]}, candidates in the row's order.

    The prompt and the response are tokenised separately and concatenated, so the response tokens are
    exactly those the model produces after the prompt (no BPE merge across the boundary). The response
    is the candidate's text in prompt style ``style`` (``harness.model.prompting.response_text``: the whole
    design, or under ``body`` what follows the row's ``header``; a candidate not starting with it is
    dropped). A candidate longer than ``max_length`` tokens is dropped, not cut (a cut response would be
    ranked on part of its text, without its EOS); a group whose reference is dropped is dropped whole.
    ``stats``, when given, receives the counts: groups_in, groups_kept, groups_dropped (reference too
    long or not in the style), candidates_dropped (too long, not in the style or without a response
    token, in kept groups), not_in_style (candidates, all groups) and longest (tokens, every candidate).
    """
    items: list[dict] = []
    counts = {"groups_in": 0, "groups_kept": 0, "groups_dropped": 0, "candidates_dropped": 0, "not_in_style": 0,
              "longest": 0}
    for row in candidate_rows:
        counts["groups_in"] += 1
        refs = [c for c in row["candidates"] if c["source"] == "reference"]
        if len(refs) != 1:
            raise ValueError(f"group {row['id']}: needs exactly one candidate with source 'reference', "
                             f"found {len(refs)}")
        styled = [styled_candidate(c, row.get("header") or "", style) for c in row["candidates"]]
        counts["not_in_style"] += sum(c is None for c in styled)
        cands = [tokenize_candidate(tokenizer, format_example, row["instruction"], c, append_eos) if c else None
                 for c in styled]
        counts["longest"] = max([counts["longest"]] + [len(c["input_ids"]) for c in cands if c])
        kept = [c for c in cands if c and (not max_length or len(c["input_ids"]) <= max_length)]
        if not any(c["source"] == "reference" for c in kept):
            counts["groups_dropped"] += 1
            continue
        counts["candidates_dropped"] += len(cands) - len(kept)
        counts["groups_kept"] += 1
        items.append({"id": row["id"], "candidates": kept})
    if counts["groups_dropped"] or counts["candidates_dropped"]:
        log.warning("max_length=%s, prompt style %s: dropped %d groups (reference too long or not in the style) "
                    "and %d sampled candidates of kept groups (%d not in the style)", max_length, style,
                    counts["groups_dropped"], counts["candidates_dropped"], counts["not_in_style"])
    if stats is not None:
        stats.update(counts)
    return items


def styled_candidate(cand: dict, header: str, style: str) -> dict | None:
    """``cand`` with its text cut to what the model writes in prompt ``style``; None if it cannot be."""
    text = response_text(cand["text"], header, style)
    return None if text is None else {**cand, "text": text}


def tokenize_candidate(tokenizer, format_example, instruction: str, cand: dict, append_eos: bool = True):
    """Token ids of prompt + response and where the response starts; None if the response has no token."""
    prompt_text, full_text = format_example(tokenizer, instruction, cand["text"])
    if not full_text.startswith(prompt_text):
        raise ValueError("format_example must return a full text that starts with the prompt text")
    # The formatted prompt already holds its special tokens (BOS, chat markers) as text, as at sampling.
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if append_eos and eos is not None and (not response_ids or response_ids[-1] != eos):
        response_ids = response_ids + [eos]
    if not prompt_ids:
        raise ValueError("the prompt tokenised to nothing: the first response token needs a context")
    if not response_ids:
        return None  # an empty text and no EOS token: nothing to score the candidate on
    return {"input_ids": prompt_ids + response_ids, "response_start": len(prompt_ids), "score": cand["score"],
            "source": cand["source"]}
