"""Run folders: one self-describing folder per run under ``results/``.

A run folder holds ``manifest.json`` (merged config, argv, git commit and dirty flag, Python, ML
library and simulator versions, data hashes, seeds, start/finish times), ``state.json`` (which
stages finished, with their outputs) and the stages' outputs, each written atomically.

Two markers keep a folder honest:

* ``.incomplete`` exists from creation until `RunFolder.finish`; a crashed or failed run keeps it, so
  it never looks complete.
* ``.lock`` (JSON: pid, host) keeps two processes out of one folder. A lock left by a dead process on
  this host is stale and taken over; one from another host is never guessed about (the message names
  the file to delete).

Every command that writes a run folder goes through `run_folder`, one context manager: it creates the
folder or resumes it (`open_run`: the same RUN again with the same config), takes the lock, marks the
run complete when the block ends, and abandons it when the block raises. Abandoning is the same for
every error, a user's mistake, Ctrl-C or a bug: `RunFolder.abandon` releases the lock and removes the
folder only when nothing but this bookkeeping was written (an empty folder would only block a rerun
with the same RUN); a folder with any output is kept, ``.incomplete`` and all, because its finished
stages are valid whatever stopped the next one, and a resumable run goes on from them when the same
command is run again. The kinds differ only in what the user reads: a `UserError` is one line, a bug
a line naming its traceback log (harness.cli), and Ctrl-C on a kept, resumable folder says how to
resume it.
"""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from tasks.jsonl import dumps, dumps_line
from tasks.samples import atomic_write_text
from verilog_tools.container import containment_mode
from verilog_tools.errors import UserError

