"""Prepare a training data set: read, clean, filter, decontaminate, split, write hashed JSONL.

Pipeline for RTLCoder-style data (each step counts what it drops, in this order):
  malformed rows -> empty/non-Verilog references -> duplicates -> more than one module (the
  paper's filter) -> ``iverilog -t null`` failures -> near-duplicates of VerilogEval problems.
``filter=False`` (FILTER=0) switches off the two filters for the ablation; cleaning, de-duplication
and decontamination still run. The synthetic source needs no cleaning: its tasks are generated
with testbenches; its held-out split goes to ``heldout.jsonl`` untouched by training.

Outputs in ``out_dir``: ``train.jsonl``, ``valid.jsonl`` (and ``heldout.jsonl``) of
`TrainingRecord` rows sorted by id, ``contamination.jsonl`` (flagged rows) and
``data_summary.json``; each written atomically, so the same config gives byte-identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tasks.decontam import BenchmarkIndex, load_benchmark_problems
from tasks.records import TrainingRecord
from tasks.rtlcoder import CleanExample, clean_examples, fetch_resyn27k, read_source
from verilog_tools.errors import UserError
from verilog_tools.config import option as _f


@dataclass
class DataConfig:
    """What `prepare_data` builds. Every field maps to a CLI flag of ``python -m harness data``."""

    data: str = _f("synthetic", "training data: synthetic | resyn27k (downloaded, pinned) | path to a "
                                "JSONL/JSON file or a directory of them")
    filter: bool = _f(True, "the paper's filter: drop multi-module references; with syntax_filter also "
                            "non-compiling ones (False is the no-filter ablation)")
    syntax_filter: bool = _f(True, "when filter is on, also drop references failing iverilog -t null")
    decontaminate: bool = _f(True, "drop rows that near-duplicate a VerilogEval problem")
    require_decontamination: bool = _f(False, "fail instead of skipping when no benchmark data can be loaded")
    valid_fraction: float = _f(0.02, "share of rows in the validation split, in [0, 0.5]")
    seed: int = _f(0, "seed of the hash-based train/validation split (and of synthetic generation)")
    limit: int | None = _f(None, "keep only the first N well-formed rows read (a smoke run; recorded in "
                                          "the summary; malformed rows are counted over the whole file)")
    workers: int = _f(2, "parallel iverilog processes for the syntax filter")
    cache_dir: str | None = _f(None, "where downloads (Resyn27k) are cached; default $ITERTL_CACHE "
                                     "or ~/.cache/itertl")
    synthetic_train: int = _f(2000, "number of synthetic training tasks (data=synthetic)")
    synthetic_heldout: int = _f(200, "number of synthetic held-out tasks (data=synthetic)")
    synthetic_multi_module: float = _f(0.1, "data=synthetic: extra training rows, as a share of "
                                            "synthetic_train, whose reference is split into a helper module "
                                            "and a wrapper (what the paper's filter drops)")

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data.strip():
            raise UserError(f"config field data={self.data!r} is invalid: must be synthetic, resyn27k or a path "
                            f"to a data file")
        if not 0.0 <= float(self.valid_fraction) <= 0.5:
            raise UserError(f"config field valid_fraction must be in [0, 0.5], got {self.valid_fraction}")
        if self.limit is not None and int(self.limit) < 1:
            raise UserError(f"config field limit must be a positive integer or unset, got {self.limit}")
        if int(self.workers) < 1:
            raise UserError(f"config field workers must be >= 1, got {self.workers}")
        if not 0.0 <= float(self.synthetic_multi_module) <= 1.0:
            raise UserError("config field synthetic_multi_module must be in [0, 1], "
                            f"got {self.synthetic_multi_module}")
        for name in ("synthetic_train", "synthetic_heldout"):
            if int(getattr(self, name)) < 0:
                raise UserError(f"config field {name} must be >= 0, got {getattr(self, name)}")
        for name in ("filter", "syntax_filter", "decontaminate", "require_decontamination"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"config field {name} must be true or false, got {getattr(self, name)!r}")


@dataclass
class PreparedData:
    """Where the prepared files are, their sha256 hashes and the summary that describes them."""

    out_dir: Path
    files: dict[str, Path]
    hashes: dict[str, str]
    summary: dict


def prepare_data(cfg: DataConfig, out_dir: str | Path) -> PreparedData:
    """Build the data set described by ``cfg`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.data == "synthetic":
        splits, summary = _synthetic_records(cfg)
    else:
        splits, summary = _rtlcoder_records(cfg)
    flagged = _decontaminate(cfg, splits, summary)
    train, valid = split_records(splits.pop("train"), cfg.valid_fraction, cfg.seed)
    splits = {"train": train, "valid": valid, **splits}
    files, hashes = {}, {}
    for name, records in splits.items():
        rows = [r.to_json() for r in sorted(records, key=lambda r: r.id)]
        files[name], hashes[name] = _write_atomic(out / f"{name}.jsonl", rows)
    contamination = [json.dumps(c.to_dict(), sort_keys=True) for c in sorted(flagged, key=lambda c: c.record_id)]
    files["contamination"], hashes["contamination"] = _write_atomic(out / "contamination.jsonl", contamination)
    summary["rows_out"] = {name: len(records) for name, records in splits.items()}
    summary["files"] = {name: {"path": path.name, "sha256": hashes[name]} for name, path in files.items()}
    summary["config"] = {k: v for k, v in asdict(cfg).items() if k != "cache_dir"}
    _write_atomic(out / "data_summary.json", [json.dumps(summary, indent=2, sort_keys=True)])
    files["summary"] = out / "data_summary.json"
    return PreparedData(out, files, hashes, summary)


def _rtlcoder_records(cfg: DataConfig) -> tuple[dict[str, list[TrainingRecord]], dict]:
    if cfg.data == "resyn27k":
        from tasks.fetch import cache_root

        path = fetch_resyn27k(cfg.cache_dir or cache_root())
    else:
        path = Path(cfg.data).expanduser()
    read = read_source(path)
    examples = read.examples[:cfg.limit] if cfg.limit else read.examples
    dropped = {"malformed": read.malformed}
    cleaned, counts = clean_examples(examples)
    dropped.update(counts)
    kept = filter_examples(cleaned, cfg, dropped)
    records = [TrainingRecord(id=TrainingRecord.make_id(ex.source, ex.instruction, ex.reference),
                              instruction=ex.instruction, header=ex.header, reference=ex.reference,
                              source=ex.source) for ex in kept]
    summary = {"data": cfg.data, "source_files": [_describe(Path(f)) for f in read.files],
               "rows_in": len(examples) + read.malformed, "dropped": dropped, "limit": cfg.limit,
               "filter": cfg.filter, "syntax_filter": cfg.filter and cfg.syntax_filter}
    return {"train": records}, summary


def filter_examples(examples: list[CleanExample], cfg: DataConfig, dropped: dict) -> list[CleanExample]:
    """The paper's filter: one module per reference, and (optionally) it must pass ``iverilog -t null``.

    Adds ``multi_module``, ``syntax`` and ``syntax_unchecked`` (iverilog timed out or failed to
    run: not a verdict on the code, so counted apart but still dropped) to ``dropped``.
    """
    dropped.update(multi_module=0, syntax=0, policy=0, syntax_unchecked=0)
    if not cfg.filter:
        return list(examples)
    single = [ex for ex in examples if ex.modules <= 1]
    dropped["multi_module"] = len(examples) - len(single)
    if not cfg.syntax_filter or not single:
        return single
    from verilog_tools.icarus import check_syntax_many
    from verilog_tools.status import COMPILE_ERROR, REJECTED, SYNTAX_ERROR

    results = check_syntax_many([ex.reference for ex in single], workers=cfg.workers)
    kept = []
    for example, result in zip(single, results):
        if result.ok:
            kept.append(example)
        elif result.status in (SYNTAX_ERROR, COMPILE_ERROR):
            dropped["syntax"] += 1
        elif result.status == REJECTED:   # the verifier's policy (docs/policy-audit.md): not trained on
            dropped["policy"] += 1
        else:
            dropped["syntax_unchecked"] += 1
    return kept


def _synthetic_records(cfg: DataConfig) -> tuple[dict[str, list[TrainingRecord]], dict]:
    """Generated tasks plus their two-module variants; the filter drops the variants.

    The variants are extra rows (the single-module originals stay), so with the filter on the
    training set is exactly the generated one. Synthetic references compile by construction (a test
    checks every one), so the syntax filter has nothing to drop here and is not run.
    """
    from tasks.synthetic import generate_tasks, multi_module_extras, to_records

    train, heldout = generate_tasks(cfg.seed, cfg.synthetic_train, cfg.synthetic_heldout)
    if cfg.limit:
        train = train[:cfg.limit]
    extras = multi_module_extras(train, cfg.synthetic_multi_module, cfg.seed)
    dropped = {"multi_module": len(extras) if cfg.filter else 0, "syntax": 0, "syntax_unchecked": 0}
    rows = train if cfg.filter else train + extras
    summary = {"data": "synthetic", "source_files": [], "rows_in": len(train) + len(extras) + len(heldout),
               "dropped": dropped, "limit": cfg.limit, "filter": cfg.filter, "syntax_filter": False}
    return {"train": to_records(rows, split="train"), "heldout": to_records(heldout, split="heldout")}, summary


def _decontaminate(cfg: DataConfig, splits: dict[str, list[TrainingRecord]], summary: dict) -> list:
    """Drop training rows matching a benchmark problem; record what was checked in ``summary``."""
    summary["dropped"]["contamination"] = 0
    if not cfg.decontaminate:
        summary["decontamination"] = {"status": "off"}
        return []
    load = load_benchmark_problems()
    summary["decontamination"] = {"benchmarks": load.loaded, "missing": load.missing,
                                  "status": "done" if load.loaded else "skipped"}
    if not load.loaded:
        if cfg.require_decontamination:
            raise UserError("decontamination needs VerilogEval data but none could be loaded "
                            f"({'; '.join(load.missing.values())}); set VERILOG_EVAL_V1_DIR")
        return []
    index = BenchmarkIndex(load.problems)
    flagged = []
    clean = []
    for record in splits["train"]:
        hit = index.match(record.id, record.instruction, record.reference)
        (flagged if hit else clean).append(hit or record)
    splits["train"] = clean
    summary["dropped"]["contamination"] = len(flagged)
    return flagged


def split_records(records: list[TrainingRecord], valid_fraction: float,
                  seed: int) -> tuple[list[TrainingRecord], list[TrainingRecord]]:
    """Deterministic split: a row is in validation when sha256(seed, id) falls below the fraction.

    Depends only on the row's id, so adding or removing other rows never moves a row across.
    """
    train, valid = [], []
    for record in records:
        digest = hashlib.sha256(f"{seed}\0{record.id}".encode()).digest()
        in_valid = int.from_bytes(digest[:8], "big") / 2**64 < valid_fraction
        (valid if in_valid else train).append(replace(record, split="valid" if in_valid else "train"))
    return train, valid


def _write_atomic(path: Path, lines: list[str]) -> tuple[Path, str]:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, hashlib.sha256(data).hexdigest()


def _describe(path: Path) -> dict:
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
