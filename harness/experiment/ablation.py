"""`python -m harness ablation` (`make ablation`): the paper's first experiments on the current preset.

Four arms, {iterative, static} x {filter on, off}, each a complete `python -m harness train` run with
the same preset, seed, instructions per iteration, K and training steps, so they differ only in where
the candidates come from (the current model or the warm start) and in the filter (multi-module and
non-compiling references dropped, multi-module candidates scored -1; off: neither). The arms run as
separate processes, ``jobs`` at a time, in ``<run>/arms/<arm>/`` with their logs beside them.

When every arm has finished, ``ablation.md`` / ``ablation.json`` hold held-out pass@1 per iteration
for each arm, and the comparison report (``compare.md``, ``compare_pass_at_1.png``) plots it. A rerun
with the same RUN resumes unfinished arms (each resumes at its first unfinished stage) and rebuilds
the table; an arm that fails stops the ablation with its log named, and the folder stays incomplete.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.reports.compare import compare_runs
from harness.reports.compare import pass_at_1_table as compare_pass_at_1_table
from harness.reports.data import load_run
from harness.reports.mdtable import md_table
from harness.reports.report import try_build_report
from harness.runs.folder import RunFolder, write_manifest
from verilog_tools.config import option as _f
from verilog_tools.errors import UserError

ARMS = (("iterative", True), ("static", True), ("iterative", False), ("static", False))


@dataclass
class AblationConfig:
    preset: str = _f("tiny-cpu", "preset of every arm (harness/presets/*.yaml)")
    config: str | None = _f(None, "a YAML of config fields applied to every arm after the preset")
    iters: int | None = _f(None, "iterations per arm (default: the preset's)")
    seed: int | None = _f(None, "seed of every arm (default: the preset's)")
    data: str | None = _f(None, "training data of every arm (default: the preset's)")
    eval_bench: str | None = _f(None, "held-out benchmark of every arm (default: the preset's)")
    limit: int | None = _f(None, "first N training instructions only (a smoke run)")
    jobs: int = _f(0, "arms run at the same time (0 = one per core / torch thread, at most 4; 1 on a GPU preset)")

    def __post_init__(self) -> None:
        if self.jobs < 0:
            raise UserError(f"config field jobs={self.jobs} is invalid: must be >= 0 (0 = automatic)")

    def overrides(self) -> dict:
        return {k: v for k, v in (("iters", self.iters), ("seed", self.seed), ("data", self.data),
                                  ("eval_bench", self.eval_bench), ("limit", self.limit)) if v is not None}


def arm_name(mode: str, filter_on: bool) -> str:
    return f"{mode}-filter-{'on' if filter_on else 'off'}"


def arm_label(mode: str, filter_on: bool) -> str:
    return f"{mode}, filter {'on' if filter_on else 'off'}"


def arm_argv(cfg: AblationConfig, arms_dir: Path, mode: str, filter_on: bool, workers: int) -> list[str]:
    """The `harness train` command line of one arm (the same for a first run and a resume)."""
    argv = [sys.executable, "-m", "harness", "train", "--preset", cfg.preset, "--run", arm_name(mode, filter_on),
            "--results-dir", str(arms_dir), "--mode", mode, "--filter", "1" if filter_on else "0",
            "--workers", str(workers)]
    if cfg.config:
        argv += ["--config", str(Path(cfg.config).resolve())]
    for name, value in cfg.overrides().items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def auto_jobs(cfg: AblationConfig, train_cfg) -> int:
    return parallel_jobs(cfg.jobs, train_cfg, len(ARMS))


def parallel_jobs(requested: int, train_cfg, most: int) -> int:
    """Runs at the same time: ``requested`` (at most ``most``), or 0 = one per core at the preset's
    torch threads (1 on a GPU preset)."""
    if requested:
        return min(requested, most)
    if train_cfg.requires_gpu:
        return 1
    cores = os.cpu_count() or 1
    return max(1, min(most, cores // max(1, train_cfg.torch_threads or cores)))


def stages_done(arm_dir: Path) -> int:
    try:
        return sum(1 for s in json.loads((arm_dir / "state.json").read_text())["stages"].values() if s.get("done"))
    except (OSError, ValueError, KeyError):
        return 0


@dataclass
class Job:
    """One resumable unit of work: command lines run one after another, each skipped once done.

    The job starts once ``ready()`` is true (None: at once); ``prepare`` runs in this process just
    before its first step is launched (a cheap file operation, such as seeding a run folder).
    """
    name: str
    steps: list[tuple[list[str], Callable[[], bool]]]   # (argv, is this step's output complete?)
    ready: Callable[[], bool] | None = None
    prepare: Callable[[], None] | None = None
    env: dict[str, str] = field(default_factory=dict)   # set in every step's environment

    def done(self) -> bool:
        return all(is_done() for _, is_done in self.steps)


def _launch(job: Job, logs_dir: Path) -> tuple[int, subprocess.Popen] | None:
    """Start the job's first unfinished step in its own process group, output appended to its log;
    returns (step index, process), None when every step is done."""
    from tqdm import tqdm

    index = next((i for i, (_, is_done) in enumerate(job.steps) if not is_done()), None)
    if index is None:
        return None
    with open(logs_dir / f"{job.name}.log", "a", encoding="utf-8") as log:
        proc = subprocess.Popen(job.steps[index][0], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint,
                                env={**os.environ, **job.env} if job.env else None)
    tqdm.write(f"started {job.name}, step {index + 1}/{len(job.steps)} (log: {logs_dir / f'{job.name}.log'})")
    return index, proc


def _default_sigint() -> None:
    """In a job's process before it runs: SIGINT at its default, so that `_stop` reaches a job whose
    driver was started with SIGINT ignored (``nohup make experiment &``: an ignored signal stays ignored
    across exec, and a job would then sit out the 60 s grace before SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:  # each job is its own process group: stop it whole
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def run_jobs(jobs: list[Job], logs_dir: Path, at_once: int, progress: Callable[[], int], total: int,
             desc: str) -> dict[str, int]:
    """Run the unfinished jobs, ``at_once`` at a time, each once it is ready.

    Returns the exit code of every job that failed; a job still not ready when nothing else runs (it
    waits on a failed one) is left unstarted. An interrupt (Ctrl-C, or SIGTERM as from `kill`) stops
    every running job's process group and is raised as KeyboardInterrupt.
    """
    from tqdm import tqdm

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    logs_dir.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not j.done()]
    running: dict[str, tuple[Job, int, subprocess.Popen]] = {}
    failed: dict[str, int] = {}
    bar = tqdm(total=total, desc=desc, unit="stage")
    try:
        while todo or running:
            for job in [j for j in todo if j.ready is None or j.ready()][:max(0, at_once - len(running))]:
                todo.remove(job)
                if job.prepare:
                    job.prepare()
                _next_step(job, None, logs_dir, running, failed)
            if not running and todo and not any(j.ready is None or j.ready() for j in todo):
                break  # what is left waits on a failed job
            time.sleep(2)
            for name, (job, index, proc) in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    _next_step(job, (index, proc.returncode), logs_dir, running, failed)
            bar.n = progress()
            bar.refresh()
    except BaseException:
        _stop([proc for _, _, proc in running.values()])
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    return failed


