"""What every benchmark returns (`BenchResult`: measured rows, goals, notes) and the helpers they share.

A `Row` is one measured quantity for the project's way and the baseline, taken in the same run on the
same inputs; its ratio is oriented so that > 1 means the project's way is better (faster, or smaller).
A `Goal` is a stated target checked against a measured figure and reported as met or not met, never
asserted.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One measured quantity: the project's figure, the baseline's, and project-over-baseline advantage."""

    measure: str                 # e.g. "samples/s"
    project: float | None
    baseline: float | None = None
    higher_is_better: bool = True
    note: str = ""               # e.g. "baseline extrapolated from 1,040 of 3,120 samples"

    @property
    def ratio(self) -> float | None:
        """How many times better the project's way is (> 1: better); None without a baseline."""
        if self.project is None or self.baseline is None or not self.project or not self.baseline:
            return None
        return self.project / self.baseline if self.higher_is_better else self.baseline / self.project


@dataclass
class Goal:
    """A stated target and whether the measured figure meets it."""

    goal: str                    # e.g. ">= 2x the baseline's samples/s"
    measured: str                # e.g. "2.41x"
    met: bool | None             # None: could not be checked (say why in `measured`)


@dataclass
class BenchResult:
    name: str
    scale: str
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    skipped: str | None = None   # why the benchmark did not run (no GPU, ...)

    def to_dict(self) -> dict:
        data = asdict(self)
        for row, out in zip(self.rows, data["rows"]):
            out["ratio"] = row.ratio
        return data


@dataclass
class Timing:
    seconds: float = 0.0


@contextlib.contextmanager
def stopwatch() -> Iterator[Timing]:
    """``with stopwatch() as sw: ...`` then ``sw.seconds`` (monotonic wall clock)."""
    timing, start = Timing(), time.monotonic()
    try:
        yield timing
    finally:
        timing.seconds = time.monotonic() - start


@contextlib.contextmanager
def timed_calls(module, names: list[str], into: dict[str, list[float]],
                depth: list[int] | None = None) -> Iterator[dict[str, list[float]]]:
    """Wrap ``module.<name>`` for each name so that the wall time of each call is appended, in call
    order, to ``into[name]``.

    Nested wrapped calls count only in the outermost one (a training call inside the warm start is
    warm-start time, not training time); pass the same ``depth`` list to nested `timed_calls` on
    several modules. The originals are put back on exit. Works because callers look the functions up
    on the module at call time.
    """
    depth = [0] if depth is None else depth

    def wrap(name, func):
        def timed(*args, **kwargs):
            depth[0] += 1
            start = time.monotonic()
            try:
                return func(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    into.setdefault(name, []).append(time.monotonic() - start)
        return timed

    originals = {name: getattr(module, name) for name in names}
    try:
        for name, func in originals.items():
            setattr(module, name, wrap(name, func))
        yield into
    finally:
        for name, func in originals.items():
            setattr(module, name, func)


def seeded_subset(items: list, n: int | None, seed: int = 0) -> list:
    """``n`` items drawn without replacement by a seeded RNG, in their original order (all when n is
    None or >= len)."""
    if n is None or n >= len(items):
        return list(items)
    keep = set(random.Random(seed).sample(range(len(items)), n))
    return [item for i, item in enumerate(items) if i in keep]


def per_second(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def machine_info() -> dict:
    """CPU model, core count, RAM and load: what a reader needs to compare timings across machines."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = None
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / (1 << 20), 1)  # kB -> GiB
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_model": cpu, "cores": os.cpu_count(), "ram_gib": ram, "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in load] if load else None}
