"""Calibrate the equivalence score: does the differential testbench say what the code does?

`python -m tasks.equivalence_calibration --out FILE.json` measures, each with its list of exceptions:
- self-pass: the reference against itself (synthetic, VerilogEval v1 Human / v2 spec-to-rtl, the
  compiling single-module references of each rtlcoder-small file given), with the references that
  needed a zero start (`tasks.difftb`) counted;
- mutants caught: seeded single-fault mutants (`tasks.synthetic.mutate`) that compile, per set (for
  rtlcoder-small: of the references compared from a zero start);
- equivalent rewrites passing (`tasks.rewrites`), likewise;
- agreement with the official testbench on VerilogEval v1 Human's seeded mutants (`tasks.mutants`);
- Rouge-L ties: of 120 single-fault mutants of synthetic training references, how many score 1.0
  under each Rouge-L tokenizer (and how many the differential testbench passes);
- with --formal, agreement with Yosys (`tasks.formal`) on each reference and two of its mutants.
Figures go into BENCHMARKS.md ("Equivalence score (issue 13)"); the default tests assert the same
floors on small subsets (tests/test_equivalence.py).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

from tasks.equivalence import check_group
from tasks.rewrites import REWRITES
from tasks.rouge import TOKENIZERS, rouge_l
from tasks.synthetic.mutate import mutate
from verilog_tools import status as st
from verilog_tools.text import normalize_code

Item = tuple[str, str, str | None]   # (id, reference, top module)


def _map(fn, items, workers: int):
    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(fn, items))


def self_pass(items: list[Item], workers: int = 2) -> dict:
    """Each reference as its own candidate: passes, excluded (with reason) or fails (with status)."""
    def one(item):
        tid, ref, top = item
        result = check_group(ref, [ref], module=top)
        return tid, result.excluded, result.verdicts[0], result.zero_start and not result.excluded
    rows = _map(one, items, workers)
    zero = [tid for tid, _, _, z in rows if z]
    rows = [row[:3] for row in rows]
    excluded = [(tid, why) for tid, why, _ in rows if why]
    failed = [(tid, v.status) for tid, why, v in rows if not why and v.status != st.PASS]
    scored = len(rows) - len(excluded)
    return {"references": len(rows), "excluded": len(excluded), "scored": scored,
            "passed": scored - len(failed), "pass_rate": (scored - len(failed)) / scored if scored else None,
            "pass_rate_all": (scored - len(failed)) / len(rows) if rows else None,
            "excluded_reasons": dict(Counter(why for _, why in excluded).most_common()),
            "zero_start": len(zero), "zero_start_ids": zero,
            "exceptions": [{"id": t, "excluded": w} for t, w in excluded] + [{"id": t, "status": s} for t, s in failed]}


def _compiles(code: str) -> bool:
    from verilog_tools.icarus import check_syntax
    return check_syntax(code).ok


def mutants_caught(items: list[Item], per_reference: int = 3, seed: int = 0, workers: int = 2) -> dict:
    """Distinct compiling single-fault mutants per reference; caught = any verdict but pass."""
    def one(item):
        tid, ref, top = item
        rng = random.Random(f"{seed}:{tid}")
        seen, mutants = {normalize_code(ref)}, []
        for _ in range(per_reference * 10):
            code = mutate(ref, rng)
            if code and normalize_code(code) not in seen and len(mutants) < per_reference:
                seen.add(normalize_code(code))
                if _compiles(code):
                    mutants.append(code)
        result = check_group(ref, mutants, module=top) if mutants else None
        return tid, mutants, result
    rows = _map(one, items, workers)
    total = caught = 0
    survivors, excluded = [], []
    for tid, mutants, result in rows:
        if result is None:
            continue
        if result.excluded:
            excluded.append((tid, result.excluded))
            continue
        for k, v in enumerate(result.verdicts):
            total += 1
            if v.status == st.PASS:
                survivors.append({"id": tid, "mutant": k, "diff": _diff(_ref_of(items, tid), mutants[k])})
            else:
                caught += 1
    return {"mutants": total, "caught": caught, "caught_rate": caught / total if total else None,
            "excluded_references": excluded, "survivors": survivors}


def _ref_of(items, tid):
    return next(ref for t, ref, _ in items if t == tid)


def _diff(a: str, b: str) -> str:
    import difflib
    lines = [l for l in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
             if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    return " | ".join(l.strip() for l in lines)[:300]


def rewrites_pass(items: list[Item], workers: int = 2) -> dict:
    """Every applicable equivalent rewrite of each reference must pass."""
    def one(item):
        tid, ref, top = item
        names, designs = [], []
        for name, fn in REWRITES.items():
            code = fn(ref) if name in ("reformat", "swap_operands") else fn(ref, top)
            if code is not None and code != ref:
                names.append(name)
                designs.append(code)
        result = check_group(ref, designs, module=top) if designs else None
        return tid, names, result
    counts, failures, excluded = Counter(), [], []
    for tid, names, result in _map(one, items, workers):
        if result is None:
            continue
        if result.excluded:
            excluded.append((tid, result.excluded))
            continue
        for name, v in zip(names, result.verdicts):
            counts[name] += 1
            if v.status != st.PASS:
                failures.append({"id": tid, "rewrite": name, "status": v.status})
    total = sum(counts.values())
    return {"rewrites": total, "per_kind": dict(counts), "passed": total - len(failures),
            "pass_rate": (total - len(failures)) / total if total else None,
            "failures": failures, "excluded_references": excluded}


def official_agreement(problems, n: int = 20, seed: int = 0, workers: int = 2) -> dict:
    """Differential verdict vs the benchmark's own testbench on `tasks.mutants` samples."""
    from tasks.evaluate import design_for, evaluate
    from tasks.mutants import mutant_samples

    samples = mutant_samples(problems, n, seed)
    started = time.monotonic()
    official = {(r["task_id"], r["completion_id"]): r for r in
                evaluate(problems, samples, workers=workers, progress=False).results}
    official_seconds = time.monotonic() - started
    by_id = {p.task_id: p for p in problems}
    groups: dict[str, list[dict]] = {}
    for s in samples:
        groups.setdefault(s["task_id"], []).append(s)

    def one(tid):
        p = by_id[tid]
        designs = [design_for(p, s["completion"]) for s in groups[tid]]
        return tid, check_group(p.reference, designs, module=p.dut_module)
    started = time.monotonic()
    diff_results = dict(_map(one, list(groups), workers))
    diff_seconds = time.monotonic() - started
    table, disagreements, excluded = Counter(), [], Counter()
    for tid, result in diff_results.items():
        if result.excluded:
            excluded[result.excluded] += len(groups[tid])
            continue
        for s, v in zip(groups[tid], result.verdicts):
            o = official[(tid, s["completion_id"])]
            key = ("pass" if o["passed"] else "fail", "pass" if v.status == st.PASS else "fail")
            table[key] += 1
            if key[0] != key[1]:
                disagreements.append({"id": tid, "completion_id": s["completion_id"], "official": o["status"],
                                      "differential": v.status,
                                      "diff": _diff(by_id[tid].reference, design_for(by_id[tid], s["completion"]))})
    compared = sum(table.values())
    agree = table[("pass", "pass")] + table[("fail", "fail")]
    return {"samples": len(samples), "compared": compared, "excluded_samples": dict(excluded),
            "agreement": agree / compared if compared else None,
            "table": {f"official_{a}/differential_{b}": c for (a, b), c in sorted(table.items())},
            "official_seconds": round(official_seconds, 1), "differential_seconds": round(diff_seconds, 1),
            "disagreements": disagreements}


