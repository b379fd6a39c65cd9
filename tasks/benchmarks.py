"""The benchmark registry: a benchmark id -> a list of `Problem`s.

Built-in ids: the four VerilogEval sets, ``rtllm-v2`` (RTLLM v2.0, `tasks.rtllm`), ``synthetic`` (the held-out split of the offline synthetic
tasks) and ``file`` (a user's problems file in VerilogEval v1's JSONL format, ``PROBLEMS=path``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tasks import fetch, rtllm, verilog_eval
from tasks.problem import Problem
from verilog_tools.errors import UserError

Loader = Callable[[], list[Problem]]
FILE_BENCH = "file"


def _synthetic() -> list[Problem]:
    from tasks.synthetic import load_problems  # imported late: the synthetic set is optional here
    return load_problems(split="heldout")


_REGISTRY: dict[str, Loader] = {
    "verilog-eval-v1-human": lambda: verilog_eval.load_v1(fetch.dataset_dir("v1"), "human"),
    "verilog-eval-v1-machine": lambda: verilog_eval.load_v1(fetch.dataset_dir("v1"), "machine"),
    "verilog-eval-v2-spec-to-rtl": lambda: verilog_eval.load_v2(fetch.dataset_dir("v2"), "spec-to-rtl"),
    "verilog-eval-v2-code-complete": lambda: verilog_eval.load_v2(fetch.dataset_dir("v2"), "code-complete"),
    "synthetic": _synthetic,
    "rtllm-v2": lambda: rtllm.load_rtllm_v2(fetch.dataset_dir("rtllm-v2")),
}


def known_benchmarks() -> list[str]:
    return [*_REGISTRY, FILE_BENCH]


def load_benchmark(bench_id: str | None, *, problems_file: str | Path | None = None) -> list[Problem]:
    """The problems of ``bench_id``; ``problems_file`` (v1 JSONL) selects the ``file`` benchmark."""
    if problems_file is not None and bench_id in (None, FILE_BENCH):
        return verilog_eval.load_v1_jsonl(Path(problems_file), benchmark=FILE_BENCH)
    if problems_file is not None:
        raise UserError(f"both BENCH={bench_id} and PROBLEMS={problems_file} given; "
                        f"use BENCH={FILE_BENCH} (or leave BENCH unset) with PROBLEMS")
    if bench_id == FILE_BENCH:
        raise UserError(f"BENCH={FILE_BENCH} needs PROBLEMS=path/to/problems.jsonl")
    if bench_id not in _REGISTRY:
        raise UserError(f"unknown benchmark {bench_id!r}; known: {', '.join(known_benchmarks())}")
    problems = _REGISTRY[bench_id]()
    if not problems:
        raise UserError(f"benchmark {bench_id} has no problems")
    return problems
