"""Rouge-L F-measure, identical to ``rouge_score`` (0.1.2, default settings) and much faster on code.

``rouge_score.RougeScorer(["rougeL"]).score(target=reference, prediction=candidate)["rougeL"].fmeasure``
tokenises both texts (lowercase, every run of characters outside ``[a-z0-9]`` is a separator, no
stemmer) and fills an ``m x n`` Python table for the longest common subsequence: seconds per pair on
long Verilog. Here the reference is tokenised once (``ReferenceLcs``), tokens become bits, and the LCS
length comes from the bit-parallel recurrence of Allison & Dix (1986) / Hyyro (2004) on Python big
ints: one add, one subtract and a few bitwise ops per candidate token, whatever the reference length.

Precision, recall and F are computed with the same float operations, in the same order, as
``rouge_score.rouge_scorer._score_lcs`` and ``rouge_score.scoring.fmeasure``, so results are equal
bit for bit, not just close.

``tokenizer="code"`` is a code-aware option (not rouge_score's): identifiers, numbers (with their
`'h` bases) and every operator and punctuation mark are tokens, so `a & b` and `a | b`, or `<=` and
`<`, no longer read the same. The default stays rouge_score's, which the paper used.
"""
from __future__ import annotations

import re

# rouge_score: lower(), re.sub("[^a-z0-9]+", " "), split on whitespace, keep tokens matching
# ^[a-z0-9]+$. Those are exactly the maximal runs of [a-z0-9] in the lowercased text.
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_CODE_TOKEN_RE = re.compile(r"""[a-z0-9_$]*'[sS]?[bodh][0-9a-fxz_?]+|[a-z_$][a-z0-9_$]*|[0-9][0-9_]*
    |===|!==|<<<|>>>|==|!=|<=|>=|&&|\|\||<<|>>|~&|~\||~\^|\^~|\+:|-:|\S""", re.X)
TOKENIZERS = ("rouge", "code")


def tokenize(text: str, tokenizer: str = "rouge") -> list[str]:
    """rouge_score's default tokenisation (no stemmer), or the code-aware one (``tokenizer="code"``)."""
    if tokenizer == "code":
        return _CODE_TOKEN_RE.findall(text.lower())
    return _TOKEN_RE.findall(text.lower())


def f_measure(lcs: int, n_reference: int, n_candidate: int) -> float:
    """F-measure from an LCS length, with rouge_score's arithmetic (0 when either side is empty)."""
    if n_reference == 0 or n_candidate == 0:
        return 0.0
    precision = lcs / n_candidate
    recall = lcs / n_reference
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


class ReferenceLcs:
    """A reference tokenised once, ready to score many candidates against it."""

    def __init__(self, reference: str, tokenizer: str = "rouge"):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
        self.tokenizer = tokenizer
        tokens = tokenize(reference, tokenizer)
        self.n_tokens = len(tokens)
        self._full = (1 << self.n_tokens) - 1
        # One bit mask per distinct token: bit k set where reference token k equals it.
        masks: dict[str, int] = {}
        for position, token in enumerate(tokens):
            masks[token] = masks.get(token, 0) | (1 << position)
        self._masks = masks
        self._seen: dict[str, float] = {}   # a model often samples the same text twice for one instruction

    def lcs_length(self, candidate_tokens: list[str]) -> int:
        """Length of the longest common subsequence of the reference's tokens and these."""
        full = self._full
        v = full  # bit k clear <=> the LCS row count increases at reference position k
        # A token absent from the reference leaves v unchanged: skip it (a mask is never 0).
        for match in filter(None, map(self._masks.get, candidate_tokens)):
            u = v & match
            v = ((v + u) | (v - u)) & full
        return self.n_tokens - v.bit_count()

    def f_measure(self, candidate: str) -> float:
        """Rouge-L F-measure of ``candidate`` against this reference (identical candidates computed once)."""
        score = self._seen.get(candidate)
        if score is None:
            tokens = tokenize(candidate, self.tokenizer)
            score = 0.0 if self.n_tokens == 0 or not tokens else \
                f_measure(self.lcs_length(tokens), self.n_tokens, len(tokens))
            self._seen[candidate] = score
        return score


def rouge_l(reference: str, candidate: str, tokenizer: str = "rouge") -> float:
    """Rouge-L F-measure of one pair; use ``ReferenceLcs`` to score many candidates per reference."""
    return ReferenceLcs(reference, tokenizer).f_measure(candidate)