def rouge_ties(items: list[Item], seed: int = 0) -> dict:
    """One single-fault mutant per reference: how many tie the reference (Rouge-L 1.0) per tokenizer,
    and how many the differential testbench tells apart."""
    mutants = []
    for tid, ref, top in items:
        code = mutate(ref, random.Random(f"{seed}:{tid}"))
        if code and normalize_code(code) != normalize_code(ref):
            mutants.append((tid, ref, top, code))
    out = {"mutants": len(mutants)}
    for tok in TOKENIZERS:
        scores = [rouge_l(ref, code, tok) for _, ref, _, code in mutants]
        out[f"ties_{tok}"] = sum(x == 1.0 for x in scores)
        out[f"mean_rouge_l_{tok}"] = sum(scores) / len(scores) if scores else None
    verdicts = _map(lambda m: check_group(m[1], [m[3]], module=m[2]), mutants, 2)
    out["equivalence_pass"] = sum(not r.excluded and r.verdicts[0].status == st.PASS for r in verdicts)
    return out


def formal_agreement(items: list[Item], per_reference: int = 2, seed: int = 0, workers: int = 2) -> dict:
    """Yosys (`tasks.formal`) against the differential simulation on the reference itself and
    `per_reference` compiling mutants of each reference: agreement, the disagreements, and the cost."""
    from tasks.formal import EQUIVALENT, UNKNOWN, formal_check

    def one(item):
        tid, ref, top = item
        rng = random.Random(f"formal:{seed}:{tid}")
        designs = [ref] + [m for m in (mutate(ref, rng) for _ in range(per_reference * 3))
                           if m and normalize_code(m) != normalize_code(ref) and _compiles(m)][:per_reference]
        started = time.monotonic()
        sim = check_group(ref, designs, module=top)
        sim_s = time.monotonic() - started
        formal = [formal_check(ref, d, module=top) for d in designs]
        return tid, ref, designs, sim, sim_s, formal
    table, disagreements, unknown, excluded = Counter(), [], [], 0
    sim_s = formal_s = 0.0
    for tid, ref, designs, sim, s, formal in _map(one, items, workers):
        if sim.excluded:
            excluded += 1
            continue
        sim_s += s
        for k, (d, v, f) in enumerate(zip(designs, sim.verdicts, formal)):
            formal_s += f.seconds
            if f.status == UNKNOWN:
                unknown.append({"id": tid, "design": k, "log": f.log_tail[-200:]})
                continue
            key = ("equivalent" if f.status == EQUIVALENT else "different", "pass" if v.status == st.PASS else "fail")
            table[key] += 1
            if (key[0] == "equivalent") != (key[1] == "pass"):
                disagreements.append({"id": tid, "design": k, "formal": f.status, "simulation": v.status,
                                      "diff": _diff(ref, d)})
    compared = sum(table.values())
    return {"designs": compared + len(unknown), "compared": compared, "excluded_references": excluded,
            "agreement": (compared - len(disagreements)) / compared if compared else None,
            "table": {f"formal_{a}/simulation_{b}": c for (a, b), c in sorted(table.items())},
            "formal_seconds_per_design": formal_s / max(1, compared + len(unknown)),
            "simulation_seconds_per_design": sim_s / max(1, compared + len(unknown)),
            "unknown": unknown, "disagreements": disagreements}


