"""`python -m harness experiment` (`make experiment`): the options of harness.experiment.arms (its module
docstring is the command's help), the run folder, the arms' jobs and the analysis; and
`python -m harness experiment greedy ARM_DIR ITERATION OUT`, the step of an arm's job that evaluates its
model greedily (run by the jobs, not by users).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from harness.commands.flags import Parser, add_config_flags, given, to_int
from harness.config import TrainConfig
from harness.experiment import analysis, arms
from harness.experiment.ablation import parallel_jobs, run_jobs, stages_done
from harness.experiment.config import ExperimentConfig, arm_runs, load_experiment, train_config
from harness.loop import stages
from harness.loop.loop import load_records, stage_dir
from harness.runs.folder import RunFolder, run_folder
from harness.sample.model_eval import resolve_model
from verilog_tools.errors import UserError


def main_greedy(argv: list[str]) -> int:
    """``python -m harness experiment greedy ARM_DIR ITERATION OUT`` (a step of an arm's job): the
    greedy n=1 held-out evaluation of the arm's model at ITERATION into OUT."""
    if len(argv) != 3 or not argv[1].isdigit():
        raise UserError("usage: python -m harness experiment greedy ARM_DIR ITERATION OUT")
    arm_dir, it, out = Path(argv[0]), int(argv[1]), Path(argv[2])
    if (out / "metrics.json").is_file():
        return 0
    config = json.loads((arm_dir / "manifest.json").read_text())["config"]
    tc = dataclasses.replace(TrainConfig(**config), eval_n=1, eval_temperature=0.0)
    if tc.torch_threads:  # as the arm's own stages run (harness.loop.loop.run_iterations)
        import torch
        torch.set_num_threads(tc.torch_threads)
    model = resolve_model(f"{arm_dir}:{it}")
    problems = stages.eval_problems(tc, load_records(RunFolder(arm_dir, "train"), "heldout"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with stage_dir(RunFolder(out.parent, "greedy"), out.name) as tmp:
        stages.eval_stage(tc, model.base, model.weights, problems, seed=tc.seed + 10_000, out=tmp)
    return 0


def parse_args(argv: list[str]) -> tuple[ExperimentConfig, argparse.Namespace]:
    """The experiment file's fields and two train fields of every arm as flags (`harness.commands.flags`);
    the ones given replace the file's."""
    parser = Parser(prog="python -m harness experiment", description=arms.__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment",
                        help="the experiment file (default harness/experiment/experiments/default.yaml)")
    names = add_config_flags(parser, ExperimentConfig, defaults=False, only=("preset", "config", "seeds", "scores"))
    train_names = add_config_flags(parser, TrainConfig, defaults=False, only=("iters", "limit"), help_for={
        "iters": "iterations of every arm (a train field)",
        "limit": "first N training instructions only (a smoke run; a train field)"})
    parser.add_argument("--jobs", type=to_int, default=0, help="arm runs at the same time (0 = one per core / "
                                                              "torch thread; 1 on a GPU preset); not part of the plan")
    parser.add_argument("--run", help="experiment folder name under --results-dir (resumes if it exists)")
    parser.add_argument("--results-dir", default="results", help="where run folders go")
    args = parser.parse_args(argv)
    if args.jobs < 0:
        raise UserError(f"--jobs={args.jobs} is invalid: must be >= 0 (0 = automatic)")
    return load_experiment(args.experiment, {**given(args, names), "train": given(args, train_names)}), args


def main_experiment(argv: list[str]) -> int:
    if argv[:1] == ["greedy"]:
        return main_greedy(argv[1:])
    cfg, args = parse_args(argv)
    arm_list = arm_runs(cfg)
    first = train_config(cfg, arm_list[0])   # a broken arm fails here, before any folder exists
    jobs = parallel_jobs(args.jobs, first, len(arm_list))
    workers = max(1, (os.cpu_count() or 1) // jobs)
    options = arms.folder_options(cfg, args.results_dir, args.run)
    with run_folder(args.results_dir, args.run, "experiment", **options) as run:
        plan = arms.build_jobs(cfg, run.path, workers)
        arms_dir = run.path / "arms"
        greedy_steps = [done for job in plan if job.name.startswith(arms.GREEDY_JOB) for _, done in job.steps]
        total = sum(arms.run_stages(train_config(cfg, a)) for a in arm_list) + len(greedy_steps)
        failed = run_jobs(plan, arms_dir, jobs, lambda: sum(stages_done(arms_dir / a.name) for a in arm_list)
                          + sum(done() for done in greedy_steps), total, "experiment stages")
        unfinished = [j.name for j in plan if not j.done()]
        if failed or unfinished:
            name = next(iter(failed), unfinished[0])
            waits = "the arm it evaluates did not finish" if name.startswith(arms.GREEDY_JOB) else "its warm start failed"
            why = f"failed (exit {failed[name]})" if name in failed else f"did not run ({waits})"
            raise UserError(f"experiment job {name} {why}; see {arms_dir / f'{name}.log'}, fix it and rerun "
                            f"the same command (RUN={run.path.name}) to resume")
        text = analysis.write_results(run, cfg, arm_list)
    print(text)
    print(f"experiment folder: {run.path}")
    return 0

