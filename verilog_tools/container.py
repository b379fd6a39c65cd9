"""A container per tool process (bubblewrap), and the scratch folder that dies with the harness.

`wrap(argv, cwd, readonly)` puts `bwrap` in front of a tool's argv (Debian's `bubblewrap`, the
sandbox Flatpak uses; it does the heavy part: namespaces and mounts). Inside, the process sees:
- /usr read-only (with the merged-/usr links /bin, /lib, /lib64, /sbin), the tool's own install
  prefix read-only when it lies outside /usr (`make tools` builds iverilog into .tools/), and the
  files named in `readonly`;
- a private /dev (null, zero, random...) and an empty /tmp;
- the sample directory `cwd`, read-write: the only place it can write, and the only data it can read;
- no network (a new, empty network namespace), new PID, IPC and UTS namespaces, a new user namespace
  where the kernel allows one, no capabilities, a new session (no terminal injection), and death with
  its parent: a harness killed by SIGKILL takes its simulators with it.
The tool runs as PID 1 of its namespace (`--as-pid-1`, no init of bwrap's in between): bwrap itself
reaps it, so the tool's CPU time reaches the harness through wait4, and when the tool ends the kernel
kills whatever it left in the namespace. As PID 1 it ignores signals it has no handler for, SIGXCPU and
SIGXFSZ included: the runner sets RLIMIT_CPU's soft and hard values equal (SIGKILL at the limit), and
its output cap still applies.
No /proc is mounted: the tools do not need it, and a container (Docker) may forbid mounting one.

Mode, from the environment: `ITERTL_CONTAINMENT=bwrap` (the default) or `none` (explicit opt-out; runs
record `containment: none`). `check_containment()` probes bwrap once and raises a one-line UserError
naming the opt-out where it cannot run (no bubblewrap, no user namespaces).

`scratch_root()`: one private folder per harness process under TMPDIR, holding every sample
directory. A reaper (`sh`, started once in its own session) waits on a pipe only the harness holds and
deletes the folder when the pipe closes, which happens however the harness ends, SIGKILL included.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from verilog_tools.errors import UserError

MODES = ("bwrap", "none")
ENV_VAR = "ITERTL_CONTAINMENT"
_MERGED_USR_LINKS = ("bin", "lib", "lib64", "sbin")
_lock = threading.Lock()
_scratch: dict[str, tuple] = {}   # TMPDIR -> (pid, folder, reaper)


def containment_mode() -> str:
    """`bwrap` or `none`, from ITERTL_CONTAINMENT (default bwrap); UserError for any other value."""
    mode = os.environ.get(ENV_VAR, "bwrap").strip() or "bwrap"
    if mode not in MODES:
        raise UserError(f"{ENV_VAR}={mode!r} is not a containment mode: use bwrap (the default) or none")
    return mode


@functools.lru_cache(maxsize=1)
def _bwrap() -> str | None:
    return shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin")


def _root_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _MERGED_USR_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _tool_prefix(tool: str) -> Path | None:
    """The install prefix of a tool outside /usr (…/iverilog-12 for …/iverilog-12/bin/iverilog)."""
    path = Path(tool).resolve()
    if not path.is_absolute() or path.is_relative_to("/usr"):
        return None
    return path.parent.parent if path.parent.name == "bin" else path.parent


def bwrap_argv(argv: Sequence[str], cwd: Path, readonly: Sequence[Path | str] = (), proc: bool = False) -> list[str]:
    """The bwrap command line that runs `argv` contained, with `cwd` its only writable folder.

    `proc`: mount a /proc of the container's own PID namespace (Yosys finds its data files through
    /proc/self/exe); a container such as Docker may forbid it, and the tool then fails in its sandbox."""
    args = [_bwrap() or "bwrap", "--unshare-all", "--unshare-user-try", "--die-with-parent", "--as-pid-1",
            "--new-session", "--cap-drop", "ALL", *_root_binds(), "--dev", "/dev", "--tmpfs", "/tmp"]
    if proc:
        args += ["--proc", "/proc"]
    prefix = _tool_prefix(argv[0]) if os.sep in argv[0] else None
    if prefix is not None:
        args += ["--ro-bind", str(prefix), str(prefix)]
    for path in readonly:
        args += ["--ro-bind", str(path), str(path)]
    cwd = str(Path(cwd).resolve())
    return args + ["--bind", cwd, cwd, "--chdir", cwd, "--", *argv]


def wrap(argv: list[str], cwd: Path, readonly: Sequence[Path | str] = (), proc: bool = False) -> list[str]:
    """`argv` run contained in the current mode (the same list object when containment is off)."""
    if containment_mode() == "none":
        return argv
    check_containment()
    return bwrap_argv(argv, cwd, readonly, proc)


_probe_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """None when bwrap can start a container here, else the first line of what went wrong."""
    tool = _bwrap()
    if tool is None:
        return "bubblewrap (bwrap) is not installed"
    true = shutil.which("true", path="/usr/bin:/bin")
    with tempfile.TemporaryDirectory(prefix="itertl-probe-", dir=scratch_root()) as d:
        try:
            done = subprocess.run(bwrap_argv([true or "/bin/true"], Path(d)), stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap did not run: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or b"").decode(errors="replace").strip().splitlines()
        return lines[0] if lines else f"bwrap exited with {done.returncode}"
    return None


def check_containment() -> str:
    """The mode in force, after checking bwrap can run when it is `bwrap` (UserError naming the opt-out)."""
    mode = containment_mode()
    if mode == "bwrap":
        with _probe_lock:   # one probe, even when many threads start their first tool at once
            problem = _probe()
        if problem is not None:
            raise UserError(f"cannot start the simulation container ({problem}): install bubblewrap and allow "
                            f"user namespaces, or set CONTAINMENT=none (ITERTL_CONTAINMENT=none) to run "
                            f"without one, recorded as containment: none")
    return mode


def scratch_root() -> str:
    """This process's scratch folder under the current TMPDIR (created once, with its reaper)."""
    base = tempfile.gettempdir()
    with _lock:
        entry = _scratch.get(base)
        if entry is not None and entry[0] == os.getpid() and os.path.isdir(entry[1]):
            return entry[1]
        root = tempfile.mkdtemp(prefix="itertl-run-", dir=base)
        reaper = subprocess.Popen(
            ["/bin/sh", "-c", 'cat >/dev/null; rm -rf -- "$0"', root], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        _scratch[base] = (os.getpid(), root, reaper)
        return root


def release_scratch() -> None:
    """Delete this process's scratch folders now (their reapers do it and exit); at exit too."""
    with _lock:
        entries = [e for e in _scratch.values() if e[0] == os.getpid()]
        _scratch.clear()
    for _, _, reaper in entries:
        try:
            reaper.stdin.close()
            reaper.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass


atexit.register(release_scratch)
