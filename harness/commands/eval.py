"""`python -m harness eval`: score a samples file, or the reference self-check, on a benchmark.

Flags mirror the Make variables (BENCH, SAMPLES, MODEL, PROBLEMS, K, RUN, RESULTS_DIR, FAIL_UNDER,
WORKERS, TIMEOUT, MAX_LINE_BYTES, ALLOW_MISSING, LIMIT). Everything the user gave is checked
(benchmark, problems file, samples file, task ids, simulator) before a run folder is created, so bad
input leaves no folder behind. After that, a failure leaves the folder with its ``.incomplete``
marker (or removes it when nothing but bookkeeping was written); only a finished evaluation drops
the marker. The same command with the same RUN resumes such a folder (`_folder_options`).

Samples come from ``--samples FILE``, from ``--model reference`` (each problem's reference as its
completion: the harness's self-check), or from a model (`harness.sample.model_eval`, the default), or from a
``generate(problems, config) -> (samples, info)`` passed to `main_eval`; ``info`` (temperature, top_p,
model id...) is merged into metrics.json.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from harness.commands.flags import Parser, add_config_flags
from harness.reports.report import try_build_report
from harness.runs.folder import RunFolder, run_folder, write_manifest
from harness.runs.provenance import eval_provenance, known_failure_lines
from harness.sample.api_sampler import TEMPLATES
from harness.sample.model_eval import generate_for_eval, resolve_model
from tasks.benchmarks import known_benchmarks, load_benchmark
from tasks.evaluate import check_ids, evaluate
from tasks.fetch import data_hash
from tasks.jsonl import MAX_LINE_BYTES
from tasks.reports import summary_table, write_outcome
from tasks.shards import parse_shard, select_shard
from tasks.verilog_eval import require_prompts
from tasks.samples import (assign_completion_ids, check_sample_row, read_samples, reference_samples,
                           write_samples)
from verilog_tools.errors import UserError
from verilog_tools.runner import Limits
from verilog_tools.tools import check_simulator

RESUMABLE_CHANGES = frozenset({"workers", "fail_under", "results_dir"})  # results stay the same
MAX_TIMEOUT = 3600.0  # an hour per simulator step: far above any benchmark, finite for the timers
GenerateSamples = Callable[[list, "EvalConfig"], "tuple[list[dict], dict]"]


@dataclass
class EvalConfig:
    """One evaluation: which benchmark, which samples, how to score them."""

    bench: str = field(default="verilog-eval-v1-human", metadata={"help": "benchmark id (BENCH); 'file' with --problems"})
    samples: str | None = field(default=None, metadata={"help": "samples.jsonl to score (SAMPLES)"})
    model: str | None = field(default=None, metadata={"help": "'reference' for the self-check, or a model to sample (MODEL)"})
    problems: str | None = field(default=None, metadata={"help": "problems file in VerilogEval v1 JSONL format (PROBLEMS)"})
    k: str = field(default="1,5,10", metadata={"help": "comma-separated k values for pass@k (K)"})
    run: str | None = field(default=None, metadata={"help": "run folder name; default eval-<timestamp> (RUN)"})
    results_dir: str = field(default="results", metadata={"help": "where run folders go (RESULTS_DIR)"})
    fail_under: float | None = field(default=None, metadata={"help": "exit 1 if pass@1 is below this fraction (FAIL_UNDER)"})
    workers: int | None = field(default=None, metadata={"help": "parallel simulations; default: all cores (WORKERS)"})
    timeout: float | None = field(default=None, metadata={
        "help": f"seconds per simulator step, wall and CPU, at most {MAX_TIMEOUT:g} (TIMEOUT)"})
    max_line_bytes: int = field(default=MAX_LINE_BYTES, metadata={
        "help": "longest samples.jsonl row read, in bytes; a longer one is an error (MAX_LINE_BYTES)"})
    allow_missing: bool = field(default=False, metadata={"help": "score problems without samples as failures (ALLOW_MISSING)"})
    limit: int | None = field(default=None, metadata={"help": "only the first N problems: a smoke run, flagged in metrics (LIMIT)"})
    n: int = field(default=1, metadata={"help": "samples per problem when generating from --model (N)"})
    temperature: float = field(default=0.2, metadata={"help": "sampling temperature for --model; 0 = greedy (TEMPERATURE)"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling mass for --model (TOP_P)"})
    max_new_tokens: int = field(default=1024, metadata={"help": "generation limit per sample for --model"})
    seed: int = field(default=0, metadata={"help": "sampling seed for --model (SEED)"})
    shard: str | None = field(default=None, metadata={"help": "evaluate only shard i of N (0-based), e.g. 0/4; join with `make merge` (SHARD)"})
    template: str = field(default="chat/v1", metadata={"help": "prompt template id for MODEL=openai:<name> (harness.sample.api_sampler.TEMPLATES) (TEMPLATE)"})
    concurrency: int = field(default=4, metadata={"help": "requests in flight at once for MODEL=openai:<name> (CONCURRENCY)"})
    retries: int = field(default=5, metadata={"help": "retries with exponential backoff per request for MODEL=openai:<name> (RETRIES)"})
    api_cache: str | None = field(default=None, metadata={"help": "completion cache (SQLite) for MODEL=openai:<name>; default $ITERTL_CACHE/api-completions.sqlite (API_CACHE)"})

    def __post_init__(self) -> None:
        try:
            self.shard_spec = parse_shard(self.shard)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if self.concurrency < 1 or self.retries < 0:
            raise UserError(f"concurrency/retries: need concurrency >= 1 and retries >= 0, "
                            f"got {self.concurrency}/{self.retries}")
        if self.template not in TEMPLATES:
            raise UserError(f"template: unknown prompt template {self.template!r}; known: {', '.join(TEMPLATES)}")
        if self.problems and self.bench == EvalConfig.bench:
            self.bench = "file"
        if self.bench not in known_benchmarks():
            raise UserError(f"bench: unknown benchmark {self.bench!r}; allowed: {', '.join(known_benchmarks())}")
        if (self.samples is None) == (self.model is None):
            raise UserError("samples/model: give exactly one of --samples FILE or --model NAME")
        try:
            self.ks = tuple(sorted({int(x) for x in self.k.split(",") if x.strip()}))
        except ValueError:
            raise UserError(f"k: expected comma-separated positive integers like 1,5,10, got {self.k!r}") from None
        if not self.ks or self.ks[0] < 1:
            raise UserError(f"k: expected comma-separated positive integers like 1,5,10, got {self.k!r}")
        if self.fail_under is not None and not 0.0 <= self.fail_under <= 1.0:
            raise UserError(f"fail_under: a fraction between 0 and 1, got {self.fail_under}")
        if self.n < 1 or self.max_new_tokens < 1:
            raise UserError(f"n/max_new_tokens: positive integers, got {self.n}/{self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise UserError(f"temperature/top_p: need temperature >= 0 and 0 < top_p <= 1, "
                            f"got {self.temperature}/{self.top_p}")
        for name in ("workers", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name}: a positive integer, got {value}")
        if self.timeout is not None and not 0 < self.timeout <= MAX_TIMEOUT:  # NaN fails this too
            raise UserError(f"timeout: a number of seconds in (0, {MAX_TIMEOUT:g}], got {self.timeout}")
        if self.max_line_bytes < 1:
            raise UserError(f"max_line_bytes: a positive integer, got {self.max_line_bytes}")

    def limits(self) -> Limits | None:
        return None if self.timeout is None else Limits(wall_seconds=self.timeout, cpu_seconds=self.timeout)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_args(argv: list[str]) -> EvalConfig:
    parser = Parser(prog="python -m harness eval", description=__doc__.split("\n")[0])
    add_config_flags(parser, EvalConfig)
    return EvalConfig(**vars(parser.parse_args(argv)))


def main_eval(argv: list[str], *, generate_samples: GenerateSamples | None = None) -> int:
    """Run one evaluation; returns 0, or 1 when pass@1 is below ``--fail-under``."""
    config = parse_args(argv)
    all_problems = load_benchmark(config.bench, problems_file=config.problems)
    problems = all_problems if config.limit is None else all_problems[:config.limit]
    whole_hash, problems = data_hash(problems), select_shard(problems, config.shard_spec)
    samples, info = _samples_before_run(config, all_problems, problems)
    if samples is None:
        require_prompts(problems)  # only a model needs descriptions to be prompted with
    generate = generate_samples
    if samples is None and generate is None:
        resolve_model(config.model)  # a bad MODEL fails here, before any run folder exists
        generate = generate_for_eval
    check_simulator()  # a missing simulator is reported before any folder exists
    with run_folder(config.results_dir, config.run, "eval", **_folder_options(config, problems, argv)) as run:
        if run.stage_done("samples"):  # resuming: the samples this run started with
            samples = read_samples(run.path / "samples.jsonl", max_line_bytes=config.max_line_bytes)
            info = run.state()["stages"]["samples"].get("details", info)
        else:
            if samples is None:
                samples, info = _generate(config, problems, generate)
                _record_token_usage(run, info)
                check_ids(problems, samples, config.allow_missing)
            write_samples(run.path / "samples.jsonl", samples)
            run.mark_done("samples", ["samples.jsonl"], details=info)
        if not run.stage_done("eval"):
            outcome = evaluate(problems, samples, workers=config.workers, limits=config.limits(),
                               ks=config.ks, allow_missing=config.allow_missing, progress=sys.stderr.isatty())
            outcome.metrics.update(info, limit=config.limit, smoke=config.limit is not None,
                                   model=config.model, samples_file=config.samples,
                                   allow_missing=config.allow_missing)
            provenance = eval_provenance(config, problems, outcome.results, whole_hash)
            outcome.metrics.update({k: v for k, v in provenance.items() if k not in outcome.metrics})
            run.mark_done("eval", write_outcome(outcome, run.path))
    try_build_report(run.path)  # report.md beside metrics.json; a failure only warns
    metrics = json.loads((run.path / "metrics.json").read_text())
    print(summary_table(metrics))
    for line in known_failure_lines(metrics):  # why each reference that failed its testbench fails
        print(line)
    print(f"run folder: {run.path}")
    return _exit_code(config, metrics)


def _folder_options(config: EvalConfig, problems: list, argv: list[str]) -> dict:
    """How `run_folder` opens an eval run: a new folder, or the unfinished one that ``--run`` names,
    reopened with the same config.

    An eval run stopped by Ctrl-C, a crash or a kill keeps its ``.incomplete`` marker; the same
    command resumes it, keeping its samples (generated ones are not sampled again) and redoing the
    evaluation if it had not finished. A finished run is never touched.
    """
    return {"config": config.to_dict(), "defaults": {f.name: f.default for f in fields(EvalConfig)},
            "may_change": RESUMABLE_CHANGES, "reopen_finished": False,
            "manifest": lambda run: write_manifest(run, config.to_dict(),
                                                   data_hashes={config.bench: data_hash(problems)},
                                                   argv=["eval", *argv])}


def _samples_before_run(config: EvalConfig, all_problems: list, problems: list):
    """Samples that exist before the run (file or reference), checked, and an info dict for metrics;
    ``(None, info)`` when a model must generate them."""
    info = {"temperature": None, "top_p": None}
    if config.samples is not None:
        samples = read_samples(config.samples, max_line_bytes=config.max_line_bytes)
        check_ids(all_problems, samples, allow_missing=True)  # unknown ids, even beyond --limit
        if config.limit is not None or config.shard_spec is not None:
            keep = {p.task_id for p in problems}
            dropped = sum(1 for s in samples if s["task_id"] not in keep)
            samples = [s for s in samples if s["task_id"] in keep]
            info["samples_dropped_by_limit"] = dropped
    elif config.model == "reference":
        samples = reference_samples(problems)
    else:
        return None, info
    check_ids(problems, samples, config.allow_missing)
    return samples, info


def _generate(config: EvalConfig, problems: list, generate: GenerateSamples):
    """Samples from a model through the registered hook; ``info`` lands in metrics.json."""
    samples, info = generate(problems, config)
    rows = [check_sample_row(row, f"generated sample {i}") for i, row in enumerate(samples)]
    return assign_completion_ids(rows), {"temperature": None, "top_p": None, **info}


def _record_token_usage(run: RunFolder, info: dict) -> None:
    """API models: what sampling cost (requests, cache hits, tokens) goes into manifest.json too."""
    if info.get("token_usage"):
        manifest = json.loads((run.path / "manifest.json").read_text())
        run.write_json("manifest.json", {**manifest, "token_usage": info["token_usage"]})


def _exit_code(config: EvalConfig, metrics: dict) -> int:
    score = metrics.get("pass_at_k", {}).get("pass@1")
    if config.fail_under is not None and (score is None or score < config.fail_under):
        print(f"pass@1 {score} is below --fail-under {config.fail_under}", file=sys.stderr)
        return 1
    return 0
