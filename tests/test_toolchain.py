"""The simulator the suite runs with, and the guarantees of tools/build_iverilog.sh (`make tools`).

VerilogEval's testbenches need Icarus Verilog 12; under CI (CI=true) anything else fails here.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from verilog_tools.tools import find_tool, tool_versions

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "build_iverilog.sh"
IN_CI = os.environ.get("CI") == "true"


def test_simulator_version_is_12_in_ci():
    versions = tool_versions()
    iverilog = versions["iverilog"]
    assert iverilog is not None, "iverilog not found: run `make tools`"
    major = int(iverilog.split(".")[0])
    assert major >= 11, f"Icarus Verilog {iverilog} is too old"
    if IN_CI:
        assert major == 12, f"CI must run Icarus Verilog 12.x, found {iverilog}: call `make tools` first"
    assert versions["vvp"] == iverilog, f"iverilog {iverilog} paired with vvp {versions['vvp']}"


def test_verilator_present_in_ci():
    if not IN_CI and tool_versions()["verilator"] is None:
        pytest.skip("verilator not installed (make tools installs it)")
    assert tool_versions()["verilator"] is not None


def test_iverilog_and_vvp_come_from_one_install():
    assert Path(find_tool("iverilog")).parent == Path(find_tool("vvp")).parent


def test_make_tools_is_a_fast_noop_once_available():
    """A second `make tools` must not rebuild: the script answers within a second."""
    built = (REPO / ".tools" / "iverilog-12" / ".itertl-stamp").is_file()
    on_path = shutil.which("iverilog") and tool_versions()["iverilog"].startswith("12.")
    if not (built or on_path or IN_CI):
        pytest.skip("no Icarus Verilog 12 yet: `make tools` would build it (minutes)")
    start = time.monotonic()
    out = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 2.0
    assert re.search(r"version 12\.\d+", out.stdout), out.stdout


def test_build_refuses_an_archive_with_the_wrong_sha256(tmp_path):
    """Downloads that do not match the pinned hash are rejected and no prefix is created."""
    repo = tmp_path / "repo"
    (repo / "tools").mkdir(parents=True)
    shutil.copy2(SCRIPT, repo / "tools" / SCRIPT.name)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    # A curl that "downloads" garbage: stands in for a tampered mirror without touching the network.
    (fake_bin / "curl").write_text('#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && echo garbage >"$2"; '
                                   'shift; done\nexit 0\n')
    (fake_bin / "curl").chmod(0o755)
    prefix = repo / ".tools" / "iverilog-12"
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(tmp_path), "ITERTL_IVERILOG_PREFIX": str(prefix)}
    system = shutil.which("iverilog", path=env["PATH"])  # none at all in the Docker image
    if system and subprocess.run([system, "-V"], capture_output=True, text=True, env=env).stdout.startswith(
            "Icarus Verilog version 12"):
        pytest.skip("a system iverilog 12 makes the script build nothing")
    out = subprocess.run([str(repo / "tools" / SCRIPT.name)], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 2
    assert "sha256 mismatch" in out.stdout + out.stderr
    assert "could not download a verified iverilog" in out.stderr
    assert not prefix.exists()
    assert list((repo / ".cache" / "tools").iterdir()) == []
