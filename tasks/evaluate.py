"""Score samples against a benchmark: completions -> designs -> simulation verdicts -> pass@k.

For each problem the reference design is simulated first; the number of checks its testbench makes
(``M`` in ``Mismatches: N in M samples``) becomes ``expected_samples`` for every sample of that
problem, so a design that ends the simulation early cannot pass. If the reference itself fails
(for example the two problems Icarus 11 cannot simulate), that is recorded under
``reference_failures`` and its samples are simulated without the expectation.

Every completion goes through the verifier before any tool sees it (`verilog_tools.checker`, in bounded
worker processes): the code is extracted, made canonical and checked by the policy. Identical designs of
one task (the same canonical bytes: `verilog_tools.canonical.design_key`) are simulated once and the
verdict is shared; a design identical to a passing reference reuses the reference's own simulation
(which makes the ``MODEL=reference`` self-check cost one simulation per problem). Simulations run in a
thread pool (each is a subprocess, so threads are enough).

Reference verdicts can be kept across evaluations in a folder (``reference_cache``, by default the
``ITERTL_REFERENCE_CACHE`` variable; `make experiment` sets it to ``<run>/cache/references`` unless it is
set already, where 42 evaluations of one held-out set would otherwise simulate the same 200 references 42
times). An entry is found only by the SHA-256 of everything the verdict depends on: the reference's
canonical text, the testbench, its top, data files and external modules, the limits, the simulator's
version, the containment mode and the source of the verifier itself (`verilog_tools` and this module), so
a changed rule never meets an old verdict. Only pass and mismatch are kept: both need a simulation that
ran to its end and printed its verdict, which no load can cause (a kill at a time or CPU limit, a compile
error, the testbench's own timeout are simulated every time). Only references are looked up; a sample
identical to a reference then shares the reference's verdict, found or simulated, as it does without
the cache.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tasks.fetch import data_hash
from tasks.passk import mean_pass_at_k
from tasks.problem import Problem
from tasks.samples import atomic_write_text
from verilog_tools import status as st
from verilog_tools.errors import UserError
from verilog_tools.checker import Checked, check_completion, check_design, context_for
from verilog_tools.container import check_containment
from verilog_tools.icarus import SimResult, as_sim_limits, simulate
from verilog_tools.text import extract_code
from verilog_tools.tools import check_simulator


@dataclass
class EvalOutcome:
    """Everything one evaluation produced; `tasks.reports.write_outcome` puts it on disk."""

    results: list[dict]                  # one row per sample: the sample + its verdict
    per_problem: list[dict]              # task_id, n, c, pass@1, status counts
    metrics: dict = field(default_factory=dict)


def design_for(problem: Problem, completion: str) -> str | None:
    """The full design a completion stands for, or None when it holds no code."""
    code = extract_code(completion, header=problem.header, mode=problem.completion_mode,
                        module_name=problem.dut_module)
    if code is None:
        return None
    return problem.header + code if problem.completion_mode == "body" else code


def check_ids(problems: list[Problem], samples: list[dict], allow_missing: bool) -> list[str]:
    """Validate the sample task ids; return the ids of problems without samples (allowed only if asked)."""
    known = {p.task_id for p in problems}
    unknown = sorted({s["task_id"] for s in samples} - known)
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
        raise UserError(f"samples name {len(unknown)} task id(s) not in the benchmark: {shown}; "
                        f"check BENCH/PROBLEMS")
    have = {s["task_id"] for s in samples}
    missing = [p.task_id for p in problems if p.task_id not in have]
    if missing and not allow_missing:
        raise UserError(f"{len(missing)} problem(s) have no samples (first: {missing[0]!r}); "
                        f"pass --allow-missing to count them as failures, or --limit to score fewer")
    return missing


REFERENCE_CACHE_ENV = "ITERTL_REFERENCE_CACHE"
# Verdicts that only a run to its end can give (verilog_tools.icarus._judge_run: exit 0, no limit reached).
_LOAD_FREE = frozenset({st.PASS, st.MISMATCH})


@functools.cache
def verifier_source_hash() -> str:
    """SHA-256 of the verifier's source (every module of verilog_tools, and this one)."""
    import verilog_tools
    digest = hashlib.sha256()
    for path in sorted(Path(verilog_tools.__file__).parent.glob("*.py")) + [Path(__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class ReferenceCache:
    """Reference verdicts in a folder, one JSON file per key (see the module doc); safe for processes that
    share the folder (each entry is written atomically)."""

    def __init__(self, folder: str | Path, *, limits, simulator: str, containment: str):
        self.folder = Path(folder)
        self.identity = {"format": 1, "limits": asdict(as_sim_limits(limits)), "simulator": simulator,
                         "containment": containment, "verifier": verifier_source_hash()}
        self.hits = 0

    def key(self, problem: Problem, checked: Checked) -> str:
        files = {name: hashlib.sha256(data).hexdigest()
                 for name, data in sorted((getattr(problem, "data_files", None) or {}).items())}
        text = json.dumps({**self.identity, "design": checked.text, "testbench": problem.testbench,
                           "top": problem.top, "data_files": files,
                           "external_modules": list(getattr(problem, "external_modules", ()) or ())},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> SimResult | None:
        try:
            entry = json.loads((self.folder / f"{key}.json").read_text())
            if entry.pop("key") != key:
                return None
            result = SimResult(**{**entry, "verdict_lines": tuple(entry["verdict_lines"])})
        except (OSError, ValueError, KeyError, TypeError):
            return None   # absent, or unreadable: simulate again and write it anew
        self.hits += 1
        return result

    def put(self, key: str, result: SimResult) -> None:
        if result.status not in _LOAD_FREE:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / f"{key}.json", json.dumps({"key": key, **asdict(result)}))


def evaluate(problems: list[Problem], samples: list[dict], *, workers: int | None = None, limits=None,
             ks=(1, 5, 10), allow_missing: bool = False, progress: bool = True,
             reference_cache: str | Path | bool | None = None) -> EvalOutcome:
    """Simulate every sample of ``samples`` against its problem and compute pass@k (see module doc).
    ``reference_cache``: a folder of reference verdicts (None: ``$ITERTL_REFERENCE_CACHE``, if set;
    False: none)."""
    workers = max(1, workers or os.cpu_count() or 1)
    missing = check_ids(problems, samples, allow_missing)
    simulator = check_simulator()
    containment = check_containment()
    by_id = {p.task_id: p for p in problems}
    skipped = set(missing)
    scored = [p for p in problems if p.task_id not in skipped]
    if reference_cache is None:
        reference_cache = os.environ.get(REFERENCE_CACHE_ENV) or False
    cache = (ReferenceCache(reference_cache, limits=limits, simulator=simulator, containment=containment)
             if reference_cache else None)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        contexts = {p.task_id: context_for(p.testbench, getattr(p, "external_modules", ())) for p in problems}
        timeout = as_sim_limits(limits).compile_wall_seconds
        ref_checks = dict(zip([p.task_id for p in scored], pool.map(
            lambda p: _check_reference(p, contexts[p.task_id], timeout), scored)))
        refs, ran = _references(pool, scored, ref_checks, cache, limits, progress)
        # A reference whose run reaches the testbench's own TIMEOUT with a clean verdict still defines
        # the expected sample count; samples then pass by matching it (see verilog_tools.icarus).
        expected = {tid: r.checks if r.status == st.PASS or r.clean_tb_timeout else None
                    for tid, r in refs.items()}
        # A sample identical to a passing reference would rerun the very same simulation.
        known = {(tid, ref_checks[tid].key): r for tid, r in refs.items() if r.status == st.PASS}
        checks = _check_all(pool, samples, by_id, contexts, timeout, progress)
        designs, jobs, keys = _plan(samples, checks, by_id, expected, set(known))
        fresh = dict(zip(keys, _run_all(pool, jobs, limits, "samples", progress)))
    wall = time.monotonic() - started
    verdicts = {**known, **fresh}
    results = [_result_row(s, key, verdicts, dup) for s, (key, dup) in zip(samples, designs)]
    cpu = sum(refs[t].cpu_seconds for t in ran) + sum(v.cpu_seconds for v in fresh.values())
    per_problem = summarize_problems(problems, results)
    metrics = {
        "benchmark": ",".join(sorted({p.benchmark for p in problems})),
        "data_hash": data_hash(problems),
        "simulator": simulator,
        "containment": containment,
        "problems": len(problems),
        "samples": len(samples),
        "simulations": len(fresh) + len(ran),
        "reference_cache_hits": cache.hits if cache else None,
        "missing_problems": missing,
        "reference_failures": [{"task_id": t, "status": r.status, "log_tail": r.log_tail}
                               for t, r in refs.items() if r.status != st.PASS and not r.clean_tb_timeout],
        "reference_time_limited": sorted(t for t, r in refs.items() if r.clean_tb_timeout),
        "wall_seconds": round(wall, 3),
        "tool_cpu_seconds": round(cpu, 3),
        "workers": workers,
        "wall_over_cpu_per_worker": round(wall / (cpu / workers), 3) if cpu > 0 else None,
    }
    metrics.update(pass_metrics(per_problem, ks))
    return EvalOutcome(results=results, per_problem=per_problem, metrics=metrics)


def _references(pool, scored: list[Problem], ref_checks: dict, cache: ReferenceCache | None, limits,
                progress: bool) -> tuple[dict, list[str]]:
    """Every scored problem's reference verdict (task id -> SimResult, in problem order), from ``cache``
    where it holds one, simulated otherwise (then kept there); and the ids that were simulated."""
    keys = {p.task_id: cache.key(p, ref_checks[p.task_id]) for p in scored
            if not (ref_checks[p.task_id].rejected or ref_checks[p.task_id].deferred)} if cache else {}
    cached = {t: r for t, r in ((t, cache.get(k)) for t, k in keys.items()) if r is not None}
    to_run = [p for p in scored if p.task_id not in cached]
    ran = dict(zip([p.task_id for p in to_run], _run_all(pool, [(p, ref_checks[p.task_id], None) for p in to_run],
                                                         limits, "references", progress)))
    for tid, result in ran.items():
        if tid in keys:
            cache.put(keys[tid], result)
    merged = {**cached, **ran}
    return {p.task_id: merged[p.task_id] for p in scored}, list(ran)


def _check_reference(problem: Problem, context, timeout: float) -> Checked:
    """The reference through the very path a sample takes (its completion form, extracted and made
    canonical), so that a sample holding the reference is the same text and shares its simulation."""
    checked = check_completion(problem.reference_completion(), header=problem.header,
                               mode=problem.completion_mode, module_name=problem.dut_module,
                               context=context, timeout=timeout)
    return check_design(problem.reference, context, timeout=timeout) if checked.no_code else checked


def _check_all(pool, samples, by_id, contexts, timeout: float, progress: bool) -> list[Checked]:
    """The verifier's check of every sample's completion (extraction, canonical text, policy)."""
    def check(sample):
        problem = by_id[sample["task_id"]]
        return check_completion(sample["completion"], header=problem.header, mode=problem.completion_mode,
                                module_name=problem.dut_module, context=contexts[problem.task_id],
                                timeout=timeout)
    results = pool.map(check, samples)
    if progress and samples:
        from tqdm import tqdm
        results = tqdm(results, total=len(samples), desc="checking samples", unit="sample", leave=False)
    return list(results)


def _plan(samples, checks, by_id, expected, known: set):
    """Map each sample to its verdict key; one simulation job per key neither ``known`` nor seen.

    Keys: (task, canonical design key) for designs to simulate; None for no code; the Checked itself
    for a design the verifier refused (its verdict needs no tool)."""
    designs, jobs, keys, seen = [], [], [], set(known)
    for s, checked in zip(samples, checks):
        problem = by_id[s["task_id"]]
        if checked.no_code or checked.rejected:
            designs.append((None if checked.no_code else checked, False))
            continue
        key = (problem.task_id, checked.key)
        designs.append((key, key in seen))
        if key not in seen:
            seen.add(key)
            keys.append(key)
            jobs.append((problem, checked, expected.get(problem.task_id)))
    return designs, jobs, keys


def _run_all(pool, jobs, limits, what: str, progress: bool) -> list:
    """Simulate ``(problem, checked design, expected_samples)`` jobs in ``pool``; results in job order."""
    def run(job):
        problem, checked, expected_samples = job
        return simulate(checked.text or "", problem.testbench, top=problem.top, dut_module=problem.dut_module,
                        limits=limits, expected_samples=expected_samples, checked=checked,
                        data_files=getattr(problem, "data_files", None))

    futures = [pool.submit(run, job) for job in jobs]
    try:
        if progress and futures:
            from tqdm import tqdm
            for _ in tqdm(as_completed(futures), total=len(futures), desc=f"simulating {what}",
                          unit="sim", leave=False):
                pass
        return [f.result() for f in futures]
    except BaseException:  # Ctrl-C or a failed job: do not sit through the queued simulations
        for f in futures:
            f.cancel()
        raise


def _result_row(sample: dict, key, verdicts: dict, duplicate: bool) -> dict:
    """The sample row plus its verdict (VerilogEval-style ``passed`` kept for old tools)."""
    row = dict(sample)
    if key is None:
        row.update(status=st.NO_CODE, passed=False, mismatches=None, checks=None, seconds=0.0,
                   log_tail="no Verilog code found in the completion")
        return row
    if isinstance(key, Checked):
        row.update(status=st.REJECTED, passed=False, mismatches=None, checks=None, seconds=0.0,
                   log_tail=key.reason()[-2000:])
        return row
    v = verdicts[key]
    row.update(status=v.status, passed=v.status == st.PASS, mismatches=v.mismatches, checks=v.checks,
               seconds=round(v.seconds, 4), log_tail=v.log_tail)
    if duplicate:
        row["deduplicated"] = True  # same canonical design as the reference or an earlier sample
    return row


def summarize_problems(problems: list[Problem], results: list[dict]) -> list[dict]:
    """Per problem: n samples, c passing, pass@1 and status counts (problem order kept)."""
    rows_by_task: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        rows_by_task[r["task_id"]].append(r)
    out = []
    for p in problems:
        rows = rows_by_task.get(p.task_id, [])
        n, c = len(rows), sum(1 for r in rows if r["status"] == st.PASS)
        out.append({"task_id": p.task_id, "n": n, "c": c, "pass@1": c / n if n else 0.0,
                    "statuses": dict(Counter(r["status"] for r in rows))})
    return out


def pass_metrics(per_problem: list[dict], ks) -> dict:
    """pass@k for every requested k <= n, with problems without samples counted as 0."""
    present = [(r["n"], r["c"]) for r in per_problem if r["n"] > 0]
    total = len(per_problem)
    means = mean_pass_at_k(present, ks)
    status_counts = Counter()
    for r in per_problem:
        status_counts.update(r["statuses"])
    ns = sorted({n for n, _ in present})
    return {
        "pass_at_k": {k: v * len(present) / total for k, v in means.items()} if total else {},
        "ks_requested": sorted(set(ks)),
        "ks_skipped": [k for k in sorted(set(ks)) if f"pass@{k}" not in means],
        "status_counts": {s: status_counts.get(s, 0) for s in st.STATUSES},
        "n": ns[0] if len(ns) == 1 else {"min": ns[0], "max": ns[-1]} if ns else 0,
    }