def _next_step(job: Job, ended: tuple[int, int] | None, logs_dir: Path, running: dict, failed: dict) -> None:
    """After step ``ended`` = (index, exit code) of ``job`` (None: not started yet), launch its next
    step, or record the job as failed. A step that exits 0 without its output fails (-1)."""
    from tqdm import tqdm

    if ended is not None and (ended[1] != 0 or not job.steps[ended[0]][1]()):
        failed[job.name] = ended[1] or -1
        tqdm.write(f"{job.name} FAILED (exit {ended[1]}{'' if ended[1] else ', output incomplete'})")
        return
    launched = _launch(job, logs_dir)
    if launched is None:
        tqdm.write(f"{job.name} finished")
    else:
        running[job.name] = (job, *launched)


def run_complete(path: Path) -> bool:
    """A run folder that exists and has no ``.incomplete`` marker."""
    return path.is_dir() and not (path / ".incomplete").exists()


def run_finished(path: Path) -> bool:
    """`run_complete`, and its manifest stamped ``finished``: what a process watching the folder from
    outside may rely on (a run folder exists for a moment before its ``.incomplete`` marker does)."""
    try:
        return run_complete(path) and bool(json.loads((path / "manifest.json").read_text()).get("finished"))
    except (OSError, ValueError, AttributeError):
        return False


