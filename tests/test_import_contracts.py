"""The layer rules (pyproject.toml [tool.importlinter]) hold: import-linter checks every import statement
of harness, tasks and verilog_tools, those inside functions included, and its report is the failure.
A copy of the tree with violations planted shows that each harness contract does fail."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
ROOT_PACKAGES = ("harness", "tasks", "verilog_tools")
LAYERS = "harness layers: commands on top, runs at the bottom (docs/layout.md)"
ACYCLIC = "No import cycles in harness"
NO_LOOP = "eval and reports never import the training loop or the trainer"
# (file, line appended, what the report must then say)
PLANTED = (
    ("harness/reports/data.py", "from harness.loop import loop  # planted",  # independent layers, eval
     "harness.reports.data -> harness.loop.loop"),
    ("harness/model/models.py", "import harness.commands.train  # planted",  # a low layer imports a high one
     "harness.model.models -> harness.commands.train"),
    ("harness/loop/launch.py", "from harness.loop import dispatch  # planted",  # dispatch imports launch
     "No cycles are allowed in harness.loop."),
)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    # A fresh interpreter in ``cwd``, so the packages checked are the ones there (the current directory
    # comes first on sys.path); no cache (.import_linter_cache), so an edit is never judged on a stale graph.
    return subprocess.run([sys.executable, "-c", LINT_IMPORTS, "pyproject.toml", "--no-cache", "--no-logo"],
                          cwd=cwd, capture_output=True, text=True, timeout=180)


def test_import_contracts_are_kept():
    result = lint_imports(REPO)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"import-linter contracts broken:\n{report}"
    assert "0 broken" in report, report
    for name in (LAYERS, ACYCLIC, NO_LOOP):
        assert f"{name} KEPT" in report, report


def _python_only(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if not n.endswith(".py") and not (Path(folder) / n).is_dir() or n == "__pycache__"]


def test_planted_violations_break_the_harness_contracts(tmp_path):
    for package in ROOT_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=_python_only)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for rel, line, _ in PLANTED:
        with open(tmp_path / rel, "a", encoding="utf-8") as fh:
            fh.write(f"\n{line}\n")
    result = lint_imports(tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    for name in (LAYERS, ACYCLIC, NO_LOOP):
        assert f"{name} BROKEN" in report, report
    for _, _, said in PLANTED:
        assert said in report, report
