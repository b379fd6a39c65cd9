"""`python -m harness experiment` (`make experiment`): does iterating help? A pre-registered comparison.

Arms (default: ``iterative``, ``static`` and ``ce-only`` = alpha 0, the same data, steps and compute)
times scores (``paper``, ``equivalence``) times seeds, each a complete `harness train` run in
``<run>/arms/<arm>-<score>-s<seed>/`` on one fixed ``data_seed``. The experiment file (default
``harness/experiment/experiments/default.yaml``, read by `harness.experiment.config`) holds the arms, the seeds,
the train fields of every arm and the analysis plan with its primary endpoint; it is written to
``<run>/experiment.yaml`` (every arm's full train config to ``resolved_train_configs.json``) before
any arm starts, and a rerun of the same RUN with another plan or config is refused.

Arms that differ only in fields the warm start never reads (``mode``, ``alpha``, ``score``) share it:
the first arm of each seed trains iteration 0, and the others start from a copy of its data, base
model and iteration 0 (the same files they would compute; ``share_warm_start: false`` turns this
off). After training, each arm's model is also evaluated greedily (n=1) at iteration 0 and the last
(``greedy/<arm>/iter-NN/``, a secondary figure), in jobs queued after every arm's training. Every
evaluation of the experiment reads and keeps the held-out references' verdicts in
``<run>/cache/references/`` (tasks.evaluate.ReferenceCache; ITERTL_REFERENCE_CACHE, when set, names
another folder). Jobs run as separate processes, ``jobs`` at a
time (`harness.experiment.ablation.run_jobs`); a rerun after a kill resumes each at its first unfinished
stage.
The analysis (`harness.experiment.analysis`) writes experiment.json, experiment.md and the plots.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from harness.config import TrainConfig
from harness.experiment.ablation import Job, run_complete, run_finished
from harness.experiment.config import Arm, ExperimentConfig, arm_runs, resolved_configs, train_config
from harness.runs.folder import RunFolder, write_manifest
from tasks.evaluate import REFERENCE_CACHE_ENV
from verilog_tools.errors import UserError

# The name of an arm's greedy-evaluation job: this prefix, then the arm's name.
GREEDY_JOB = "greedy-"
# Fields the data, base-model and warm-start stages never read: arms differing only in these share them.
WARM_START_FREE = frozenset({"mode", "alpha", "score"})


def train_argv(cfg: ExperimentConfig, arm: Arm, arms_dir: Path, workers: int) -> list[str]:
    """The `harness train` command line of one arm (the same for a first run and a resume)."""
    argv = [sys.executable, "-m", "harness", "train", "--preset", cfg.preset, "--run", arm.name,
            "--results-dir", str(arms_dir), "--workers", str(workers)]
    if cfg.config:
        argv += ["--config", str(Path(cfg.config).resolve())]
    for name, value in arm.overrides.items():
        if name == "restart":
            argv += ["--restart"] if value else []
        elif name == "dry_run":
            raise UserError(f"arm {arm.arm}: dry_run cannot be an arm field; remove it from the experiment file")
        else:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def donors(cfg: ExperimentConfig, arms: list[Arm]) -> dict[str, str]:
    """Arm name -> the arm whose warm start it copies (itself when it trains its own)."""
    out, first = {}, {}
    for arm in arms:
        tc = train_config(cfg, arm).to_dict()
        key = json.dumps({k: v for k, v in tc.items() if k not in WARM_START_FREE}, sort_keys=True)
        out[arm.name] = first.setdefault(key, arm.name) if cfg.share_warm_start else arm.name
    return out


def shared_stages(tc: TrainConfig) -> list[str]:
    """The stages of `harness.loop.loop` before iteration 1 that a run of ``tc`` records (the shared ones)."""
    return [s for s, on in (("data", True), ("base-model", tc.model == "tiny"),
                            ("iter-00/train", tc.warmup_epochs > 0), ("iter-00/eval", bool(tc.eval_bench))) if on]


def run_stages(tc: TrainConfig) -> int:
    """How many stages a finished run of ``tc`` records: the shared ones, then sample, score and train in
    every iteration, and eval in each evaluated one (`TrainConfig.evaluated_iterations`)."""
    evals = sum(1 for it in tc.evaluated_iterations() if it > 0) if tc.eval_bench else 0
    return len(shared_stages(tc)) + 3 * tc.iters + evals


def warm_start_ready(arm_dir: Path, stages: list[str]) -> bool:
    try:
        done = json.loads((arm_dir / "state.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return False
    return all(done.get(s, {}).get("done") for s in stages)


def fork_warm_start(cfg: ExperimentConfig, arm: Arm, donor_dir: Path, arm_dir: Path, workers: int) -> None:
    """Start ``arm_dir`` as a train run whose shared stages are copies of ``donor_dir``'s.

    Its manifest is the arm's own config (what `harness train` checks on resume) plus ``forked_from``;
    everything is written into a hidden folder first and renamed, so a kill leaves no half arm.
    """
    if arm_dir.exists():
        return
    tmp = arm_dir.with_name(f".{arm_dir.name}.fork")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for sub in ("data", "base-model", "iter-00"):
        if (donor_dir / sub).is_dir():
            shutil.copytree(donor_dir / sub, tmp / sub, ignore=shutil.ignore_patterns("*.tmp"))
    tc = train_config(cfg, arm, workers)
    shared = shared_stages(tc)
    done = json.loads((donor_dir / "state.json").read_text())["stages"]
    (tmp / "state.json").write_text(json.dumps({"kind": "train", "stages": {s: done[s] for s in shared}}, indent=2))
    (tmp / ".incomplete").touch()
    staged = RunFolder(tmp, "train")  # private until renamed: no lock needed
    write_manifest(staged, tc.to_dict(), seeds={"seed": tc.seed}, argv=["train (forked by experiment)"])
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["forked_from"] = {"run": donor_dir.name, "stages": shared}
    staged.write_json("manifest.json", manifest)
    tmp.rename(arm_dir)  # the arm appears whole: its stages, state and manifest at once


def greedy_dir(run_dir: Path, arm_name: str, it: int) -> Path:
    return run_dir / "greedy" / arm_name / f"iter-{it:02d}"


def greedy_argv(arm_dir: Path, it: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "experiment", "greedy", str(arm_dir), str(it), str(out)]


def build_jobs(cfg: ExperimentConfig, run_dir: Path, workers: int) -> list[Job]:
    """One job per arm run (train), the donors first: each is the longest job and the others of its seed
    wait on it (exp-s23, launched in arm order, started its last donor 42 minutes in, and ended on that
    seed's arms). Then one job per arm for its greedy evaluations (the last iteration, and 0 for a donor),
    ready once the arm's run is complete: queued after every train job, these short jobs fill the free core
    while the last arms train (exp-s24, whose greedy steps ended each arm's job, had one core idle for its
    last 4.2 minutes)."""
    arms_dir = run_dir / "arms"
    # The arms evaluate one held-out set again and again: its reference verdicts are simulated once
    # (tasks.evaluate.ReferenceCache), unless the user's own ITERTL_REFERENCE_CACHE names another folder.
    env = {REFERENCE_CACHE_ENV: os.environ.get(REFERENCE_CACHE_ENV) or str(run_dir / "cache" / "references")}
    arms = arm_runs(cfg)
    donor_of = donors(cfg, arms)
    configs = {a.name: train_config(cfg, a) for a in arms}
    trains, greedies = [], []
    for arm in arms:
        arm_dir, donor = arms_dir / arm.name, donor_of[arm.name]
        forked = donor != arm.name
        trains.append(Job(arm.name, [(train_argv(cfg, arm, arms_dir, workers), lambda d=arm_dir: run_complete(d))],
                          ready=(lambda d=arms_dir / donor, a=arm_dir, s=shared_stages(configs[donor]):
                                 a.exists() or warm_start_ready(d, s)) if forked else None,
                          prepare=(lambda a=arm, d=arms_dir / donor, t=arm_dir:
                                   fork_warm_start(cfg, a, d, t, workers)) if forked else None, env=env))
        if cfg.greedy:
            its = dict.fromkeys(([0] if not forked else []) + [configs[arm.name].iters])
            greedies.append(Job(f"{GREEDY_JOB}{arm.name}", [
                (greedy_argv(arm_dir, it, greedy_dir(run_dir, arm.name, it)),
                 lambda p=greedy_dir(run_dir, arm.name, it): (p / "metrics.json").is_file()) for it in its],
                ready=lambda d=arm_dir: run_finished(d), env=env))
    return sorted(trains, key=lambda job: job.ready is not None) + greedies  # stable: arm order within each kind


RESOLVED_FILE = "resolved_train_configs.json"


def changed_fields(cfg: ExperimentConfig, run_dir: Path) -> list[str]:
    """What differs from the experiment registered in ``run_dir``: top-level experiment fields (the
    plan is one), then arm train fields. A train field the code added since then counts as its default,
    as `harness train` resumes (harness.commands.train)."""
    try:
        old = yaml.safe_load((run_dir / "experiment.yaml").read_text())
        old_resolved = json.loads((run_dir / RESOLVED_FILE).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        raise UserError(f"{run_dir} exists but holds no readable experiment.yaml and {RESOLVED_FILE}; "
                        f"choose another RUN") from None
    changed = [k for k, v in asdict(cfg).items() if old.get(k) != v]
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, new in resolved_configs(cfg).items():
        before = old_resolved.get(name, {})
        changed += [f"{name}.{k}" for k, v in new.items() if before.get(k, defaults.get(k)) != v][:1]
    return changed


def folder_options(cfg: ExperimentConfig, results_dir: str, name: str | None) -> dict:
    """How `run_folder` opens an experiment: a new folder with its plan written first, or the same RUN
    again with the same plan."""
    path = Path(results_dir) / name if name else None
    if path is not None and path.exists():
        changed = changed_fields(cfg, path)
        if changed:
            raise UserError(f"RUN={path.name} was pre-registered with another plan or config (changed: "
                            f"{', '.join(changed[:5])}); rerun with the original settings or use a new RUN name")
    resolved = resolved_configs(cfg)  # a broken arm fails here, before the folder exists
    return {"config": asdict(cfg), "manifest": lambda run: register(run, cfg, resolved)}


def register(run: RunFolder, cfg: ExperimentConfig, resolved: dict) -> None:
    """Write the pre-registration (the plan and every arm's train config), then the manifest."""
    header = (f"# Pre-registered before any arm ran. Primary endpoint: last-iteration {cfg.plan.metric} of "
              f"{cfg.plan.treatment} minus {cfg.plan.control},\n# paired on seeds and problems, per score. "
              f"Every arm's full train config: {RESOLVED_FILE}.\n# A rerun of RUN={run.path.name} with another "
              f"plan or config is refused.\n")
    run.write_json(RESOLVED_FILE, resolved)
    run.write_text("experiment.yaml", header + yaml.safe_dump(asdict(cfg), sort_keys=False))
    write_manifest(run, asdict(cfg), seeds={"seeds": cfg.seeds, "data_seed": cfg.data_seed},
                   argv=["experiment", *sys.argv[2:]])
