"""Seeded generation of the synthetic task set and its views (problems, records, corpus).

Tasks are drawn round-robin over families and levels from one `random.Random(seed)`, so the
same seed gives byte-identical tasks. A task's *signature* (family + key parameters) is
assigned to a split the first time it is drawn, and only tasks whose signature belongs to the
held-out split are kept there: held-out parameter combinations never occur in training.
"""
from __future__ import annotations

import functools
import json
import os
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from tasks.jsonl import iter_jsonl
from tasks.problem import Problem
from tasks.records import TrainingRecord
from tasks.synthetic.comb import (make_adder, make_compare, make_decoder, make_gates, make_mux,
                                  make_parity, make_popcount, make_prienc)
from tasks.synthetic.design import Design
from tasks.synthetic.fsm import make_seqdet
from tasks.synthetic.seq import make_counter, make_dff, make_edge, make_shiftreg
from tasks.synthetic.testbench import build_testbench
from verilog_tools.errors import UserError

FAMILIES: tuple[tuple[str, Callable[[random.Random, int], Design]], ...] = (
    ("gates", make_gates), ("mux", make_mux), ("decoder", make_decoder), ("prienc", make_prienc),
    ("adder", make_adder), ("compare", make_compare), ("parity", make_parity),
    ("popcount", make_popcount), ("dff", make_dff), ("counter", make_counter),
    ("shiftreg", make_shiftreg), ("edge", make_edge), ("seqdet", make_seqdet))
LEVELS = (1, 2, 3)
HELDOUT_SIGNATURE_SHARE = 0.15   # chance that a newly seen signature goes to the held-out split
SPLITS = ("train", "heldout")


def _check_args(n_train: int, n_heldout: int, levels: tuple[int, ...]) -> None:
    for name, value in (("n_train", n_train), ("n_heldout", n_heldout)):
        if not isinstance(value, int) or value < 0:
            raise UserError(f"{name} must be a non-negative integer, got {value!r}")
    if not levels or any(level not in LEVELS for level in levels):
        raise UserError(f"levels must be a non-empty subset of {LEVELS}, got {levels!r}")


