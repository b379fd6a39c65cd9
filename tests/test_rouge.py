"""tasks.rouge must equal rouge_score's Rouge-L F-measure exactly, on awkward and on real inputs."""
from __future__ import annotations

import json
import random

import pytest
from rouge_score.rouge_scorer import RougeScorer

from tasks.rouge import ReferenceLcs, rouge_l, tokenize

_SCORER = RougeScorer(["rougeL"])

_EDGE_PAIRS = [
    ("", ""), ("", "module m; endmodule"), ("module m; endmodule", ""), ("   ", "\n\t"),
    ("!!! ;;; ()", "a"), ("a", "a"), ("a", "b"), ("a a a a", "a"), ("a", "a a a a"),
    ("module top(input a, output b); assign b = a; endmodule",) * 2,
    ("ÄÖÜ straße café", "äöü STRASSE Café"), ("İstanbul KELVIN \u212a", "i̇stanbul kelvin k"),
    ("日本語 text 中文", "text"), ("x1_y2 8'hFF 4'b1010", "x1 y2 8 hff 4 b1010"),
    ("a-b-c", "a b c"), ("ABC def", "abc DEF"), ("\u00bd \u2460 \u0663", "1 2 3"),
]


def _reference_value(reference: str, candidate: str) -> float:
    return _SCORER.score(target=reference, prediction=candidate)["rougeL"].fmeasure


def _mutate(code: str, rng: random.Random) -> str:
    """A plausible model output: some lines dropped, duplicated, or edited."""
    lines = code.splitlines()
    out = []
    for line in lines:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.2:
            line = line.replace("a", "b").replace("=", "<=")
        out.append(line)
        if roll > 0.95:
            out.append(line)
    return "\n".join(out)


def _synthetic_pairs(n: int, rng: random.Random) -> list[tuple[str, str]]:
    vocab = ["module", "endmodule", "input", "output", "wire", "reg", "assign", "always", "@", "(",
             ")", "posedge", "clk", "begin", "end", "if", "else", "a", "b", "q", "d", "<=", "=", ";",
             "[7:0]", "4'b1010", "x", "Y", "ÿ", "ß", "+", "\n"]
    pairs = []
    for _ in range(n):
        length = rng.choice([0, 1, 3, 10, 50, 200])
        ref = " ".join(rng.choice(vocab) for _ in range(length))
        cand = _mutate(ref.replace(" ; ", " ;\n"), rng) if rng.random() < 0.7 else \
            " ".join(rng.choice(vocab) for _ in range(rng.choice([0, 2, 20, 100])))
        pairs.append((ref, cand))
    return pairs


def test_tokenize_matches_rouge_score():
    tokenizer = _SCORER._tokenizer
    for ref, cand in _EDGE_PAIRS:
        assert tokenize(ref) == tokenizer.tokenize(ref)
        assert tokenize(cand) == tokenizer.tokenize(cand)


def test_equal_to_rouge_score_on_edge_and_synthetic_corpus():
    rng = random.Random(1234)
    pairs = _EDGE_PAIRS + _synthetic_pairs(320, rng)
    assert len(pairs) >= 300
    for reference, candidate in pairs:
        ours = rouge_l(reference, candidate)
        assert abs(ours - _reference_value(reference, candidate)) <= 1e-9, (reference, candidate)
    assert rouge_l("a b", "a b") == 1.0 and rouge_l("", "") == 0.0


def test_one_reference_many_candidates():
    reference = "module top(input a, output b); assign b = ~a; endmodule"
    scorer = ReferenceLcs(reference)
    for candidate in ["module top(input a, output b); assign b = a; endmodule", "", reference,
                      "endmodule b a top module"]:
        assert abs(scorer.f_measure(candidate) - _reference_value(reference, candidate)) <= 1e-9


def test_equal_to_rouge_score_on_real_code(rtlcoder_dir):
    rng = random.Random(7)
    path = rtlcoder_dir / "randomized_filtered_data_7b.jsonl"
    outputs = [json.loads(line)["output"] for line in path.read_text().splitlines()[:400]]
    short = [o for o in outputs if len(o) < 1500]  # rouge_score is O(m*n) in pure Python: keep it quick
    for reference in short[:40]:
        candidates = [_mutate(reference, rng), rng.choice(short), reference]
        scorer = ReferenceLcs(reference)
        for candidate in candidates:
            assert abs(scorer.f_measure(candidate) - _reference_value(reference, candidate)) <= 1e-9


@pytest.mark.parametrize("reference", ["", "only prose, no code"])
def test_degenerate_references(reference):
    for candidate in ["", "x", reference]:
        assert abs(rouge_l(reference, candidate) - _reference_value(reference, candidate)) <= 1e-9
