"""Bounded checking of untrusted text: extraction, canonical text and policy run in worker processes.

Everything the harness does with a completion before a tool runs it (finding the code in it, making it
canonical, parsing it with slang and walking the tree) happens here, in a small pool of long-lived
worker processes, never in the harness process. Each call has a wall-clock limit (`CHECK_SECONDS`) and
each worker an address-space limit (`WORKER_MEMORY_BYTES`): a worker that overruns is killed and
replaced, and that sample alone is `rejected` with the reason, so one pathological completion cannot
stall the others or exhaust the harness's memory. Workers are fresh interpreters (no
copy of a trainer's memory or threads) and exit when the harness's end of their pipe closes, so they
never outlive it.

`check_design(text, context)` and `check_completion(completion, ...)` return a `Checked`: the
canonical text and its de-duplication key, or the reason it was refused.
"""
from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from verilog_tools.canonical import DEFAULT_MAX_BYTES, DesignRefused, canonical_text, design_key
from verilog_tools.policy import PolicyContext

CHECK_SECONDS = 20.0                  # the longest a check may take; a real design takes milliseconds
WORKER_MEMORY_BYTES = 2 << 30
_MAX_WORKERS = max(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Checked:
    """The outcome of checking one design before any tool runs it."""

    text: str | None = None           # the canonical design (None when there is none to run)
    key: str | None = None            # design_key(text): what de-duplication compares
    violations: tuple[str, ...] = ()  # policy refusals, or why the text could not be checked at all
    deferred: tuple[str, ...] = ()    # unparsable text or unresolved names: refused unless the compiler
                                      # fails on them too (see policy.PolicyResult)
    no_code: bool = False             # the completion holds no Verilog

    @property
    def rejected(self) -> bool:
        return bool(self.violations)

    def reason(self) -> str:
        return "design rejected by policy:\n" + "\n".join(self.violations)


def _check_text(design: str, context: PolicyContext, max_bytes: int) -> Checked:
    from verilog_tools.policy import check_policy
    try:
        text = canonical_text(design, max_bytes=max_bytes)
    except DesignRefused as refused:
        return Checked(violations=(refused.reason,))
    result = check_policy(text, context)
    return Checked(text=text, key=design_key(text), violations=tuple(result.violations),
                   deferred=tuple(result.parse_errors + result.unresolved))


def _oversized(completion: str, max_bytes: int) -> str | None:
    """Why a completion is too large to read (extraction is linear, but megabytes of prose are no design)."""
    if len(completion) > 4 * max_bytes:
        return f"too large: a completion of {len(completion)} characters, the limit is {4 * max_bytes}"
    return None


def _check_completion(completion: str, header: str, mode: str, module_name: str | None,
                      context: PolicyContext, max_bytes: int) -> Checked:
    from verilog_tools.text import extract_code
    too_large = _oversized(completion, max_bytes)
    if too_large:
        return Checked(violations=(too_large,))
    code = extract_code(completion, header=header, mode=mode, module_name=module_name)
    if code is None:
        return Checked(no_code=True)
    return _check_text(header + code if mode == "body" else code, context, max_bytes)


def _extract(completion: str, header: str, mode: str, module_name: str | None,
             max_bytes: int) -> tuple[str | None, int]:
    from verilog_tools.text import count_modules, extract_code
    if _oversized(completion, max_bytes):
        return None, 0
    code = extract_code(completion, header=header, mode=mode, module_name=module_name)
    return code, (count_modules(code) if code is not None else 0)


def _testbench_modules(testbench: str) -> frozenset[str]:
    from verilog_tools.policy import testbench_modules
    return testbench_modules(testbench)


_FUNCTIONS = {"text": _check_text, "completion": _check_completion, "testbench": _testbench_modules,
              "extract": _extract}


def _serve(memory_bytes: int) -> None:   # the worker process's main loop (see `_Worker`)
    import resource
    import signal
    import sys
    from multiprocessing.connection import Connection
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the harness's to handle; EOF ends a worker
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    requests, replies = Connection(os.dup(0), writable=False), Connection(os.dup(1), readable=False)
    sys.stdout = sys.stderr   # fd 1 carries replies only
    import verilog_tools.policy  # noqa: F401  (load slang once, before the first call)
    while True:
        try:
            name, args = requests.recv()
        except (EOFError, OSError):
            return   # the harness is gone
        try:
            function = _FUNCTIONS[name] if isinstance(name, str) else name   # else a function pickled by name
            reply = ("ok", function(*args))
        except MemoryError:
            reply = ("error", "the policy check ran out of memory")
        except Exception as exc:   # a slang failure on odd input is that sample's problem, not the run's
            reply = ("error", f"the policy check failed: {type(exc).__name__}: {exc}")
        try:
            replies.send(reply)
        except OSError:
            return   # the harness stopped listening (it was interrupted or killed)


class _Worker:
    """One worker process: a fresh interpreter (no copy of a trainer's memory or threads) that reads
    pickled requests on its stdin and answers on its stdout; EOF on stdin (the harness died) ends it."""

    def __init__(self):
        from multiprocessing.connection import Connection
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from verilog_tools.checker import _serve; _serve({WORKER_MEMORY_BYTES})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self.requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()

    def call(self, name: str, args: tuple, timeout: float):
        """(ok, value): the function's result, or (False, reason) after a timeout or a crash."""
        try:
            self.requests.send((name, args))
            if not self.replies.poll(timeout):
                self.kill()
                return False, f"the policy check did not finish within {timeout:g} s"
            status, value = self.replies.recv()
        except (EOFError, OSError):
            self.kill()
            return False, "the policy check crashed (memory limit or a parser failure)"
        return status == "ok", value

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(5)
        for conn in (self.requests, self.replies):
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class _Pool:
    """Workers handed out one caller at a time; created on demand up to `_MAX_WORKERS`."""

    def __init__(self):
        self.idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.count = 0

    def _take(self) -> _Worker:
        with self.lock:
            if self.idle.empty() and self.count < _MAX_WORKERS:
                self.count += 1
                return _Worker()
        return self.idle.get()

    def call(self, name: str, args: tuple, timeout: float = CHECK_SECONDS):
        worker = self._take()
        ok, value = worker.call(name, args, timeout)
        if worker.alive:
            self.idle.put(worker)
        else:
            self.idle.put(_Worker())   # keep the pool's size: replace the one that was killed
        return ok, value


    def shutdown(self) -> None:
        """Stop every idle worker (the next call starts new ones)."""
        while not self.idle.empty():
            self.idle.get().kill()
            with self.lock:
                self.count -= 1


_pool = _Pool()


def shutdown() -> None:
    """Stop the checker's worker processes now (they also end by themselves when the harness does)."""
    _pool.shutdown()
_tb_cache: dict[str, frozenset[str]] = {}


def check_design(design: str, context: PolicyContext = PolicyContext(), *,
                 max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = CHECK_SECONDS) -> Checked:
    """Canonical text + policy for a whole design, in a bounded worker (at most `timeout` seconds)."""
    ok, value = _pool.call("text", (design, context, max_bytes), min(timeout, CHECK_SECONDS))
    return value if ok else Checked(violations=(value,))


def check_completion(completion: str, *, header: str, mode: str, module_name: str | None,
                     context: PolicyContext = PolicyContext(), max_bytes: int = DEFAULT_MAX_BYTES,
                     timeout: float = CHECK_SECONDS) -> Checked:
    """Extract the design from a model's completion, then `check_design` it, in a bounded worker."""
    ok, value = _pool.call("completion", (completion, header, mode, module_name, context, max_bytes),
                           min(timeout, CHECK_SECONDS))
    return value if ok else Checked(violations=(value,))


def extract(completion: str, *, header: str, mode: str = "module", module_name: str | None = None,
            max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = CHECK_SECONDS) -> tuple[str | None, int]:
    """(the code in a completion or None, how many modules it defines), found in a bounded worker; a
    completion too large or too slow to read counts as holding no code."""
    ok, value = _pool.call("extract", (completion, header, mode, module_name, max_bytes), min(timeout, CHECK_SECONDS))
    return value if ok else (None, 0)


def call_bounded(function, *args, timeout: float = CHECK_SECONDS) -> tuple[bool, object]:
    """`function(*args)` in a checker worker, for other reading of untrusted text (a module-level function:
    it travels pickled by name). (True, its result), or (False, why not) after an exception, a timeout
    (at most `timeout`, capped at CHECK_SECONDS) or the worker's memory limit."""
    return _pool.call(function, args, min(timeout, CHECK_SECONDS))


def context_for(testbench: str, external_modules=()) -> PolicyContext:
    """The policy context of a (trusted) testbench: its module names are reserved. Cached per text."""
    if testbench not in _tb_cache:
        ok, value = _pool.call("testbench", (testbench,))
        if not ok:
            raise RuntimeError(f"could not read the testbench's module names: {value}")
        _tb_cache[testbench] = value
    return PolicyContext(reserved_modules=_tb_cache[testbench], external_modules=frozenset(external_modules))
