"""The one hardened process runner: every iverilog, vvp, verilator (and yosys) process starts here.

`run_sandboxed` runs an argv list (never a shell) in a per-sample directory with:
- a container per process (bubblewrap, Debian's `bubblewrap`; see `verilog_tools.container`): new
  mount, PID, network, IPC, UTS and (where allowed) user namespaces; only /usr (read-only), the tool's
  own install prefix (read-only), a private /dev and /tmp, the files the caller names read-only, and
  the sample directory (the only writable path) exist; no network; all capabilities dropped; its own
  session; it dies with the harness (`--die-with-parent`, and the PID namespace dies with its init);
- stdin closed (/dev/null), a scrubbed environment (PATH = the tool's dir + /usr/bin:/bin, LANG=C,
  HOME and TMPDIR = the sample dir), its own process group (start_new_session);
- a wall-clock limit enforced by a timer that SIGKILLs the whole process group (no polling);
- resource limits (see Cost): RLIMIT_CPU (CPU seconds), RLIMIT_AS (memory), RLIMIT_FSIZE (every file
  the child writes, its captured stdout/stderr included: an uncontained flood ends in SIGXFSZ; a contained
  tool, PID 1 of its namespace, ignores SIGXFSZ, so its writes fail until the CPU or wall-clock limit
  ends it), RLIMIT_CORE = 0; the CPU limit's soft and hard values are equal (SIGKILL at the limit);
- stdout/stderr written to files in the sample dir and read back up to `output_bytes`;
- a SIGKILL of the whole process group when the child exits, even on success.

Sample directories live under one scratch folder per harness process; a small reaper process (started
once, in its own session) deletes that folder when the harness exits in any way, SIGKILL included, so
no sample directory (holding a testbench) outlives the harness.

Containment can be turned off only explicitly (`ITERTL_CONTAINMENT=none`, Make's `CONTAINMENT=none`);
runs record which mode they used (`containment_mode()`). Without it, what remains is what the runner
did before containers: the child runs as the calling user and could read world-readable files or use
the network if the tool offered a way (the policy, `verilog_tools.policy`, refuses every such way in a
design); RLIMIT_AS and RLIMIT_CPU are per process, not per group; disk use is bounded per file.

Safe to call from many threads at once: nothing is shared between calls except the read-only config.
Cost: the limits are set by util-linux's ``prlimit`` exec'd in front of bwrap and the tool (one more exec,
a few ms per process whatever the parent's size), so the child starts by vfork/posix_spawn; bwrap adds one
container start per process (measured in BENCHMARKS.md, "eval_throughput"). Without a working ``prlimit`` the limits are set by a
preexec function, which forces a full fork: about 25 ms more from a trainer holding torch and a model.
"""
from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from verilog_tools import container

GiB = 1 << 30
MiB = 1 << 20
STDOUT_NAME = ".stdout"
STDERR_NAME = ".stderr"

# Share of the limit by which rusage may read under the CPU time at which RLIMIT_CPU's SIGKILL came:
# 0.9987 s and, on a loaded CI machine (a fresh-clone run, tests on both cores), 0.936 s for 1 s limits.
CPU_ACCOUNTING_SLACK = 0.2


@dataclass
class Limits:
    """Resource limits for one sandboxed process (each step of a simulation gets its own)."""

    wall_seconds: float = field(default=60.0, metadata={"help": "wall-clock limit; the process group is killed at expiry"})
    cpu_seconds: float = field(default=60.0, metadata={"help": "RLIMIT_CPU per process (soft = hard: SIGKILL at the limit)"})
    memory_bytes: int = field(default=4 * GiB, metadata={"help": "RLIMIT_AS: address-space limit per process"})
    output_bytes: int = field(default=1 * MiB, metadata={"help": "stdout/stderr beyond this many bytes sets output_exceeded; at most this much is read back"})
    file_bytes: int = field(default=64 * MiB, metadata={"help": "RLIMIT_FSIZE: largest file the process may write (stdout/stderr files included)"})

    def __post_init__(self):
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "output_bytes", "file_bytes"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        if self.output_bytes > self.file_bytes:
            raise ValueError(f"Limits.output_bytes ({self.output_bytes}) must be <= Limits.file_bytes "
                             f"({self.file_bytes}): the output files are capped by file_bytes")


