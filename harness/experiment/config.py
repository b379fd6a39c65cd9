"""The experiment file of `make experiment` (`harness.experiment.arms`): arms, seeds, scores, train fields
and the pre-registered analysis plan, as checked dataclasses, and the arm runs they expand into.

The file (default ``harness/experiment/experiments/default.yaml``) is YAML; every field is checked with a one-line
error naming it. Each arm run's train config is the preset, then the ``CONFIG=`` file, then the
experiment's ``train:`` fields, then the arm's own fields, then its score and seed
(`harness.config.load_config`), so any TrainConfig field can make an arm.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.config import SCORES, TrainConfig, load_config
from verilog_tools.config import option as _f
from verilog_tools.errors import UserError

DEFAULT_FILE = Path(__file__).with_name("experiments") / "default.yaml"


def _as(section: str, name: str, value, kind):
    """``value`` as ``kind`` (list: from a list; dict: from a mapping or None), else a one-line UserError."""
    if kind is list and isinstance(value, (list, tuple)):
        return list(value)
    if kind is dict and (value is None or isinstance(value, dict)):
        return dict(value or {})
    if (kind is bool and isinstance(value, bool)) or (kind in (int, float, str) and not isinstance(value, (bool, list, dict))):
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    raise UserError(f"{section} field {name}={value!r} has the wrong type: expected {kind.__name__}")


@dataclass
class Plan:
    treatment: str = _f("iterative", "primary endpoint: the arm expected to be better")
    control: str = _f("static", "primary endpoint: the arm it is compared with")
    metric: str = _f("pass@1", "primary endpoint: unbiased pass@1 from eval_n samples at eval_temperature")
    iteration: str = _f("last", "primary endpoint: the iteration compared ('last')")
    paired_on: list = _f(("seed", "problem"), "the difference is taken per seed and problem, then resampled")
    confidence: float = _f(0.95, "confidence level of every interval")
    bootstrap_resamples: int = _f(10_000, "resamples of the paired bootstrap over seeds and problems")
    bootstrap_seed: int = _f(14, "RNG seed of the bootstrap (the analysis is reproducible digit for digit)")
    reference_effect: float = _f(0.05, "the effect size to rule in or out (the paper's +16.9% relative, here "
                                        "about +0.05 absolute); the verdict's seeds estimate aims at half of it")
    secondary: list = _f(("every pair of arms at the last iteration", "each arm's change from iteration 0",
                          "greedy (n=1) pass@1 at iteration 0 and the last"),
                         "secondary analyses, reported with intervals but not as the result")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = list if isinstance(f.default, tuple) else type(f.default)
            setattr(self, f.name, _as("experiment plan", f.name, getattr(self, f.name), kind))

    def check(self, arms: dict) -> None:
        rules = [("treatment", self.treatment in arms, f"one of the arms {sorted(arms)}"),
                 ("control", self.control in arms and self.control != self.treatment,
                  f"one of the arms {sorted(arms)} other than the treatment"),
                 ("metric", self.metric == "pass@1", "'pass@1'"), ("iteration", self.iteration == "last", "'last'"),
                 ("confidence", 0 < self.confidence < 1, "in (0, 1)"),
                 ("bootstrap_resamples", self.bootstrap_resamples >= 100, ">= 100"),
                 ("reference_effect", self.reference_effect > 0, "> 0")]
        for name, ok, allowed in rules:
            if not ok:
                raise UserError(f"experiment plan field {name}={getattr(self, name)!r} is invalid: must be {allowed}")


@dataclass
class ExperimentConfig:
    preset: str = _f("tiny-cpu", "preset of every arm (harness/presets/*.yaml)")
    config: str | None = _f(None, "a YAML of train config fields applied to every arm after the preset (CONFIG=)")
    seeds: list[int] = _f((0, 1, 2), "seeds of training and sampling; every arm runs once per seed")
    data_seed: int | None = _f(0, "the one data seed (benchmark and training data) of every arm; passed on "
                                   "when the train config has the field, else every seed is its own benchmark")
    scores: list[str] = _f(("paper", "equivalence"), "candidate scores; every arm runs once per score")
    arms: dict = _f(None, "arm name -> train config fields that make the arm (any TrainConfig field)")
    train: dict = _f(None, "train config fields of every arm (the experiment's size), before the arm's own")
    greedy: bool = _f(True, "also evaluate greedily (n=1) at iteration 0 and the last (a secondary figure)")
    share_warm_start: bool = _f(True, "arms of one seed differing only in mode/alpha/score share iteration 0")
    plan: Plan = field(default_factory=Plan, metadata={"help": "the pre-registered analysis plan"})

    def __post_init__(self) -> None:
        for name, kind in (("preset", str), ("seeds", list), ("scores", list), ("arms", dict), ("train", dict),
                           ("greedy", bool), ("share_warm_start", bool)):
            setattr(self, name, _as("experiment", name, getattr(self, name), kind))
        self.seeds = [_as("experiment", "seeds", s, int) for s in self.seeds]
        self.scores = [_as("experiment", "scores", s, str) for s in self.scores]
        if self.data_seed is not None:
            self.data_seed = _as("experiment", "data_seed", self.data_seed, int)
        if not isinstance(self.plan, (dict, Plan)):
            raise UserError(f"experiment field plan={self.plan!r} has the wrong type: expected a mapping")
        if isinstance(self.plan, dict):
            unknown = sorted(set(self.plan) - {f.name for f in dataclasses.fields(Plan)})
            if unknown:
                raise UserError(f"unknown experiment plan field {unknown[0]!r}; known: "
                                f"{', '.join(f.name for f in dataclasses.fields(Plan))}")
            self.plan = Plan(**self.plan)
        checks = [("seeds", bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), "distinct integers, at least one"),
                  ("scores", bool(self.scores) and set(self.scores) <= set(SCORES), f"a list from {SCORES}"),
                  ("arms", len(self.arms) >= 2 and all(isinstance(v, dict) for v in self.arms.values()),
                   "at least two arms, each a mapping of train config fields")]
        for name, ok, allowed in checks:
            if not ok:
                raise UserError(f"experiment field {name}={getattr(self, name)!r} is invalid: must be {allowed}")
        self.plan.check(self.arms)


def load_experiment(path: str | Path | None, overrides: dict) -> ExperimentConfig:
    """The experiment file (default: harness/experiment/experiments/default.yaml) with command-line overrides."""
    path = Path(path) if path else DEFAULT_FILE
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UserError(f"experiment file {path} does not exist; set EXPERIMENT= to an existing YAML") from None
    except yaml.YAMLError as exc:
        raise UserError(f"experiment file {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    unknown = sorted(set(data) - known) if isinstance(data, dict) else ["(not a mapping)"]
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r} in experiment file {path}; known: {', '.join(sorted(known))}")
    train = {**(data.get("train") or {}), **overrides.pop("train", {})}
    return ExperimentConfig(**{**data, **{k: v for k, v in overrides.items() if v is not None}, "train": train})


@dataclass(frozen=True)
class Arm:
    """One train run of the experiment: an arm of the plan under one score and one seed."""
    arm: str
    score: str
    seed: int
    overrides: dict

    @property
    def name(self) -> str:
        return f"{self.arm}-{self.score}-s{self.seed}"


def arm_runs(cfg: ExperimentConfig) -> list[Arm]:
    """Every (arm, score, seed) with its train overrides, in launch order (seed, score, arm)."""
    has_data_seed = "data_seed" in {f.name for f in dataclasses.fields(TrainConfig)}
    fixed = {"data_seed": cfg.data_seed} if has_data_seed and cfg.data_seed is not None else {}
    return [Arm(arm, score, seed, {**cfg.train, **cfg.arms[arm], **fixed, "score": score, "seed": seed})
            for seed in cfg.seeds for score in cfg.scores for arm in cfg.arms]


def train_config(cfg: ExperimentConfig, arm: Arm, workers: int = 0) -> TrainConfig:
    try:
        return load_config(cfg.preset, cfg.config, {**arm.overrides, "workers": workers})
    except UserError as exc:
        raise UserError(f"arm {arm.arm} (score {arm.score}, seed {arm.seed}): {exc}") from None


def resolved_configs(cfg: ExperimentConfig) -> dict[str, dict]:
    """Every arm run's complete train config (preset, CONFIG file, train and arm fields applied)."""
    return {a.name: {k: v for k, v in train_config(cfg, a).to_dict().items() if k != "workers"}
            for a in arm_runs(cfg)}
