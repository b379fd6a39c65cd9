"""`python -m harness train`: run (or resume, or extend) an ITERTL training run.

Rerunning the same command with the same ``--run`` resumes at the first unfinished stage; a larger
``--iters`` on a finished run extends it. Any other change of configuration on an existing run is
refused, so one folder always describes one experiment.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from harness.commands.flags import Parser, add_config_flags, given
from harness.config import BEFORE_THE_FIELD, TrainConfig, load_config
from harness.loop import launch, loop
from harness.loop.compute import describe_plan
from harness.reports.report import try_build_report
from harness.runs import folder as runs
from harness.runs.folder import RunFolder, run_folder, write_manifest
from harness.sample import vllm_sampler
from verilog_tools.errors import UserError

RESUMABLE_CHANGES = {"iters", "workers", "dry_run", "gpu_type", "measured_from"}


def parse_args(argv: list[str]) -> tuple[TrainConfig, argparse.Namespace]:
    """Every TrainConfig field is a flag (`harness.commands.flags`); the ones given override the preset and the
    ``--config`` file."""
    parser = Parser(prog="python -m harness train", description=__doc__)
    parser.add_argument("--config", help="a YAML file of config fields, applied after the preset")
    parser.add_argument("--run", help="run folder name under --results-dir (resumes if it exists)")
    parser.add_argument("--results-dir", default="results", help="where run folders go")
    names = add_config_flags(parser, TrainConfig, defaults=False)
    args = parser.parse_args(argv)
    overrides = given(args, names)
    preset = overrides.pop("preset", None) or default_preset()
    return load_config(preset, args.config, overrides), args


def default_preset() -> str:
    return "tiny-cpu"


def check_device(cfg: TrainConfig) -> None:
    if not cfg.requires_gpu:
        return
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        raise UserError(f"preset {cfg.preset} needs a CUDA GPU (4-bit {cfg.model}); none is visible here. "
                        f"Use DRY_RUN=1 to inspect the plan, or PRESET=tiny-cpu on a CPU")


def check_scaling(cfg: TrainConfig) -> None:
    """Before the run spends any time: SAMPLER=vllm and GPUS=N can run here (one-line UserError if not)."""
    if cfg.sampler == "vllm":
        vllm_sampler.check_available(cfg.tensor_parallel_size)
    launch.check_gpus(cfg)


def run_seeds(cfg: TrainConfig) -> dict:
    """The manifest's seeds: data_seed makes the data, seed everything else."""
    return {"seed": cfg.seed, "data_seed": cfg.data_seed}


def folder_options(cfg: TrainConfig, args: argparse.Namespace) -> dict:
    """How `run_folder` opens this run: a new folder, or the existing one of ``--run`` if its config
    matches (resume/extend: ITERS may only grow)."""
    path = Path(args.results_dir) / args.run if args.run else None
    manifest = path / "manifest.json" if path else None
    old = json.loads(manifest.read_text()).get("config", {}) if manifest and manifest.is_file() else {}
    if old.get("iters", 0) > cfg.iters:
        raise UserError(f"run {path} already has iters={old['iters']}; ITERS can only grow")
    # A field added to TrainConfig after the run started counts as what the code did before it existed
    # (BEFORE_THE_FIELD, else its default); before data_seed existed, seed made the data.
    defaults = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **BEFORE_THE_FIELD}
    defaults["data_seed"] = old.get("seed", defaults["seed"])
    return {"config": cfg.to_dict(), "defaults": defaults, "may_change": RESUMABLE_CHANGES,
            "manifest": lambda run: write_manifest(run, cfg.to_dict(), seeds=run_seeds(cfg),
                                                   argv=["train", *sys.argv[2:]])}


def open_run(cfg: TrainConfig, args: argparse.Namespace) -> RunFolder:
    """The run folder `main_train` works in, opened (and locked) without its lifecycle."""
    return runs.open_run(args.results_dir, args.run, "train", **folder_options(cfg, args))


def main_train(argv: list[str]) -> int:
    cfg, args = parse_args(argv)
    if cfg.dry_run:
        print(describe_plan(cfg, str(Path(args.results_dir) / (args.run or "<RUN>"))))
        return 0
    check_device(cfg)
    check_scaling(cfg)
    with run_folder(args.results_dir, args.run, "train", **folder_options(cfg, args)) as run:
        summary = loop.run_iterations(run, cfg)
        data = json.loads((run.path / "manifest.json").read_text())
        data["config"] = cfg.to_dict()
        run.write_json("manifest.json", data)
    try_build_report(run.path)  # after finish, so the report sees a finished run; never raises
    print(loop.format_table(summary["iterations"]))
    print(f"run folder: {run.path}")
    return 0