@dataclass
class RunResult:
    """What one sandboxed process did. `timed_out` covers both the wall-clock and the CPU limit."""

    returncode: int | None          # exit status when it exited normally, else None
    signal: int | None              # the signal that killed it, else None
    timed_out: bool
    output_exceeded: bool           # stdout or stderr passed output_bytes, or SIGXFSZ
    stdout: str
    stderr: str
    wall_seconds: float
    cpu_seconds: float              # user + system CPU of the child and the children it reaped

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_exceeded


@contextlib.contextmanager
def sample_dir(prefix: str = "itertl-") -> Iterator[Path]:
    """A fresh private (0700) temp dir for one sample, removed afterwards even if the child chmod-ed it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=container.scratch_root()))
    try:
        yield path
    finally:
        _remove_tree(path)


def _remove_tree(path: Path) -> None:
    """Delete `path` even where the child removed permissions: on an error, give the entry and its
    folder back their permissions and delete it again, descending as far as permissions were taken."""
    def make_writable_and_retry(_func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700, follow_symlinks=False)
        except (OSError, NotImplementedError):
            return   # not ours to fix: leave it (the scratch folder's reaper tries once more)
        with contextlib.suppress(OSError):
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target, onerror=make_writable_and_retry)
            else:
                os.unlink(target)
    shutil.rmtree(path, onerror=make_writable_and_retry)


def _child_env(argv0: str, cwd: Path) -> dict[str, str]:
    tool_dir = os.path.dirname(os.path.abspath(argv0)) if os.sep in argv0 else ""
    path = ":".join(p for p in (tool_dir, "/usr/bin", "/bin") if p)
    return {"PATH": path, "LANG": "C", "LC_ALL": "C", "HOME": str(cwd), "TMPDIR": str(cwd)}


def _rlimit_settings(limits: Limits) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for the child, never above our own hard limits (setrlimit would fail)."""
    cpu = max(1, int(limits.cpu_seconds + 0.999))
    wanted = [
        # soft = hard: the kernel's SIGKILL at the limit (a contained tool, PID 1, would ignore a SIGXCPU
        # and run one more second to a higher hard limit)
        (resource.RLIMIT_CPU, cpu, cpu),
        (resource.RLIMIT_AS, int(limits.memory_bytes), int(limits.memory_bytes)),
        (resource.RLIMIT_FSIZE, int(limits.file_bytes), int(limits.file_bytes)),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    settings = []
    for which, soft, hard in wanted:
        _, own_hard = resource.getrlimit(which)
        if own_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, own_hard), min(hard, own_hard)
        settings.append((which, soft, hard))
    return settings


_PRLIMIT_FLAGS = {resource.RLIMIT_CPU: "--cpu", resource.RLIMIT_AS: "--as", resource.RLIMIT_FSIZE: "--fsize",
                  resource.RLIMIT_CORE: "--core"}


def _prlimit_argv(tool: str, settings: list[tuple[int, int, int]]) -> list[str]:
    """``prlimit --cpu=S:H ... --``, to be followed by the command it execs."""
    return [tool, *(f"{_PRLIMIT_FLAGS[which]}={soft}:{hard}" for which, soft, hard in settings), "--"]


def _prlimit_prefix(settings: list[tuple[int, int, int]]) -> list[str] | None:
    """The prlimit argv to exec in front of the tool, or None when prlimit cannot be used."""
    tool = _working_prlimit()
    return None if tool is None else _prlimit_argv(tool, settings)


@functools.lru_cache(maxsize=1)
def _working_prlimit() -> str | None:
    """util-linux's prlimit, if it is installed and can set our limits here (checked once)."""
    tool = shutil.which("prlimit", path="/usr/bin:/bin")
    true = shutil.which("true", path="/usr/bin:/bin")
    if tool is None or true is None:
        return None
    probe = _prlimit_argv(tool, _rlimit_settings(Limits())) + [true]
    try:
        ok = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return tool if ok else None


