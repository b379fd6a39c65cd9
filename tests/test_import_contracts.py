"""The layer rules (pyproject.toml [tool.importlinter]) hold: import-linter checks every import statement
of harness, tasks and verilog_tools, those inside functions included, and its report is the failure."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_import_contracts_are_kept():
    # A fresh interpreter in the repository root, so the packages checked are this checkout's; no cache
    # (.import_linter_cache), so an edit is never judged on a stale graph.
    result = subprocess.run([sys.executable, "-c", LINT_IMPORTS, "pyproject.toml", "--no-cache", "--no-logo"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"import-linter contracts broken:\n{report}"
    assert "0 broken" in report, report
