"""The sandboxed runner: one small evil child per property (argv only, never a shell string from us).

These properties (limits, group kill, capped output) are those of the runner itself, checked with
Python children that read /proc and print their pids, so they run with containment off; the same
limits inside the container are checked in tests/test_containment.py."""
from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from verilog_tools import runner
from verilog_tools.runner import Limits, RunResult, run_sandboxed, sample_dir

PY = sys.executable
FAST = Limits(wall_seconds=3, cpu_seconds=3, memory_bytes=1 << 30, output_bytes=64 << 10, file_bytes=1 << 20)


@pytest.fixture(autouse=True, params=["prlimit", "preexec"])
def limit_mechanism(request, monkeypatch):
    """Every property holds both with prlimit exec'd in front of the tool and with the preexec fallback."""
    monkeypatch.setenv("ITERTL_CONTAINMENT", "none")
    if request.param == "prlimit" and runner._working_prlimit() is None:
        pytest.skip("util-linux prlimit is not usable here")
    if request.param == "preexec":
        monkeypatch.setattr(runner, "_working_prlimit", lambda: None)
    return request.param


def test_limits_are_those_asked_for_in_either_mechanism(limit_mechanism, tmp_path):
    code = "print(open('/proc/self/limits').read())"
    result = run_sandboxed([PY, "-c", code], tmp_path, Limits(cpu_seconds=7, memory_bytes=3 << 30, file_bytes=5 << 20))
    rows = {line[:26].strip(): line[26:].split()[:2] for line in result.stdout.splitlines()[1:]}
    assert rows["Max cpu time"] == ["7", "7"] and rows["Max core file size"] == ["0", "0"]
    assert rows["Max address space"] == [str(3 << 30)] * 2 and rows["Max file size"] == [str(5 << 20)] * 2


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a container's init may never reap killed orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int, within: float = 2.0) -> bool:
    """True once `pid` is dead (SIGKILL delivery to a group is asynchronous, so allow a moment)."""
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def run(argv, limits=FAST) -> RunResult:
    with sample_dir() as d:
        return run_sandboxed(argv, d, limits)


def test_exit_code_and_output_are_captured():
    r = run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.returncode, r.signal, r.stdout, r.stderr) == (3, None, "out\n", "err\n")
    assert not r.timed_out and not r.output_exceeded and not r.ok


def test_argv_is_never_given_to_a_shell(tmp_path):
    target = tmp_path / "pwned"
    r = run(["/bin/echo", f"x; touch {target}", f"$(touch {target})"])
    assert r.ok and "touch" in r.stdout and not target.exists()


def test_environment_is_scrubbed_and_home_is_the_sample_dir(monkeypatch):
    monkeypatch.setenv("ITERTL_SECRET_TOKEN", "hunter2")
    with sample_dir() as d:
        r = run_sandboxed(["/usr/bin/env"], d, FAST)
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert "ITERTL_SECRET_TOKEN" not in env
    assert env["HOME"] == env["TMPDIR"] == str(d) and env["LANG"] == "C"
    assert env["PATH"].split(":")[-2:] == ["/usr/bin", "/bin"]


def test_stdin_is_closed():
    start = time.monotonic()
    r = run(["/bin/cat"])
    assert r.ok and r.stdout == "" and time.monotonic() - start < 2


def test_grandchild_sleeping_forever_is_killed_even_when_the_child_succeeds():
    r = run(["/bin/sh", "-c", "sleep 1000 & echo $!; exit 0"])
    assert r.returncode == 0
    assert gone(int(r.stdout.split()[0]))


def test_hang_is_killed_at_the_wall_clock_limit_with_its_process_group():
    limits = Limits(wall_seconds=1, cpu_seconds=5)
    start = time.monotonic()
    r = run(["/bin/sh", "-c", "sleep 1000 & echo $!; sleep 1000"], limits)
    elapsed = time.monotonic() - start
    assert r.timed_out and r.signal == signal.SIGKILL and r.returncode is None
    assert 0.9 < elapsed < 1.5
    assert gone(int(r.stdout.split()[0]))


def test_busy_loop_is_stopped_by_the_cpu_limit():
    start = time.monotonic()
    r = run([PY, "-c", "while True: pass"], Limits(wall_seconds=10, cpu_seconds=1))
    assert r.timed_out and r.signal in (signal.SIGXCPU, signal.SIGKILL)
    assert 0.8 < r.cpu_seconds and time.monotonic() - start < 4


def test_printing_forever_is_capped_by_the_file_size_limit():
    r = run(["/usr/bin/yes", "flood"], FAST)
    assert r.output_exceeded and r.signal == signal.SIGXFSZ
    assert len(r.stdout) < FAST.output_bytes + 100 and "bytes cut" in r.stdout


def test_output_over_the_read_back_cap_is_flagged_but_not_killed():
    r = run([PY, "-c", "print('a' * 100_000); print('END')"], FAST)
    assert r.returncode == 0 and r.output_exceeded and not r.ok
    assert r.stdout.endswith("END\n") and len(r.stdout) < FAST.output_bytes + 100


def test_memory_allocation_is_limited():
    limits = Limits(wall_seconds=5, cpu_seconds=5, memory_bytes=256 << 20)
    r = run([PY, "-c", "x = bytearray(1 << 30); print('allocated')"], limits)
    assert r.returncode != 0 and "allocated" not in r.stdout and "MemoryError" in r.stderr


def test_core_dumps_are_off_and_file_size_is_limited():
    r = run(["/bin/sh", "-c", "ulimit -c; ulimit -f"])
    core, fsize_blocks = r.stdout.split()
    assert core == "0" and int(fsize_blocks) * 512 == FAST.file_bytes


def test_child_replacing_its_stdout_file_with_a_symlink_cannot_leak_another_file():
    r = run(["/bin/sh", "-c", "echo hi; rm .stdout; ln -s /etc/passwd .stdout"])
    assert r.stdout == "hi\n"


def test_sample_dir_is_removed_even_when_the_child_locks_it():
    with sample_dir() as d:
        run_sandboxed(["/bin/sh", "-c", "mkdir -p a/b && touch a/b/f && chmod 000 a/b a"], d, FAST)
    assert not d.exists()


def test_many_threads_at_once_get_their_own_results():
    def one(i):
        return run(["/bin/sh", "-c", f"sleep 0.05; echo {i}"])
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(16)]
    assert all(r.ok for r in results)


@pytest.mark.parametrize("field,value", [("wall_seconds", 0), ("memory_bytes", -1), ("output_bytes", "1")])
def test_limits_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_a_kill_at_the_cpu_limit_read_a_little_under_it_is_a_timeout():
    """rusage read 0.9987 s and 0.936 s for children the kernel killed at their 1 s RLIMIT_CPU (seen in
    CI, the second on a fresh clone with the suite on both cores): timeouts."""
    from verilog_tools.runner import cpu_limit_reached

    limits = Limits(wall_seconds=10, cpu_seconds=1)
    assert cpu_limit_reached(signal.SIGKILL, 0.9987, limits)
    assert cpu_limit_reached(signal.SIGKILL, 0.936, limits)
    assert cpu_limit_reached(signal.SIGKILL, 4.7, Limits(wall_seconds=10, cpu_seconds=5))
    assert cpu_limit_reached(signal.SIGXCPU, 0.2, limits)
    assert not cpu_limit_reached(signal.SIGKILL, 0.5, limits)   # killed by something else
    assert not cpu_limit_reached(None, 1.0, limits)
