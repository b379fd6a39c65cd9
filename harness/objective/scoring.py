"""Score each instruction's K candidates (K-1 sampled + the reference) for ITERTL's ranking loss.

Paper mode (ITERTL, arXiv 2407.12022): the reference gets ``reference_score``; a sampled candidate with
more than one module gets ``multi_module_score`` (unless ``multi_module_penalty`` is off: the no-filter
ablation); one that ``iverilog -t null`` rejects (or with no
extractable code) gets ``syntax_fail_score``; one that compiles gets its Rouge-L F-measure against the
reference. Functional mode (records with a testbench) refines only the compiling candidates: passing
the testbench gives ``functional_pass_score``, anything else the paper score times
``functional_scale``; records without a testbench keep paper scores (counted in the stats).
Equivalence mode (any record with a reference, `tasks.equivalence`): the compiling candidates of a group
are simulated side by side with the reference in one differential testbench; a candidate matching
everywhere gets ``equivalence_pass_score``; a mismatching one ``equivalence_floor`` plus its matching
fraction times (``equivalence_ceiling`` - floor) when ``equivalence_partial``, else ``syntax_fail_score``;
one that fails in the testbench (its ports do not fit, it hangs) ``syntax_fail_score``. A reference the
differential testbench cannot use (the reason is counted in the stats) leaves its compiling candidates
unscorable (None), as a tool failure does.

A tool that could not run (status ``infra_error``) makes a candidate unscorable: score None, which the
loss leaves out of every pair. It is never turned into a 0.

Output rows are scores.jsonl's: {"id", "instruction", "header", "candidates": [{"text", "source",
"modules", "syntax_ok", "rouge_l", "score", "status"}]}. Candidate order: sampled candidates in sampling
order, then the reference LAST; nothing downstream depends on this (harness.objective.ranking finds the
reference by ``source == "reference"``). ``text`` is the extracted Verilog (what gets ranked), or the
raw completion when no code could be extracted. ``status`` is ``reference``, ``multi_module``, ``ok``
(compiled), or a `verilog_tools.status` category: the syntax check's (syntax_error, compile_error,
timeout, ...) or, in functional and equivalence mode, the simulation's (pass, mismatch, ...).
"""
from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.runs.layout import mean_score, sampled_candidates
from tasks.rouge import TOKENIZERS, ReferenceLcs
from verilog_tools import status as st
from verilog_tools.config import option as _f
from verilog_tools.errors import UserError

MODES = ("paper", "functional", "equivalence")
REFERENCE, MULTI_MODULE, COMPILED = "reference", "multi_module", "ok"


