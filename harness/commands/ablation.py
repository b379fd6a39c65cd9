"""`python -m harness ablation` (`make ablation`): the options of harness.experiment.ablation (its
module docstring is the command's help), the run folder, the four arms, the table."""
from __future__ import annotations

import argparse

from harness.commands.flags import Parser, add_config_flags, given
from harness.config import load_config
from harness.experiment import ablation
from harness.experiment.ablation import AblationConfig
from harness.runs.folder import run_folder
from verilog_tools.errors import UserError


def main_ablation(argv: list[str]) -> int:
    parser = Parser(prog="python -m harness ablation", description=ablation.__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    names = add_config_flags(parser, AblationConfig, defaults=False)
    parser.add_argument("--run", help="ablation folder name under --results-dir (resumes if it exists)")
    parser.add_argument("--results-dir", default="results", help="where run folders go")
    args = parser.parse_args(argv)
    cfg = AblationConfig(**given(args, names))
    train_cfg = load_config(cfg.preset, cfg.config, cfg.overrides())  # a broken config fails here, not in 4 arms
    jobs = ablation.auto_jobs(cfg, train_cfg)
    with run_folder(args.results_dir, args.run, "ablation", **ablation.folder_options(cfg)) as run:
        failed = ablation.run_arms(cfg, run.path / "arms", jobs, total_stages=4 + 4 * train_cfg.iters)
        if failed:
            name, code = next(iter(failed.items()))
            raise UserError(f"ablation arm {name} failed (exit {code}); see {run.path / 'arms' / f'{name}.log'}, "
                            f"fix it and rerun the same command (RUN={run.path.name}) to resume")
        table = ablation.write_results(run, cfg, jobs)
    print(table)
    print(f"ablation folder: {run.path}")
    return 0