def _rlimit_setter(settings: list[tuple[int, int, int]]):
    """The fallback preexec function: setrlimit calls only (it runs between fork and exec in a threaded parent)."""
    setrlimit = resource.setrlimit

    def apply():
        for which, soft, hard in settings:
            setrlimit(which, (soft, hard))
    return apply


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read_capped(fh, cap: int) -> tuple[str, bool]:
    """The open file's text, at most `cap` bytes (head and tail halves when larger); and whether it was larger.

    Reads through the descriptor the child wrote to, never by path: the child may have replaced the path
    with a symlink to some other file.
    """
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    if size <= cap:
        data = fh.read()
    else:
        head = fh.read(cap // 2)
        fh.seek(size - (cap - cap // 2))
        tail = fh.read()
        data = head + f"\n[... {size - cap} bytes cut ...]\n".encode() + tail
    return data.decode("utf-8", errors="replace"), size > cap


def run_sandboxed(argv: Sequence[str], cwd: Path | str, limits: Limits | None = None, *,
                  readonly: Sequence[Path | str] = (), proc: bool = False) -> RunResult:
    """Run untrusted-input tool `argv` in sample dir `cwd` under `limits` (see module docstring).

    `readonly`: extra files or folders visible (read-only, same path) inside the container.
    `proc`: the container gets a /proc of its own PID namespace (for tools that need it: Yosys).
    DANGEROUS by nature: it executes a program; keep `argv[0]` a trusted tool and `cwd` a fresh sample dir.
    """
    limits = limits or Limits()
    cwd = Path(cwd)
    argv = [str(a) for a in argv]
    wrapped = container.wrap(argv, cwd, readonly, proc)
    start = time.monotonic()
    with open(cwd / STDOUT_NAME, "w+b") as out, open(cwd / STDERR_NAME, "w+b") as err:
        settings = _rlimit_settings(limits)
        prefix = _prlimit_prefix(settings)   # prlimit execs the tool: same pid, same process group
        proc = subprocess.Popen(
            (prefix or []) + wrapped, cwd=cwd, env=_child_env(argv[0], cwd), stdin=subprocess.DEVNULL, stdout=out,
            stderr=err, start_new_session=True, close_fds=True,
            preexec_fn=None if prefix else _rlimit_setter(settings))
        status, cpu, timed_out = _wait_and_kill_group(proc, limits.wall_seconds)
        stdout, out_big = _read_capped(out, limits.output_bytes)
        stderr, err_big = _read_capped(err, limits.output_bytes)
    wall = time.monotonic() - start
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    if wrapped is not argv:
        if returncode is not None and returncode > 128:
            sig, returncode = returncode - 128, None   # the container reports a death by signal as 128 + n
    cpu_limited = cpu_limit_reached(sig, cpu, limits)
    return RunResult(
        returncode=returncode, signal=sig, timed_out=timed_out or cpu_limited,
        output_exceeded=out_big or err_big or sig == signal.SIGXFSZ,
        stdout=stdout, stderr=stderr, wall_seconds=wall, cpu_seconds=cpu)


def cpu_limit_reached(sig: int | None, cpu: float, limits: Limits) -> bool:
    """Whether the child died of its CPU-time limit: SIGXCPU, or SIGKILL once its CPU time reached the
    limit. The kernel's RLIMIT_CPU check and rusage account CPU time differently: children killed at 1 s
    have been read as 0.9987 s and 0.936 s, so the comparison allows CPU_ACCOUNTING_SLACK of the limit
    (without it such a death was a runtime_error instead of a timeout, depending on the machine's load)."""
    if sig == signal.SIGXCPU:
        return True
    return sig == signal.SIGKILL and cpu >= limits.cpu_seconds * (1 - CPU_ACCOUNTING_SLACK)


def _wait_and_kill_group(proc: subprocess.Popen, wall_seconds: float) -> tuple[int, float, bool]:
    """Wait for the child (killing its group at the deadline), kill the group, reap: (status, cpu, timed_out)."""
    pid = proc.pid
    lock = threading.Lock()
    state = {"done": False, "timed_out": False}

    def on_timeout():
        with lock:
            if not state["done"]:
                state["timed_out"] = True
                _kill_group(pid)

    timer = threading.Timer(wall_seconds, on_timeout)
    timer.daemon = True
    timer.start()
    try:
        # Wait without reaping: while the leader is a zombie its pid and group id cannot be reused,
        # so the group kill below cannot hit an unrelated process.
        while True:
            try:
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
                break
            except InterruptedError:
                continue
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        _kill_group(pid)
        _, status, usage = os.wait4(pid, 0)
        proc.returncode = status  # tell Popen it is reaped, so it never waits on a reused pid
    return status, usage.ru_utime + usage.ru_stime, state["timed_out"]