BOOKKEEPING = {"manifest.json", "state.json", ".lock", ".incomplete"}
ML_PACKAGES = ("torch", "transformers", "trl", "peft", "bitsandbytes")
REPO_ROOT = Path(__file__).resolve().parents[2]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def atomic_write_json(path: str | Path, data: object) -> Path:
    return atomic_write_text(path, dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | Path, rows) -> Path:
    return atomic_write_text(path, "".join(map(dumps_line, rows)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunFolder:
    """A locked run folder; use `create` for a new run and `open` to resume one."""

    def __init__(self, path: Path, kind: str):
        self.path = Path(path)
        self.kind = kind
        self._locked = False

    # --- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, name: str | None, kind: str) -> "RunFolder":
        """Make ``root/name`` (``<kind>-<timestamp>`` when ``name`` is None); refuse an existing one."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot use results directory {root} ({exc.strerror}); "
                            f"choose another RESULTS_DIR") from None
        if name is not None and (not name or "/" in name or name.startswith(".")):
            raise UserError(f"run name {name!r} must be a plain folder name (no '/', not hidden)")
        path = root / (name or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in range(1, 100):
            try:
                path.mkdir()
                break
            except OSError as exc:
                if not isinstance(exc, FileExistsError):
                    raise UserError(f"cannot create run folder {path} ({exc.strerror}); "
                                    f"choose another RESULTS_DIR") from None
                if name is not None:
                    raise UserError(f"run folder {path} already exists; choose another RUN name "
                                    f"or delete the folder") from None
                path = root / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{suffix + 1}"
        else:
            raise UserError(f"could not find a free run folder name under {root}; pass RUN=name")
        run = cls(path, kind)
        (path / ".incomplete").touch()
        run._acquire_lock()
        atomic_write_json(path / "state.json", {"kind": kind, "stages": {}})
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        """Reopen an existing run folder (to resume); takes its lock."""
        path = Path(path)
        state_file = path / "state.json"
        if not state_file.is_file():
            raise UserError(f"{path} is not a run folder (no state.json); start a new run instead")
        run = cls(path, json.loads(state_file.read_text()).get("kind", "run"))
        run._acquire_lock()
        return run

    @classmethod
    def resume(cls, path: str | Path, kind: str, config: dict, defaults: dict,
               may_change=frozenset()) -> "RunFolder":
        """Reopen the run of ``kind`` at ``path`` to go on with ``config``; locked, ``.incomplete``.

        Refused (UserError) when ``path`` is no run folder of ``kind``, or when its manifest holds
        another config: a field outside ``may_change`` differs (a field missing from an old
        manifest counts as its value in ``defaults``). A folder killed before its manifest was
        written holds no stage yet and is taken over; the caller then writes the manifest.
        """
        path = Path(path)
        try:
            state = json.loads((path / "state.json").read_text())
        except (OSError, ValueError):
            raise UserError(f"{path} exists but is not a run folder (no readable state.json); "
                            f"choose another RUN") from None
        if state.get("kind") != kind:
            raise UserError(f"{path} is a {state.get('kind')} run, not a {kind} run; choose another RUN")
        manifest = path / "manifest.json"
        if manifest.is_file():
            old = json.loads(manifest.read_text()).get("config", {})
            changed = sorted(k for k, v in config.items()
                             if k not in may_change and old.get(k, defaults.get(k)) != v)
            if changed:
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {config[k]!r}" for k in changed)
                raise UserError(f"run {path} was started with another config ({diff}); "
                                f"use a new RUN name or the original settings")
        elif state.get("stages"):
            raise UserError(f"{path} has finished stages but no manifest.json; choose another RUN")
        run = cls.open(path)
        (run.path / ".incomplete").touch()  # until this resumed run finishes
        return run

    def finish(self) -> None:
        """Mark the run complete: stamp the manifest, drop ``.incomplete``, release the lock."""
        manifest = self.path / "manifest.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text())
            data["finished"] = now()
            atomic_write_json(manifest, data)
        (self.path / ".incomplete").unlink(missing_ok=True)
        self.release()

    def abandon(self) -> bool:
        """After an error: release the lock; delete the folder if it holds only bookkeeping.

        Returns True when the folder was removed. Otherwise ``.incomplete`` stays.
        """
        self.release()
        if not self.path.is_dir() or not {p.name for p in self.path.iterdir()} <= BOOKKEEPING:
            return False
        if (self.path / "state.json").is_file() and self.state()["stages"]:
            return False
        for p in self.path.iterdir():
            p.unlink()
        self.path.rmdir()
        return True

    @property
    def complete(self) -> bool:
        return not (self.path / ".incomplete").exists()

    # --- lock ----------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        lock = self.path / ".lock"
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now()})
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_stale_lock(lock)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(mine)
            self._locked = True
            return
        raise UserError(f"could not lock {lock}; another process keeps taking it")

    def _break_stale_lock(self, lock: Path) -> None:
        try:
            holder = json.loads(lock.read_text())
            pid, host = int(holder["pid"]), str(holder["host"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{lock} is unreadable; if no run is using {self.path}, delete it") from None
        if host != socket.gethostname():
            raise UserError(f"{self.path} is locked by pid {pid} on host {host}; if that run is gone, "
                            f"delete {lock}")
        if _pid_alive(pid):
            raise UserError(f"{self.path} is in use by running process {pid}; wait for it or stop it")
        lock.unlink(missing_ok=True)  # stale: its process is gone

    def release(self) -> None:
        if self._locked:
            (self.path / ".lock").unlink(missing_ok=True)
            self._locked = False

    # --- outputs and stages --------------------------------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def write_json(self, name: str, data: object) -> Path:
        return atomic_write_json(self.path / name, data)

    def state(self) -> dict:
        return json.loads((self.path / "state.json").read_text())

    def stage_done(self, stage: str) -> bool:
        return bool(self.state()["stages"].get(stage, {}).get("done"))

    def mark_done(self, stage: str, outputs: list[str] = (), details: dict | None = None) -> None:
        """Record ``stage`` as finished; every output (relative path) must already exist.

        ``details`` (JSON) is kept with the stage, for a resumed run that skips it.
        """
        missing = [o for o in outputs if not (self.path / o).exists()]
        if missing:
            raise RuntimeError(f"stage {stage}: outputs not written yet: {missing}")
        state = self.state()
        state["stages"][stage] = {"done": True, "outputs": list(outputs), "finished": now()}
        if details is not None:
            state["stages"][stage]["details"] = details
        atomic_write_json(self.path / "state.json", state)

    @contextmanager
    def unlocked(self) -> Iterator[None]:
        """Hand the lock to another process for the block (a child that opens this folder), then retake it."""
        self.release()
        try:
            yield
        finally:
            self._acquire_lock()

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, kind={self.kind!r})"


def open_run(results_dir: str | Path, name: str | None, kind: str, config: dict | None = None, *,
             defaults: dict | None = None, may_change=frozenset(), reopen_finished: bool = True,
             manifest: Callable[[RunFolder], object] | None = None) -> RunFolder:
    """A new locked run folder ``results_dir/name`` (``<kind>-<timestamp>`` without a name), or that
    folder reopened to resume it.

    ``config`` None: always a new folder; an existing RUN is refused. Otherwise an existing folder is
    resumed when its manifest holds ``config`` (`RunFolder.resume`: ``defaults`` for fields an old
    manifest lacks, ``may_change`` for fields that may differ); ``reopen_finished=False`` refuses a
    finished one. ``manifest(run)`` writes the manifest of a folder that has none yet (a new one, or one
    killed before writing it); if it fails the folder is abandoned.
    """
    path = Path(results_dir) / name if name else None
    if config is None or path is None or "/" in name or name.startswith(".") or not path.exists():
        run = RunFolder.create(results_dir, name, kind)  # also refuses bad and existing names
    elif not reopen_finished and not (path / ".incomplete").exists():
        raise UserError(f"run folder {path} already exists and is finished; choose another RUN name "
                        f"or delete the folder")
    else:
        run = RunFolder.resume(path, kind, config, defaults or {}, may_change)
    if manifest is not None and not (run.path / "manifest.json").is_file():
        try:
            manifest(run)
        except BaseException:
            run.abandon()
            raise
    return run


@contextmanager
def run_folder(results_dir: str | Path, name: str | None, kind: str, config: dict | None = None,
               **options) -> Iterator[RunFolder]:
    """The lifecycle of a command's run folder: `open_run` (same arguments), then the block; on success
    the run is marked complete (`RunFolder.finish`), on any exception abandoned (`RunFolder.abandon`:
    lock released, the folder removed if it holds only bookkeeping, else kept to resume)."""
    run = open_run(results_dir, name, kind, config, **options)
    try:
        yield run
    except BaseException as exc:
        kept = not run.abandon()
        if kept and config is not None and isinstance(exc, KeyboardInterrupt):
            print(f"{kind} interrupted: {run.path} keeps its finished stages; resume it with --run "
                  f"{run.path.name} (RUN={run.path.name})", file=sys.stderr)
        raise
    try:
        run.finish()
    finally:
        run.release()


def git_info(repo: Path = REPO_ROOT) -> dict | None:
    """``{"commit", "dirty"}`` of the checkout at ``repo``; outside a checkout, the commit an image was
    built from (``ITERTL_GIT_COMMIT``, set by the Dockerfile; dirty unknown); else None."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=20,
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        baked = os.environ.get("ITERTL_GIT_COMMIT", "").strip()
        if not baked or baked == "unknown":
            return None
        return {"commit": baked, "dirty": None, "source": "ITERTL_GIT_COMMIT"}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names=ML_PACKAGES) -> dict[str, str | None]:
    """Installed versions read from package metadata (never imports the packages)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def simulator_versions() -> dict:
    try:
        from verilog_tools.tools import tool_versions
        return dict(tool_versions())
    except (UserError, OSError) as exc:
        return {"error": str(exc)}


def write_manifest(run: RunFolder, config: dict, data_hashes: dict | None = None,
                   seeds: dict | None = None, argv: list[str] | None = None) -> Path:
    """Write ``manifest.json``: everything needed to say what produced this folder."""
    manifest = {
        "kind": run.kind,
        "name": run.path.name,
        "config": config,
        "argv": list(sys.argv if argv is None else argv),
        "git": git_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "tools": simulator_versions(),
        "containment": containment_mode(),
        "data_hashes": data_hashes or {},
        "seeds": seeds or {},
        "started": now(),
        "finished": None,
    }
    return run.write_json("manifest.json", manifest)
