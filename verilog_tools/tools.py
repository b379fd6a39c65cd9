"""Where the external tools are, which versions they are, and whether the simulator is good enough.

Lookup order for every tool: $ITERTL_TOOLS_DIR, then <repo>/.tools/iverilog-12/bin (built by
`make tools`), then PATH. Versions are read once per process through the sandboxed runner.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
from pathlib import Path

from verilog_tools.errors import UserError
from verilog_tools.runner import Limits, run_sandboxed, sample_dir

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DIR = REPO_ROOT / ".tools" / "iverilog-12" / "bin"
ICARUS_TOOLS = ("iverilog", "vvp")
# Problems whose testbenches need Icarus 12 (they fail under 11 whatever the design is).
ICARUS_11_FAILURES = ("review2015_fancytimer", "review2015_fsm")
_VERSION_LIMITS = Limits(wall_seconds=20, cpu_seconds=20)
_warned_old_simulator = False


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_tool(name: str) -> str:
    """Absolute path of tool `name` (iverilog, vvp, verilator...); UserError naming the fix if absent."""
    env_dir = os.environ.get("ITERTL_TOOLS_DIR")
    candidates = [Path(env_dir) / name] if env_dir else []
    candidates.append(BUNDLED_DIR / name)
    for path in candidates:
        if _is_executable(path):
            return str(path)
    found = shutil.which(name)
    if found:
        return os.path.abspath(found)
    if name in ICARUS_TOOLS:
        raise UserError(f"{name} not found: run `make tools` or install Icarus Verilog 12 "
                        f"(or point ITERTL_TOOLS_DIR at its bin directory)")
    if name.startswith("verilator"):
        raise UserError(f"{name} not found: install Verilator (e.g. `apt-get install verilator`) "
                        f"or point ITERTL_TOOLS_DIR at its bin directory")
    raise UserError(f"{name} not found: install it or point ITERTL_TOOLS_DIR at its directory")


def _version_output(name: str, flag: str) -> str | None:
    try:
        tool = find_tool(name)
    except UserError:
        return None
    with sample_dir() as d:
        result = run_sandboxed([tool, flag], d, _VERSION_LIMITS)
    return result.stdout + result.stderr


def parse_icarus_version(text: str) -> str | None:
    """'Icarus Verilog version 12.0 (stable) (s20221226-...)' -> '12.0 (stable)'."""
    m = re.search(r"version\s+(\d+\.\d+(?:\.\d+)?\s*(?:\([a-z]+\))?)", text or "")
    return m.group(1).strip() if m else None


def parse_verilator_version(text: str) -> str | None:
    """'Verilator 5.006 2023-01-22 rev ...' -> '5.006'."""
    m = re.search(r"Verilator\s+(\d+\.\d+)", text or "")
    return m.group(1) if m else None


@functools.lru_cache(maxsize=1)
def tool_versions() -> dict[str, str | None]:
    """{"iverilog": "12.0 (stable)", "vvp": ..., "verilator": "5.006"}; None for a missing tool. Cached."""
    return {
        "iverilog": parse_icarus_version(_version_output("iverilog", "-V")),
        "vvp": parse_icarus_version(_version_output("vvp", "-V")),
        "verilator": parse_verilator_version(_version_output("verilator", "--version")),
    }


def check_simulator() -> str:
    """The iverilog version, after checking it: UserError if missing or < 11; a warning (once) on 11.x."""
    global _warned_old_simulator
    version = tool_versions()["iverilog"]
    if version is None:
        find_tool("iverilog")  # raises the UserError that names the fix
        raise UserError("could not read the iverilog version from `iverilog -V`: reinstall Icarus "
                        "Verilog 12 with `make tools`")
    major = int(version.split(".")[0])
    if major < 11:
        raise UserError(f"Icarus Verilog {version} is too old: run `make tools` to build 12 "
                        f"(11 is accepted with a warning)")
    if major == 11 and not _warned_old_simulator:
        _warned_old_simulator = True
        log.warning("Icarus Verilog %s found: VerilogEval problems %s fail under 11 whatever the design; "
                    "run `make tools` to use 12", version, " and ".join(ICARUS_11_FAILURES))
    return version