@dataclass
class ScoreConfig:
    mode: str = _f("paper", "paper: multi-module / syntax / Rouge-L; functional: testbench pass first")
    reference_score: float = _f(1.0, "score of the reference answer")
    multi_module_score: float = _f(-1.0, "score of a sampled candidate with more than one module")
    multi_module_penalty: bool = _f(True, "give multi-module candidates multi_module_score (the paper's "
                                          "filter); False scores them like any other candidate")
    syntax_fail_score: float = _f(0.0, "score of a candidate that does not compile or has no code")
    functional_pass_score: float = _f(1.0, "functional mode: score of a candidate passing its testbench")
    functional_scale: float = _f(0.9, "functional mode: factor on the paper score of a compiling, failing one")
    rouge_tokenizer: str = _f("rouge", "Rouge-L tokens: rouge (rouge_score's [a-z0-9]+, the paper's) | code "
                                       "(operators and punctuation kept)")
    equivalence_pass_score: float = _f(1.0, "equivalence mode: score of a candidate matching the reference")
    equivalence_partial: bool = _f(True, "equivalence mode: a mismatching candidate scores by its matching "
                                         "fraction between floor and ceiling (False: syntax_fail_score)")
    equivalence_floor: float = _f(0.1, "equivalence mode: score of a compiling candidate matching nowhere")
    equivalence_ceiling: float = _f(0.9, "equivalence mode: limit of a mismatching candidate's score")
    equivalence_cycles: int = _f(256, "equivalence mode: stimulus vectors (clock cycles) after reset")
    equivalence_group: bool = _f(True, "equivalence mode: simulate a group's candidates in one run "
                                       "(False: one run per candidate)")
    equivalence_start: str = _f("auto", "equivalence mode: start state of every variable: x (until reset), "
                                        "zero (as an FPGA after configuration), auto (x; zero for a reference "
                                        "whose outputs are never defined from x); tasks.difftb")
    completion_mode: str = _f("module", "what a sampled completion is: module (a whole design) | body (what "
                                        "follows the record's header, train_prompt_style=body; scored as "
                                        "header + body, as the evaluator scores VerilogEval v1)")

    def __post_init__(self):
        if self.mode not in MODES:
            raise UserError(f"ScoreConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.completion_mode not in ("module", "body"):
            raise UserError(f"ScoreConfig.completion_mode must be module or body, got {self.completion_mode!r}")
        for name in ("reference_score", "multi_module_score", "syntax_fail_score",
                     "functional_pass_score", "functional_scale", "equivalence_pass_score",
                     "equivalence_floor", "equivalence_ceiling"):
            if not math.isfinite(getattr(self, name)):
                raise UserError(f"ScoreConfig.{name} must be a finite number, got {getattr(self, name)}")
        if self.rouge_tokenizer not in TOKENIZERS:
            raise UserError(f"ScoreConfig.rouge_tokenizer must be one of {TOKENIZERS}, got {self.rouge_tokenizer!r}")
        if not self.equivalence_floor <= self.equivalence_ceiling <= self.equivalence_pass_score:
            raise UserError("ScoreConfig: need equivalence_floor <= equivalence_ceiling <= equivalence_pass_score, "
                            f"got {self.equivalence_floor}, {self.equivalence_ceiling}, {self.equivalence_pass_score}")
        if self.equivalence_cycles < 1:
            raise UserError(f"ScoreConfig.equivalence_cycles must be >= 1, got {self.equivalence_cycles}")
        if self.equivalence_start not in ("auto", "x", "zero"):
            raise UserError(f"ScoreConfig.equivalence_start must be auto, x or zero, got {self.equivalence_start!r}")


def score_groups(records, sampled_texts: list[list[str]], cfg: ScoreConfig, workers: int = 1,
                 limits=None) -> list[dict]:
    """scores.jsonl rows for ``records`` (TrainingRecord) and their raw sampled completions;
    ``limits`` (icarus.SimLimits or runner.Limits; None = defaults) caps every tool run."""
    from verilog_tools import checker, icarus
    from verilog_tools.text import count_modules

    if len(records) != len(sampled_texts):
        raise ValueError(f"{len(records)} records but {len(sampled_texts)} lists of sampled texts")
    flat = [(r, rec, raw) for r, (rec, raws) in enumerate(zip(records, sampled_texts)) for raw in raws]
    with ThreadPoolExecutor(max(1, workers)) as pool:   # extraction runs in the verifier's bounded workers
        found = list(pool.map(lambda item: checker.extract(item[2], header=item[1].header,
                                                           mode=cfg.completion_mode), flat))
    cands = []  # (record index, candidate dict) for every sampled completion
    for (r, rec, raw), (code, modules) in zip(flat, found):
        text = code if code is not None else raw
        if cfg.completion_mode == "body":  # the whole design, as tasks.evaluate.design_for builds it (a
            text = rec.header + text       # completion without code too: training cuts the header off again)
            modules = count_modules(text) if code is not None else modules
        cands.append((r, {"text": text, "source": "model",
                          "modules": modules, "syntax_ok": None, "rouge_l": None, "score": None,
                          "status": st.NO_CODE if code is None else None}))
    to_check = [c for _, c in cands if c["status"] is None
                and (c["modules"] <= 1 or not cfg.multi_module_penalty)]
    for cand, result in zip(to_check, icarus.check_syntax_many([c["text"] for c in to_check], workers,
                                                                   **_limits_kw(limits))):
        cand["syntax_ok"] = bool(result.ok)
        cand["status"] = COMPILED if result.ok else result.status
    _apply_paper_scores(records, cands, cfg)
    if cfg.mode == "functional":
        _apply_functional_scores(records, cands, cfg, workers, limits)
    excluded: dict[int, str] = {}
    if cfg.mode == "equivalence":
        excluded = _apply_equivalence_scores(records, cands, cfg, workers, limits)
    rows = _rows(records, cands, cfg, count_modules)
    for r, reason in excluded.items():
        rows[r]["equivalence_excluded"] = reason
    return rows


def _limits_kw(limits) -> dict:
    return {} if limits is None else {"limits": limits}


def _apply_paper_scores(records, cands, cfg: ScoreConfig) -> None:
    references: dict[int, ReferenceLcs] = {}
    for r, cand in cands:
        if cand["status"] is None:  # not checked: more than one module
            cand["status"], cand["score"] = MULTI_MODULE, cfg.multi_module_score
        elif cand["status"] == st.INFRA_ERROR:
            cand["score"] = None
        elif cand["status"] != COMPILED:
            cand["score"] = cfg.syntax_fail_score
        else:
            if r not in references:
                references[r] = ReferenceLcs(records[r].reference, cfg.rouge_tokenizer)
            cand["rouge_l"] = references[r].f_measure(cand["text"])
            cand["score"] = cand["rouge_l"]


def _apply_functional_scores(records, cands, cfg: ScoreConfig, workers: int, limits=None) -> None:
    from verilog_tools import icarus

    todo = [(r, c) for r, c in cands if c["status"] == COMPILED and records[r].testbench]

    def run(rec, design, expected=None):
        return icarus.simulate(design, rec.testbench, top=rec.top or "tb",
                               dut_module=rec.dut_module or "top_module", limits=limits,
                               expected_samples=expected)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # As in the evaluator: the reference's own run fixes how many samples a passing design must
        # cover, so a design that ends the simulation early cannot pass.
        needed = sorted({r for r, _ in todo})
        refs = dict(zip(needed, pool.map(lambda r: run(records[r], records[r].reference), needed)))
        expected = {r: res.checks if res.passed or res.clean_tb_timeout else None for r, res in refs.items()}
        results = list(pool.map(lambda item: run(records[item[0]], item[1]["text"], expected[item[0]]), todo))
    for (_, cand), result in zip(todo, results):
        cand["status"] = result.status
        if result.status == st.INFRA_ERROR:
            cand["score"] = None
        elif result.passed:
            cand["score"] = cfg.functional_pass_score
        else:
            cand["score"] = cand["rouge_l"] * cfg.functional_scale


def _apply_equivalence_scores(records, cands, cfg: ScoreConfig, workers: int, limits=None) -> dict[int, str]:
    """Score the compiling candidates by differential simulation; {record index: exclusion reason}."""
    from tasks.difftb import StimulusConfig
    from tasks.equivalence import check_groups
    from verilog_tools.text import module_names

    by_record: dict[int, list[dict]] = {}
    for r, cand in cands:
        if cand["status"] == COMPILED:
            by_record.setdefault(r, []).append(cand)
    order = sorted(by_record)
    items = [(records[r].reference, [c["text"] for c in by_record[r]],
              records[r].dut_module or next(iter(module_names(records[r].header or "")), None)) for r in order]
    stimulus = StimulusConfig(cycles=cfg.equivalence_cycles, start=cfg.equivalence_start)
    results = check_groups(items, cfg=stimulus, limits=limits,
                           workers=workers, group=cfg.equivalence_group)
    excluded = {}
    for r, result in zip(order, results):
        if result.excluded:
            excluded[r] = result.excluded
        for cand, verdict in zip(by_record[r], result.verdicts):
            cand["equivalence"] = None if verdict is None else verdict.match_fraction
            if verdict is None or verdict.status == st.INFRA_ERROR:
                cand["score"] = None
                continue
            cand["status"] = verdict.status
            if verdict.status == st.PASS:
                cand["score"] = cfg.equivalence_pass_score
            elif verdict.status == st.MISMATCH and cfg.equivalence_partial:
                cand["score"] = cfg.equivalence_floor + (cfg.equivalence_ceiling - cfg.equivalence_floor) \
                    * verdict.match_fraction
            else:
                cand["score"] = cfg.syntax_fail_score
    return excluded


def _rows(records, cands, cfg: ScoreConfig, count_modules) -> list[dict]:
    rows = [{"id": rec.id, "instruction": rec.instruction, "header": rec.header, "candidates": []}
            for rec in records]
    for r, cand in cands:
        rows[r]["candidates"].append(cand)
    for rec, row in zip(records, rows):
        row["candidates"].append({"text": rec.reference, "source": "reference",
                                  "modules": count_modules(rec.reference), "syntax_ok": None,
                                  "rouge_l": None, "score": cfg.reference_score, "status": REFERENCE})
    return rows


def score_stats(rows: list[dict], records=None, cfg: ScoreConfig | None = None) -> dict:
    """Per-iteration summary of the sampled candidates (the references are left out)."""
    sampled = sampled_candidates(rows)
    n = len(sampled)
    rouges = [c["rouge_l"] for c in sampled if c["rouge_l"] is not None]
    histogram = Counter("none" if c["score"] is None else f"{c['score']:.1f}" for c in sampled)
    stats = {
        "groups": len(rows),
        "sampled": n,
        "syntax_valid_rate": sum(bool(c["syntax_ok"]) for c in sampled) / n if n else 0.0,
        "multi_module_rate": sum(c["modules"] > 1 for c in sampled) / n if n else 0.0,
        "mean_rouge_l": sum(rouges) / len(rouges) if rouges else None,
        "mean_score": mean_score(rows),
        "unscorable": histogram.get("none", 0),
        "score_histogram": dict(sorted(histogram.items())),
        "status_counts": dict(sorted(Counter(c["status"] for c in sampled).items())),
    }
    if cfg is not None and cfg.mode == "functional" and records is not None:
        stats["functional_unavailable"] = sum(not rec.testbench for rec in records)
    if cfg is not None and cfg.mode == "equivalence":
        stats["equivalence_excluded"] = dict(sorted(Counter(
            row["equivalence_excluded"] for row in rows if row.get("equivalence_excluded")).items()))
    return stats
