"""Decontamination: find training rows that near-duplicate a VerilogEval problem.

A training row is contaminated when it contains most of a benchmark problem's text, measured as
n-gram containment: the share of the benchmark text's n-grams that also occur in the training
text. Containment (not Jaccard) because training instructions wrap a problem in longer prose and
references add comments or extra logic; a benchmark text copied into a longer row still scores 1.

- Descriptions: word 8-grams of the lower-cased words (``[a-z0-9_]+``) of the problem description
  against the training instruction; contaminated at containment >= 0.5. A description shorter than
  8 words is one gram (the whole word sequence).
- References: 13-grams of Verilog tokens (identifiers, numbers, single punctuation; comments
  removed, case folded) of the reference solution against the training reference; contaminated at
  containment >= 0.6. References with fewer than 12 such grams (a one-line ``assign``) are not
  compared: every row with the same textbook line would match, and their descriptions still are.

The thresholds are conservative in the usual sense of test-set decontamination (GPT-3 used
13-grams; dropping a few generic training rows costs little, keeping a copied test problem
inflates every pass@k reported afterwards).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from tasks.problem import Problem

DEFAULT_BENCHMARKS = ("verilog-eval-v1-human", "verilog-eval-v1-machine",
                      "verilog-eval-v2-spec-to-rtl")
DESCRIPTION_N = 8
DESCRIPTION_THRESHOLD = 0.5
CODE_N = 13
CODE_THRESHOLD = 0.6
CODE_MIN_GRAMS = 12

_WORD = re.compile(r"[a-z0-9_]+")
_CODE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|\d+'[sS]?[bBoOdDhH][0-9a-fA-FxXzZ_?]+|\d+|\S")


@dataclass(frozen=True)
class Contamination:
    """One flagged training row: which benchmark problem it matches, on which text, how much."""

    record_id: str
    task_id: str
    field: str      # "description" or "reference"
    score: float    # containment of the benchmark text's n-grams in the training text

    def to_dict(self) -> dict:
        return {"id": self.record_id, "task_id": self.task_id, "field": self.field,
                "score": round(self.score, 4)}


def word_ngrams(text: str, n: int = DESCRIPTION_N) -> set[tuple[str, ...]]:
    """Word n-grams of lower-cased text; a text shorter than n words is one gram."""
    return _ngrams(_WORD.findall(text.lower()), n)


def code_ngrams(code: str, n: int = CODE_N) -> set[tuple[str, ...]]:
    """n-grams of Verilog tokens with comments removed and case folded."""
    from verilog_tools.text import strip_comments

    return _ngrams(_CODE_TOKEN.findall(strip_comments(code).lower()), n)


def _ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    if not tokens:
        return set()
    if len(tokens) < n:
        return {tuple(tokens)}
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class _Index:
    """n-gram -> benchmark problems holding it, and each problem's gram count."""

    n: int
    threshold: float
    postings: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, grams: set[tuple[str, ...]]) -> None:
        self.sizes[key] = len(grams)
        for gram in grams:
            self.postings.setdefault(gram, []).append(key)

    def best(self, grams: set[tuple[str, ...]]) -> tuple[str, float] | None:
        hits = Counter(key for gram in grams for key in self.postings.get(gram, ()))
        scored = [(hits[key] / self.sizes[key], key) for key in hits]
        if not scored:
            return None
        score, key = max(scored)
        return (key, score) if score >= self.threshold else None


class BenchmarkIndex:
    """Description and reference n-gram indexes over a set of benchmark problems."""

    def __init__(self, problems: list[Problem]) -> None:
        self.descriptions = _Index(DESCRIPTION_N, DESCRIPTION_THRESHOLD)
        self.references = _Index(CODE_N, CODE_THRESHOLD)
        for problem in problems:
            key = f"{problem.benchmark}/{problem.task_id}"
            if problem.description.strip():
                self.descriptions.add(key, word_ngrams(problem.description))
            grams = code_ngrams(problem.reference) if problem.reference else set()
            if len(grams) >= CODE_MIN_GRAMS:
                self.references.add(key, grams)

    def match(self, record_id: str, instruction: str, reference: str) -> Contamination | None:
        """The strongest match of one training row, or None when it is clean."""
        found = []
        description = self.descriptions.best(word_ngrams(instruction))
        if description:
            found.append(Contamination(record_id, description[0], "description", description[1]))
        code = self.references.best(code_ngrams(reference))
        if code:
            found.append(Contamination(record_id, code[0], "reference", code[1]))
        return max(found, key=lambda c: c.score) if found else None


@dataclass
class BenchmarkLoad:
    """Benchmark problems for decontamination and which benchmarks could not be loaded (why)."""

    problems: list[Problem]
    loaded: list[str]
    missing: dict[str, str]


def load_benchmark_problems(bench_ids: tuple[str, ...] = DEFAULT_BENCHMARKS) -> BenchmarkLoad:
    """Load each benchmark through `tasks.benchmarks`; an unavailable one is recorded, not fatal."""
    from verilog_tools.errors import UserError

    problems: list[Problem] = []
    loaded: list[str] = []
    missing: dict[str, str] = {}
    try:
        from tasks.benchmarks import load_benchmark
    except ImportError as exc:
        return BenchmarkLoad([], [], {bench: f"tasks.benchmarks unavailable: {exc}" for bench in bench_ids})
    for bench in bench_ids:
        try:
            problems.extend(load_benchmark(bench))
            loaded.append(bench)
        except (UserError, OSError) as exc:
            missing[bench] = str(exc)
    return BenchmarkLoad(problems, loaded, missing)