def benchmark_items(bench: str) -> list[Item]:
    from tasks.benchmarks import load_benchmark
    return [(p.task_id, p.reference, p.dut_module) for p in load_benchmark(bench)]


def synthetic_items(split: str = "heldout") -> list[Item]:
    from tasks.synthetic import load_problems
    return [(p.task_id, p.reference, p.dut_module) for p in load_problems(split=split)]


def rtlcoder_items(path: str, workers: int = 2) -> list[Item]:
    """The single-module rtlcoder references that compile (what the paper's filter keeps)."""
    from tasks.rtlcoder import clean_examples, read_source
    from verilog_tools.icarus import check_syntax_many
    from verilog_tools.text import module_names

    kept, _ = clean_examples(read_source(path).examples)
    ok = check_syntax_many([e.reference for e in kept], workers)
    return [(f"rtlcoder-{i}", e.reference, next(iter(module_names(e.header)), None))
            for i, (e, r) in enumerate(zip(kept, ok)) if r.ok]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file for every figure and exception list")
    parser.add_argument("--rtlcoder", action="append", default=[],
                        help="rtlcoder-small JSONL (self-pass on its references); repeat for several files")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-official", action="store_true", help="skip the v1 Human agreement run")
    parser.add_argument("--skip-benchmarks", action="store_true",
                        help="skip the synthetic and VerilogEval sets and the Rouge-L ties (rtlcoder files only)")
    parser.add_argument("--formal", action="store_true", help="also compare with Yosys (tasks.formal)")
    args = parser.parse_args(argv)
    w = args.workers
    report: dict = {}
    sets = {} if args.skip_benchmarks else {
        "synthetic": synthetic_items(), "verilog-eval-v1-human": benchmark_items("verilog-eval-v1-human"),
        "verilog-eval-v2-spec-to-rtl": benchmark_items("verilog-eval-v2-spec-to-rtl")}
    for path in args.rtlcoder:
        sets[f"rtlcoder-small/{Path(path).stem}"] = rtlcoder_items(path, w)
    for name, items in sets.items():
        started = time.monotonic()
        report[f"self_pass/{name}"] = self_pass(items, w)
        if name.startswith("rtlcoder-small"):   # mutants and rewrites of the references compared from zero
            zero = set(report[f"self_pass/{name}"]["zero_start_ids"])
            items = [item for item in items if item[0] in zero]
        report[f"mutants/{name}"] = mutants_caught(items, workers=w)
        report[f"rewrites/{name}"] = rewrites_pass(items, w)
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        _write(args.out, report)
    if not args.skip_benchmarks:
        report["rouge_ties/synthetic-train-120"] = rouge_ties(synthetic_items("train")[:120])
        _write(args.out, report)
    if args.formal and not args.skip_benchmarks:
        for name in ("synthetic", "verilog-eval-v1-human"):
            report[f"formal/{name}"] = formal_agreement(sets[name], workers=w)
            _write(args.out, report)
    if not args.skip_official:
        from tasks.benchmarks import load_benchmark
        report["official_agreement/verilog-eval-v1-human"] = official_agreement(
            load_benchmark("verilog-eval-v1-human"), workers=w)
    _write(args.out, report)
    return 0


def _write(path: str, report: dict) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
