"""Read a finished or unfinished run folder into plain rows for reports (`harness.reports.report`, `harness.reports.compare`).

Two kinds of folder are understood: a train run (``iter-NN/`` folders, see `harness.loop.loop`) and an eval
run (``metrics.json`` and ``results.jsonl`` at the top level, see `harness.commands.eval`). Nothing here
writes; every file is optional, so an unfinished run gives whatever iterations exist.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.runs.layout import eval_row, iter_dir, iteration_row, read_json
from tasks.jsonl import read_jsonl
from verilog_tools.errors import UserError

ITER_DIR = re.compile(r"^iter-(\d+)$")
# VerilogEval (HDLBits) task ids grouped by the kind of circuit, first matching rule wins.
VERILOG_EVAL_GROUPS = (
    ("fsm", r"fsm|lemmings"),
    ("bugs", r"^bugs_"),
    ("kmap / truth table / waveform", r"^(kmap|truthtable|circuit)"),
    ("exam problems", r"^(review2015|ece241|m2014|mt2015|20\d\d_)"),
    ("sequential", r"dff|^count|shift|rotate|lfsr|edge|timer|rule\d|conway|gshare"),
)


@dataclass
class RunData:
    """What a report needs from one run folder."""

    path: Path
    kind: str                           # "train" or "eval"
    manifest: dict
    config: dict
    rows: list[dict]                    # train: one per iteration found; eval: one row, iteration None
    eval_dirs: dict = field(default_factory=dict)   # iteration (None for eval runs) -> folder
    complete: bool = True

    def eval_metrics(self, it) -> dict:
        return read_json(self.eval_dirs[it] / "metrics.json") if it in self.eval_dirs else {}


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("manifest.json", "metrics.json", "iter-00"))


def require_run_folder(path: str | Path) -> Path:
    path = Path(path)
    if not is_run_folder(path):
        raise UserError(f"{path} is not a run folder (no manifest.json, metrics.json or iter-00/); "
                        f"pass a folder made by make train or make eval")
    return path


def load_run(path: str | Path) -> RunData:
    """Every metric of the run at ``path`` that its files hold (`UserError` if it is no run folder)."""
    path = require_run_folder(path)
    manifest = read_json(path / "manifest.json")
    config = manifest.get("config") or read_json(path / "summary.json").get("config") or {}
    complete = not (path / ".incomplete").exists()
    iters = sorted(int(m.group(1)) for p in path.iterdir() if (m := ITER_DIR.match(p.name)) and p.is_dir())
    if manifest.get("kind") == "eval" or (not iters and (path / "metrics.json").exists()):
        row = {"iteration": None, **eval_row(path)}
        return RunData(path, "eval", manifest, config, [row], {None: path}, complete)
    rows = [iteration_row(path / iter_dir(it), it) for it in iters]
    evals = {it: path / iter_dir(it) / "eval" for it in iters
             if (path / iter_dir(it) / "eval" / "metrics.json").exists()}
    return RunData(path, "train", manifest, config, rows, evals, complete)


def pass_keys(rows: list[dict]) -> list[str]:
    """The pass@k keys present in any row, by k."""
    keys = {k for r in rows for k in r if k.startswith("pass@")}
    return sorted(keys, key=lambda k: int(k.split("@")[1]))


def train_history(folder: Path) -> list[dict]:
    """The logging steps of one iteration's training (the trainer's closing summary row left out)."""
    return [h for h in read_json(folder / "train_log.json").get("history", [])
            if "ce_loss" in h and "train_runtime" not in h]


def missing_iterations(run: RunData) -> dict[str, list[int]]:
    """Iterations the config plans that lack held-out results or training (train runs only)."""
    if run.kind != "train" or run.config.get("iters") is None:
        return {}
    found = {r["iteration"] for r in run.rows}
    planned = range(int(run.config["iters"]) + 1)
    out = {"no folder": [i for i in planned if i not in found],
           "no held-out eval": [i for i in planned if i in found and i not in run.eval_dirs]}
    if "eval_bench" in run.config and not run.config["eval_bench"]:
        out.pop("no held-out eval")  # the run was configured without held-out evaluation
    return {k: v for k, v in out.items() if v}


def synthetic_families(run_path: Path) -> dict[str, str]:
    """Record id -> synthetic family for a train run's held-out split (ids there are content hashes).

    The synthetic generator is deterministic, so the run's own data settings regenerate the tasks.
    """
    heldout = run_path / "data" / "heldout.jsonl"
    settings = read_json(run_path / "data" / "data_summary.json").get("config", {})
    if not heldout.exists() or settings.get("data", "synthetic") != "synthetic":
        return {}
    from tasks.synthetic import generate_tasks, to_records

    _, problems = generate_tasks(int(settings.get("seed", 0)), int(settings.get("synthetic_train", 2000)),
                                 int(settings.get("synthetic_heldout", 200)))
    return {rec.id: p.meta["family"] for rec, p in zip(to_records(problems), problems)}


def category_of(task_id: str, benchmark: str | None, families: dict[str, str] | None = None) -> str:
    """The problem category used in failure breakdowns: the synthetic family, a VerilogEval group
    (VERILOG_EVAL_GROUPS, else "combinational"), or "all" for any other benchmark."""
    if families and task_id in families:
        return families[task_id]
    m = re.match(r"^syn-(.+)-h?\d+$", task_id)
    if m:
        return m.group(1)
    if (benchmark or "").startswith("verilog-eval"):
        name = re.sub(r"^Prob\d+_", "", task_id)  # VerilogEval v2 ids
        return next((group for group, pattern in VERILOG_EVAL_GROUPS if re.search(pattern, name)),
                    "combinational")
    return "all"


def failure_breakdown(results: Path, benchmark: str | None,
                      families: dict[str, str] | None = None) -> dict[str, Counter]:
    """Category -> Counter of sample statuses, from an eval folder's results.jsonl."""
    out: dict[str, Counter] = {}
    for row in read_jsonl(results):
        out.setdefault(category_of(row["task_id"], benchmark, families), Counter())[row["status"]] += 1
    return dict(sorted(out.items()))


def headline_evals(run: RunData) -> list:
    """The evaluations a report details: the eval run's own, or a train run's first and last."""
    if run.kind == "eval":
        return [None] if None in run.eval_dirs else []
    return sorted({min(run.eval_dirs), max(run.eval_dirs)}) if run.eval_dirs else []


def benchmark_of(run: RunData) -> str | None:
    """The held-out benchmark id of the run (eval runs: the one they scored)."""
    for it in sorted(run.eval_dirs, key=lambda i: -1 if i is None else i):
        bench = run.eval_metrics(it).get("benchmark")
        if bench:
            return bench
    return run.config.get("eval_bench") or run.config.get("bench")
