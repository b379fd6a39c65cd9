"""Read and write ``samples.jsonl``: rows ``{"task_id", "completion_id", "completion"}``.

This is the one file format between generation and evaluation (VerilogEval v1's format plus the id).
Reading (`tasks.jsonl`: lines end at ``\n`` only, each bounded in length) reports the first bad
line as one line naming the file and line number. Rows without a
``completion_id`` get one from a per-task counter, so files written by other tools (VerilogEval v1's
own samples have no id) can be scored unchanged. Extra fields are kept and passed through.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tasks.jsonl import dumps_line, iter_jsonl
from verilog_tools.errors import UserError

REQUIRED = {"task_id": str, "completion": str}


def check_sample_row(row: object, where: str) -> dict:
    """``row`` if it is a valid sample row; a UserError naming ``where`` and the field otherwise."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for name, kind in REQUIRED.items():
        if name not in row:
            raise UserError(f"{where}: missing field {name!r} (each row needs task_id and completion)")
        if not isinstance(row[name], kind):
            raise UserError(f"{where}: field {name!r} must be a string, got {type(row[name]).__name__}")
    cid = row.get("completion_id")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, (int, str))):
        raise UserError(f"{where}: field 'completion_id' must be an integer or string, "
                        f"got {type(cid).__name__}")
    return row


def read_samples(path: str | Path, *, max_line_bytes: int | None = None) -> list[dict]:
    """All rows of a samples file, validated; ``completion_id`` filled in where absent."""
    rows, seen = [], {}
    for where, row in iter_jsonl(path, "samples", max_line_bytes=max_line_bytes):
        row = check_sample_row(row, where)
        key = (row["task_id"], row.get("completion_id"))
        if key[1] is not None and key in seen:
            raise UserError(f"{where}: duplicate completion_id {key[1]!r} for task {key[0]!r} "
                            f"(first at line {seen[key]})")
        seen[key] = where.rsplit(":", 1)[1]
        rows.append(row)
    return assign_completion_ids(rows)


def assign_completion_ids(rows: list[dict]) -> list[dict]:
    """Give each row without a ``completion_id`` the next free number for its task (in file order)."""
    counters: dict[str, int] = {}
    seen: dict[str, set] = {}
    for row in rows:
        taken = seen.setdefault(row["task_id"], set())
        if row.get("completion_id") is None:
            n = counters.get(row["task_id"], 0)
            while n in taken:
                n += 1
            row["completion_id"] = n
            counters[row["task_id"]] = n + 1
        taken.add(row["completion_id"])
    return rows


def write_samples(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write sample (or result) rows as JSONL, atomically; returns the path."""
    return atomic_write_text(path, "".join(map(dumps_line, rows)))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` so that readers see the old file or the whole new one, never a torn one.

    Temp file in the same folder, fsync, rename over the target, fsync the folder. Lives here (the
    lowest layer that writes outputs) so that tasks and harness share one implementation. A lone
    surrogate (from a JSON ``"\\ud800"``) is written as its escape ``\\ud800`` instead of failing:
    in a JSON string that is the same value, in plain text a visible escape.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def reference_samples(problems) -> list[dict]:
    """One sample per problem holding its reference as a completion: the ``MODEL=reference`` self-check."""
    return [{"task_id": p.task_id, "completion_id": 0, "completion": p.reference_completion()}
            for p in problems]
