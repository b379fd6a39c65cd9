"""The container around every tool process, tested with a shell instead of a simulator, and the
cleanup after a SIGKILL of the harness (no simulator and no sample directory survives it)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from verilog_tools import container, runner
from verilog_tools.errors import UserError
from verilog_tools.runner import Limits, run_sandboxed, sample_dir

SH = "/bin/sh"


@pytest.fixture(autouse=True)
def _contained(monkeypatch):
    monkeypatch.setenv(container.ENV_VAR, "bwrap")
    try:
        container.check_containment()
    except UserError as exc:   # a machine without user namespaces: the opt-out path is tested below
        pytest.skip(str(exc))

SYSTEM_PYTHON = "/usr/bin/python3"   # in /usr, so visible in the container


def sh(script: str, d: Path, **kw):
    return run_sandboxed([SH, "-c", script], d, **kw)


def test_only_the_sample_dir_and_usr_exist(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("itertl-secret-5a1f")  # a value no path or message contains (the tmp path once held "42")
    with sample_dir() as d:
        r = sh(f"ls /; cat {secret} /etc/passwd $HOME/.bashrc 2>&1; echo ok > here.txt; "
               f"echo x > /usr/x 2>&1; echo x > {tmp_path}/out.txt 2>&1", d)
        assert (d / "here.txt").read_text() == "ok\n"
    top = set(r.stdout.split("\n")[0:8])
    assert "etc" not in top and "home" not in top and "proc" not in top and "usr" in top
    assert "itertl-secret-5a1f" not in r.stdout and "root:" not in r.stdout
    assert not (tmp_path / "out.txt").exists()


def test_no_network_even_to_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        with sample_dir() as d:
            r = run_sandboxed(["/bin/bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected"], d)
        assert "connected" not in r.stdout and r.returncode != 0
    finally:
        listener.close()


def test_host_processes_are_invisible_and_unkillable():
    with sample_dir() as d:
        r = sh(f"kill -0 {os.getpid()} 2>/dev/null && echo visible; echo $$", d)
    assert "visible" not in r.stdout
    assert int(r.stdout.split()[-1]) < 10   # a new PID namespace: the shell is one of its first processes


def test_a_signal_death_inside_is_reported_as_a_signal():
    # A real fault (not a signal the tool sends itself: as PID 1 of its namespace it ignores those).
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is not installed")
    with sample_dir() as d:
        r = run_sandboxed([SYSTEM_PYTHON, "-c", "import ctypes; ctypes.string_at(0)"], d)
    assert r.signal == signal.SIGSEGV and r.returncode is None


def test_the_tools_cpu_time_is_counted():
    with sample_dir() as d:
        r = sh("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done", d)
    assert r.ok and r.cpu_seconds >= 0.05


def test_limits_hold_inside_the_container():
    fast = Limits(wall_seconds=2, cpu_seconds=1, memory_bytes=1 << 30, output_bytes=4096, file_bytes=1 << 20)
    with sample_dir() as d:
        busy = sh("while :; do :; done", d, limits=Limits(wall_seconds=30, cpu_seconds=1))
        hang = sh("sleep 60 & sleep 60", d, limits=fast)
        flood = sh("while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done", d, limits=fast)
    # The CPU limit's soft and hard values are equal: SIGKILL at the limit (PID 1 would ignore SIGXCPU).
    assert busy.timed_out and busy.signal == signal.SIGKILL and hang.timed_out and hang.wall_seconds < 5
    # the tool's CPU reaches the harness through bwrap's wait (read up to the accounting slack under 1 s)
    assert busy.cpu_seconds >= 1.0 * (1 - runner.CPU_ACCOUNTING_SLACK)
    assert flood.output_exceeded and len(flood.stdout) < 8192


def test_opt_out_is_explicit_and_recorded(monkeypatch):
    monkeypatch.setenv(container.ENV_VAR, "none")
    assert container.check_containment() == "none"
    with sample_dir() as d:
        assert "etc" in sh("ls /", d).stdout.split()
    monkeypatch.setenv(container.ENV_VAR, "docker")
    with pytest.raises(UserError, match="bwrap .* or none"):
        container.containment_mode()


def test_a_missing_bwrap_is_one_line_naming_the_opt_out(monkeypatch):
    monkeypatch.setattr(container, "_probe", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(UserError) as err:
        container.check_containment()
    assert "CONTAINMENT=none" in str(err.value) and "\n" not in str(err.value)


HARNESS = textwrap.dedent("""
    import sys, time
    from tasks.evaluate import evaluate
    from tasks.problem import Problem
    from verilog_tools.icarus import SimLimits
    tb = open(sys.argv[1]).read()
    good = "module top_module(input [7:0] a, input [7:0] b, output [7:0] y); assign y = a ^ b; endmodule"
    spin = ("module top_module(input [7:0] a, input [7:0] b, output [7:0] y);"
            " integer n = 0; initial while (1) n = n + 1; assign y = a ^ b; endmodule")
    problems = [Problem(task_id=f"p{i}", benchmark="t", description="x", header="", reference=good,
                        testbench=tb, completion_mode="module") for i in range(2)]
    samples = [{"task_id": f"p{i}", "completion_id": 0, "completion": spin} for i in range(2)]
    limits = SimLimits(compile_wall_seconds=120, sim_wall_seconds=120, cpu_seconds=120)
    print("started", flush=True)
    evaluate(problems, samples, workers=2, limits=limits, ks=(1,), progress=False)
""")


def _processes_naming(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


@pytest.mark.slow
def test_kill_9_of_the_harness_leaves_no_simulator_and_no_sample_dir(tmp_path):
    """The acceptance check of the verifier issue, on a real evaluation with endless simulations."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    tb = Path(__file__).with_name("hostile") / "testbench.sv"
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(tb)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 90
    while not _processes_naming(" sim.vvp") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_naming(" sim.vvp"), "the simulations never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 15
    while (_processes_naming(str(scratch)) or list(scratch.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_naming(str(scratch)) == []
    assert list(scratch.iterdir()) == []