def run_arms(cfg: AblationConfig, arms_dir: Path, jobs: int, total_stages: int) -> dict[str, int]:
    """Run the unfinished arms, ``jobs`` at a time; returns the exit code of each failed arm."""
    workers = max(1, (os.cpu_count() or 1) // jobs)
    plan = [Job(arm_name(m, f), [(arm_argv(cfg, arms_dir, m, f, workers),
                                  lambda d=arms_dir / arm_name(m, f): run_complete(d))]) for m, f in ARMS]
    return run_jobs(plan, arms_dir, jobs, lambda: sum(stages_done(arms_dir / j.name) for j in plan),
                    total_stages * len(ARMS), "ablation stages")


def pass_at_1_table(arms_dir: Path) -> tuple[list[dict], str]:
    """Rows {iteration, <arm label>: pass@1} from each arm's iteration rows (`harness.reports.data.load_run`,
    the rows every report reads), and their Markdown tables: per iteration (`compare.pass_at_1_table`),
    then each arm's last, best and change from iteration 0."""
    labels = [arm_label(mode, filter_on) for mode, filter_on in ARMS]
    runs = [load_run(arms_dir / arm_name(mode, filter_on)) for mode, filter_on in ARMS]
    series = {label: {r["iteration"]: r.get("pass@1") for r in run.rows} for label, run in zip(labels, runs)}
    iterations = sorted({i for s in series.values() for i in s})
    rows = [{"iteration": i, **{label: s.get(i) for label, s in series.items()}} for i in iterations]
    summary = []
    for label, s in series.items():
        last = s.get(iterations[-1])
        change = None if last is None or s.get(0) is None else f"{last - s[0]:+.3f}"
        summary.append([label, last, max((v for v in s.values() if v is not None), default=None), change])
    header = ["arm", "pass@1 at the last iteration", "best pass@1", "change from iteration 0"]
    return rows, compare_pass_at_1_table(runs, labels) + "\n\n" + md_table(header, summary)


def wall_minutes(run_dirs: list[Path], later_outputs: list[Path] = ()) -> float | None:
    """Minutes from the first run's start to the last run's finish (from their manifests), or to the
    last write of a file of ``later_outputs`` (work that ran after the runs) when that is later."""
    from datetime import datetime, timezone

    times = []
    for run_dir in run_dirs:
        try:
            m = json.loads((run_dir / "manifest.json").read_text())
            times.append((datetime.strptime(m["started"], "%Y-%m-%dT%H:%M:%S%z"),
                          datetime.strptime(m["finished"], "%Y-%m-%dT%H:%M:%S%z")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
    ends = [f for _, f in times] + [datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)
                                    for p in later_outputs if p.is_file()]
    return (max(ends) - min(s for s, _ in times)).total_seconds() / 60


def write_results(run: RunFolder, cfg: AblationConfig, jobs: int) -> str:
    arms_dir = run.path / "arms"
    for mode, filter_on in ARMS:  # arms made by an older version, or whose own report failed
        if not (arms_dir / arm_name(mode, filter_on) / "report.md").exists():
            try_build_report(arms_dir / arm_name(mode, filter_on))
    rows, table = pass_at_1_table(arms_dir)
    compare_runs([arms_dir / arm_name(m, f) for m, f in ARMS], run.path,
                 labels=[arm_label(m, f) for m, f in ARMS], title="Ablation: held-out pass@1 per iteration")
    text = (f"# Ablation: {{iterative, static}} x {{filter on, off}} (preset {cfg.preset})\n\n"
            f"Held-out pass@1 per iteration; every arm has the same seed, data order and compute. "
            f"Arms run {jobs} at a time; first start to last finish: {minutes(wall_minutes([arms_dir / arm_name(m, f) for m, f in ARMS]))}."
            f"\n\n{table}\n\n"
            f"![pass@1 per iteration](compare_pass_at_1.png)\n\nDetails of each arm: compare.md and arms/<arm>/report.md.\n")
    run.write_text("ablation.md", text)
    run.write_json("ablation.json", {"config": asdict(cfg), "rows": rows,
                                     "arms": {arm_label(m, f): str(Path("arms") / arm_name(m, f)) for m, f in ARMS}})
    return table


def minutes(value: float | None) -> str:
    return "unknown (an arm's manifest lacks its times)" if value is None else f"{value:.1f} min"


def folder_options(cfg: AblationConfig) -> dict:
    """How `run_folder` opens an ablation: a new folder, or the same RUN again with the same config."""
    return {"config": asdict(cfg),
            "manifest": lambda run: write_manifest(run, asdict(cfg), seeds={"seed": cfg.seed},
                                                   argv=["ablation", *sys.argv[2:]])}