def _quotas(total: int) -> dict[str, int]:
    count = len(FAMILIES)
    return {name: total // count + (i < total % count) for i, (name, _) in enumerate(FAMILIES)}


def _draw_designs(seed: int, n_train: int, n_heldout: int,
                  levels: tuple[int, ...]) -> dict[str, list[Design]]:
    rng = random.Random(seed)
    quotas = {"train": _quotas(n_train), "heldout": _quotas(n_heldout)}
    taken = {split: {name: 0 for name, _ in FAMILIES} for split in SPLITS}
    chosen: dict[str, list[Design]] = {split: [] for split in SPLITS}
    split_of: dict[tuple[str, ...], str] = {}
    signatures = {split: {name: 0 for name, _ in FAMILIES} for split in SPLITS}
    seen: set[str] = set()   # membership only; never iterated
    need = n_train + n_heldout
    for attempt in range(60 * need + 1000):
        if len(chosen["train"]) + len(chosen["heldout"]) == need:
            return chosen
        name, make = FAMILIES[attempt % len(FAMILIES)]
        if all(taken[s][name] >= quotas[s][name] for s in SPLITS):
            continue
        design = make(rng, levels[(attempt // len(FAMILIES)) % len(levels)])
        split = split_of.get(design.signature)
        if split is None:
            # the first signature of a family trains, the second is held out, later ones by chance
            first_heldout = signatures["train"][name] > 0 and signatures["heldout"][name] == 0
            wants_heldout = first_heldout or rng.random() < HELDOUT_SIGNATURE_SHARE
            split = "heldout" if wants_heldout and quotas["heldout"][name] else "train"
            split_of[design.signature] = split
            signatures[split][name] += 1
        key = design.description + design.body
        if taken[split][name] >= quotas[split][name] or key in seen:
            continue
        seen.add(key)
        taken[split][name] += 1
        chosen[split].append(design)
    raise UserError(f"could not draw {n_train} train + {n_heldout} held-out distinct tasks for "
                       f"levels {levels}; lower n_train/n_heldout or allow more levels")


def _to_problem(design: Design, task_id: str, split: str) -> Problem:
    return Problem(task_id=task_id, benchmark="synthetic", description=design.description,
                   header=design.header(), reference=design.module(),
                   testbench=build_testbench(design), top="tb", dut_module="top_module",
                   completion_mode="module", prompt="",
                   meta={"family": design.family, "level": design.level,
                         "signature": list(design.signature), "split": split})


@functools.lru_cache(maxsize=4)
def _generate_cached(seed: int, n_train: int, n_heldout: int,
                     levels: tuple[int, ...]) -> tuple[tuple[Problem, ...], tuple[Problem, ...]]:
    _check_args(n_train, n_heldout, levels)
    designs = _draw_designs(seed, n_train, n_heldout, levels)
    result = []
    for split in SPLITS:
        counters = {name: 0 for name, _ in FAMILIES}
        problems = []
        for design in designs[split]:
            index = counters[design.family]
            counters[design.family] += 1
            number = f"{index:04d}" if split == "train" else f"h{index:03d}"
            problems.append(_to_problem(design, f"syn-{design.family}-{number}", split))
        result.append(tuple(problems))
    return result[0], result[1]


def generate_tasks(seed: int = 0, n_train: int = 2000, n_heldout: int = 200,
                   levels: tuple[int, ...] = LEVELS) -> tuple[list[Problem], list[Problem]]:
    """(train, heldout) problems; the same arguments always give identical problems."""
    train, heldout = _generate_cached(seed, n_train, n_heldout, tuple(levels))
    return list(train), list(heldout)


def load_problems(split: str = "heldout", seed: int = 0, n_train: int = 2000,
                  n_heldout: int = 200, levels: tuple[int, ...] = LEVELS) -> list[Problem]:
    """One split of the synthetic set as `Problem`s (benchmark id "synthetic")."""
    if split not in SPLITS:
        raise UserError(f"split must be one of {SPLITS}, got {split!r}")
    train, heldout = generate_tasks(seed, n_train, n_heldout, levels)
    return train if split == "train" else heldout


def to_records(problems: list[Problem], split: str | None = None) -> list[TrainingRecord]:
    """Training records for `problems`; `split` defaults to each problem's own split."""
    return [TrainingRecord(id=TrainingRecord.make_id("synthetic", p.description, p.reference),
                           instruction=p.description, header=p.header, reference=p.reference,
                           source="synthetic", testbench=p.testbench, top=p.top,
                           dut_module=p.dut_module, split=split or p.meta.get("split", "train"))
            for p in problems]


_PORT = re.compile(r"^\s*(input|output)(?:\s+reg)?(\s*\[\d+:0\])?\s+(\w+)\s*,?\s*$")


def multi_module_variant(problem: Problem) -> Problem:
    """The same task with its reference split into ``<top>_core`` and a wrapper that instantiates it.

    Functionally identical (the testbench passes it), but it holds two modules: the kind of reference
    the paper's filter drops from RTLCoder's data. Relies on the synthetic house style (one ANSI port
    per header line).
    """
    lines = problem.header.splitlines()
    ports = [m.groups() for m in map(_PORT.match, lines[1:-1])]
    if not lines or any(m is None for m in ports):
        raise ValueError(f"{problem.task_id}: header is not in the synthetic house style")
    top = problem.dut_module
    core = problem.reference.replace(f"module {top}(", f"module {top}_core(", 1)
    decls = ",\n".join(f"    {d}{w or ''} {n}" for d, w, n in ports)
    conns = ", ".join(f".{n}({n})" for _, _, n in ports)
    wrapper = f"module {top}(\n{decls}\n);\n    {top}_core core({conns});\nendmodule\n"
    return replace(problem, task_id=f"{problem.task_id}-mm", reference=f"{core}\n{wrapper}",
                   meta={**problem.meta, "multi_module": True})


def multi_module_extras(problems: list[Problem], share: float, seed: int) -> list[Problem]:
    """Two-module variants of a seeded ``share`` of ``problems`` (extra rows; the originals stay)."""
    if not 0.0 <= share <= 1.0:
        raise UserError(f"multi-module share must be in [0, 1], got {share}")
    rng = random.Random(f"multi-module:{seed}")
    picked = sorted(rng.sample(range(len(problems)), round(share * len(problems))))
    return [multi_module_variant(problems[i]) for i in picked]


def dump_json(problems: list[Problem]) -> str:
    """A canonical JSON text of `problems` (used to check determinism)."""
    rows = [{"task_id": p.task_id, "description": p.description, "header": p.header,
             "reference": p.reference, "testbench": p.testbench, "meta": p.meta} for p in problems]
    return json.dumps(rows, sort_keys=True, indent=1)


def _rtlcoder_outputs(directory: Path) -> Iterator[str]:
    for path in sorted(directory.glob("*.jsonl")):
        for _, row in iter_jsonl(path, "rtlcoder-small"):
            output = row.get("output") if isinstance(row, dict) else None
            if isinstance(output, str) and output.strip():
                yield output


def verilog_corpus(include_rtlcoder: bool = True, seed: int = 0) -> Iterator[str]:
    """Offline Verilog text for tokenizer training: the synthetic training split's references
    and testbenches (held-out tasks are left out), then rtlcoder-small outputs when the
    environment variable RTLCODER_SMALL_DIR names that directory."""
    for problem in load_problems("train", seed=seed):
        yield problem.reference
        yield problem.testbench
    directory = os.environ.get("RTLCODER_SMALL_DIR")
    if include_rtlcoder and directory and Path(directory).is_dir():
        yield from _rtlcoder_outputs(Path(directory))
