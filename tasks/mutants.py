"""Seeded mutant samples of a benchmark's references: a realistic, reproducible samples.jsonl.

Used to measure evaluation throughput (``python -m tasks.mutants``): most mutants fail, the
unmutated reference passes, a few hang or break. Each task gets ``n`` distinct designs: mutants where
the reference has enough mutation sites, equivalent variants of them otherwise.
"""
from __future__ import annotations

import argparse
import random
import sys

from tasks.benchmarks import load_benchmark
from tasks.samples import write_samples
from tasks.synthetic.mutate import mutate
from verilog_tools.text import normalize_code


def _with_unused_wire(design: str, index: int) -> str:
    at = design.rfind("endmodule")
    return f"{design[:at]}wire itertl_unused_{index};\n{design[at:]}" if at >= 0 else design


def mutant_samples(problems, n: int, seed: int = 0) -> list[dict]:
    """``n`` samples per problem: the reference first, then distinct mutants of one to three edits."""
    rows = []
    for problem in problems:
        rng = random.Random(f"{seed}:{problem.task_id}")
        reference = problem.reference  # a whole module: mutate() edits module bodies only
        designs, seen = [reference], {normalize_code(reference)}
        for _ in range(n * 50):
            if len(designs) == n:
                break
            code = reference
            for _ in range(rng.choice((1, 1, 2, 3))):  # more edits: more distinct designs per task
                code = mutate(code, rng) or code
            if code is not None and normalize_code(code) not in seen:
                seen.add(normalize_code(code))
                designs.append(code)
        if problem.completion_mode == "body":  # headers are never mutated: cut them off again
            designs = [d[len(problem.header):] if d.startswith(problem.header) else d for d in designs]
        # Too few mutation sites: distinct but equivalent variants (an unused wire before endmodule).
        designs += [_with_unused_wire(designs[i % len(designs)], i) for i in range(n - len(designs))]
        rows += [{"task_id": problem.task_id, "completion_id": j, "completion": d}
                 for j, d in enumerate(designs)]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default="verilog-eval-v1-human", help="benchmark id")
    parser.add_argument("--n", type=int, default=20, help="samples per problem")
    parser.add_argument("--seed", type=int, default=0, help="mutation seed")
    parser.add_argument("--out", required=True, help="samples.jsonl to write")
    args = parser.parse_args(argv)
    rows = mutant_samples(load_benchmark(args.bench), args.n, args.seed)
    write_samples(args.out, rows)
    distinct = len({(r["task_id"], normalize_code(r["completion"])) for r in rows})
    print(f"wrote {len(rows)} samples ({distinct} distinct designs) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from verilog_tools.errors import UserError
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
