"""`python -m harness <command>`: the one entry point the Makefile forwards to.

Each command lives in its own module (``harness/commands/<command>.py``) as ``main_<command>(argv)``.
A `UserError` becomes one line on stderr and exit code 2; any other exception is a bug: its
traceback goes to a log file (never to the user's terminal in full) and the line names that file.
"""
from __future__ import annotations

import errno
import importlib
import os
import sys
import tempfile
import traceback

from verilog_tools.errors import UserError

# A full or read-only disk, a quota, a file-size limit: the user's to fix, not a bug.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}

COMMANDS = {
    "eval": ("harness.commands.eval", "main_eval", "score samples or a model on a benchmark"),
    "data": ("harness.commands.data", "main_data", "prepare a training data set"),
    "train": ("harness.commands.train", "main_train", "run ITERTL iterations"),
    "report": ("harness.commands.report", "main_report", "rebuild a run's report.md and plots"),
    "compare": ("harness.commands.report", "main_compare", "put several runs side by side"),
    "ablation": ("harness.commands.ablation", "main_ablation", "run the paper's {iterative,static} x {filter on,off} grid"),
    "experiment": ("harness.commands.experiment", "main_experiment", "pre-registered arms x scores x seeds with intervals"),
    "bench": ("harness.commands.bench", "main_bench", "measure speed and memory against baselines"),
    "merge": ("harness.commands.merge", "main_merge", "join the shards of a SHARD=i/N evaluation"),
    "serve": ("harness.commands.serve", "main_serve", "serve a model as an OpenAI-compatible endpoint"),
}


def _usage() -> str:
    lines = ["usage: python -m harness <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _log_traceback() -> str:
    log_dir = os.environ.get("ITERTL_LOG_DIR") or tempfile.gettempdir()
    try:
        fd, path = tempfile.mkstemp(prefix="itertl-crash-", suffix=".log", dir=log_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(" ".join(sys.argv) + "\n\n")
            traceback.print_exc(file=fh)
    except OSError as exc:   # the disk that failed the run may be the log's disk too
        return f"(no log: {exc.strerror})"
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    # Nothing is ever downloaded at run time, and nothing is reported home.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(rest) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            return _internal_error(exc)
        path = _log_traceback()
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{where}: {exc.strerror or exc}; free disk space or choose another "
              f"RESULTS_DIR (an unfinished run folder keeps its .incomplete marker; details in {path})",
              file=sys.stderr)
        return 2
    except Exception as exc:  # a bug
        return _internal_error(exc)


def _internal_error(exc: Exception) -> int:
    """A bug: keep the user's terminal readable, keep the evidence."""
    path = _log_traceback()
    print(f"error: internal error ({type(exc).__name__}: {exc}); traceback in {path}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
