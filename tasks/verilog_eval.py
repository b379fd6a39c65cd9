"""Loaders for VerilogEval v1 (Human, Machine) and v2 (spec-to-rtl, code-complete) into `Problem`s.

v1 (release/1.0.0): ``data/VerilogEval_<Set>.jsonl`` rows hold the module header (``prompt``), the
body (``canonical_solution``) and a testbench that already contains ``reference_module``; the
descriptions sit in ``descriptions/VerilogDescription_<Set>.jsonl`` in a different order and are
joined by ``task_id``. A model completes the body (``completion_mode="body"``).

v2 (main): one folder per task kind holding ``ProbNNN_name_{prompt.txt,ref.sv,test.sv}`` (plus
``_ifc.txt`` for code-complete). The design under test is ``TopModule``; the test bench instantiates
``RefModule`` from ref.sv, so the trusted sources are test.sv + ref.sv. A model writes the whole
module (``completion_mode="module"``). Files that do not form a complete set (upstream ships a stray
``Prob062_bugs_mux2.sv``) are ignored.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from tasks.problem import Problem
from tasks.prompts import build_prompt
from tasks.jsonl import iter_jsonl
from verilog_tools.errors import UserError
from verilog_tools.text import find_module_header

V1_SETS = {"human": "Human", "machine": "Machine"}
V2_FOLDERS = {"spec-to-rtl": "dataset_spec-to-rtl", "code-complete": "dataset_code-complete-iccad2023"}
V1_FIELDS = ("task_id", "prompt", "test")   # required; canonical_solution and description optional
V1_OPTIONAL = ("canonical_solution", "description", "detail_description")
_V2_NAME = re.compile(r"^(Prob\d{3}_\w+?)_prompt\.txt$")


def v1_files(which: str) -> tuple[str, str]:
    """Relative paths of the problems file and the descriptions file of a v1 set."""
    name = V1_SETS[which]
    return f"data/VerilogEval_{name}.jsonl", f"descriptions/VerilogDescription_{name}.jsonl"


def load_v1(root: Path, which: str) -> list[Problem]:
    """VerilogEval v1 ``which`` ("human" or "machine") from an upstream checkout at ``root``."""
    problems_rel, descriptions_rel = v1_files(which)
    return load_v1_jsonl(Path(root) / problems_rel, Path(root) / descriptions_rel,
                         benchmark=f"verilog-eval-v1-{which}")


def read_descriptions(path: Path) -> dict[str, str]:
    """``task_id -> detail_description`` from a v1 descriptions file."""
    out: dict[str, str] = {}
    for where, row in iter_jsonl(path, "descriptions"):
        if not isinstance(row, dict) or not isinstance(row.get("task_id"), str) \
                or not isinstance(row.get("detail_description"), str):
            raise UserError(f"{where}: a description row needs string fields task_id and detail_description")
        out[row["task_id"]] = row["detail_description"]
    return out


def load_v1_jsonl(problems_path: Path, descriptions_path: Path | None = None, *,
                  benchmark: str = "problems-file") -> list[Problem]:
    """Problems in v1's JSONL format; the description comes from the row itself (``description`` or
    ``detail_description``) or else from ``descriptions_path`` joined by ``task_id``."""
    descriptions = read_descriptions(Path(descriptions_path)) if descriptions_path else {}
    problems: list[Problem] = []
    seen: set[str] = set()
    for where, row in iter_jsonl(problems_path, "problems"):
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected a JSON object with fields {', '.join(V1_FIELDS)}")
        for name in V1_FIELDS:
            if not isinstance(row.get(name), str):
                raise UserError(f"{where}: field {name!r} missing or not a string "
                                f"(v1 rows need {', '.join(V1_FIELDS)})")
        task_id = row["task_id"]
        if task_id in seen:
            raise UserError(f"{where}: duplicate task_id {task_id!r}")
        seen.add(task_id)
        for name in V1_OPTIONAL:
            if row.get(name) is not None and not isinstance(row[name], str):
                raise UserError(f"{where}: field {name!r} must be a string when present")
        description = row.get("description") or row.get("detail_description") or descriptions.get(task_id)
        if description is None and descriptions_path is not None:
            raise UserError(f"{where}: no description for task {task_id!r} in {descriptions_path}")
        problem = Problem(task_id=task_id, benchmark=benchmark, description=description or "",
                          header=row["prompt"], reference=row["prompt"] + (row.get("canonical_solution") or ""),
                          testbench=row["test"], top="tb", dut_module="top_module",
                          completion_mode="body")
        # Without a description there is nothing to prompt a model with; scoring samples needs none
        # (VerilogEval v1's own example files have none), so the check waits for `require_prompts`.
        problems.append(replace(problem, prompt=build_prompt(problem)) if description else problem)
    return problems


def require_prompts(problems: list[Problem]) -> None:
    """A one-line UserError when a problem has no prompt, i.e. a model cannot be asked to solve it."""
    missing = [p.task_id for p in problems if not (p.prompt or p.description)]
    if missing:
        raise UserError(f"no description for task {missing[0]!r} ({len(missing)} task(s) without one): "
                        f"prompting a model needs a 'description' field in each problems row; "
                        f"scoring SAMPLES= or MODEL=reference needs none")


def v2_task_names(folder: Path, with_ifc: bool) -> list[str]:
    """Sorted ``ProbNNN_name`` stems that have every file a task needs."""
    needed = ("_prompt.txt", "_ref.sv", "_test.sv") + (("_ifc.txt",) if with_ifc else ())
    stems = [m.group(1) for p in folder.iterdir() if (m := _V2_NAME.match(p.name))]
    return sorted(s for s in stems if all((folder / f"{s}{suffix}").is_file() for suffix in needed))


def v2_files(root: Path, kind: str) -> list[str]:
    """Relative paths of every file the v2 loader reads for ``kind``."""
    folder_name = V2_FOLDERS[kind]
    with_ifc = kind == "code-complete"
    suffixes = ("_prompt.txt", "_ref.sv", "_test.sv") + (("_ifc.txt",) if with_ifc else ())
    return [f"{folder_name}/{stem}{suffix}"
            for stem in v2_task_names(Path(root) / folder_name, with_ifc) for suffix in suffixes]


def load_v2(root: Path, kind: str) -> list[Problem]:
    """VerilogEval v2 ``kind`` ("spec-to-rtl" or "code-complete") from an upstream checkout."""
    folder = Path(root) / V2_FOLDERS[kind]
    if not folder.is_dir():
        raise UserError(f"VerilogEval v2 folder {folder} not found; point VERILOG_EVAL_V2_DIR at a "
                        f"checkout of NVlabs/verilog-eval (main)")
    with_ifc = kind == "code-complete"
    problems = [_v2_problem(folder, stem, kind, with_ifc) for stem in v2_task_names(folder, with_ifc)]
    if not problems:
        raise UserError(f"no VerilogEval v2 tasks (ProbNNN_name_prompt.txt + _ref.sv + _test.sv) in {folder}")
    return problems


def _v2_problem(folder: Path, stem: str, kind: str, with_ifc: bool) -> Problem:
    def read(suffix: str) -> str:
        return (folder / f"{stem}{suffix}").read_text(encoding="utf-8")

    ref = read("_ref.sv")
    if not re.search(r"\bmodule\s+RefModule\b", ref):
        raise UserError(f"{folder / (stem + '_ref.sv')}: no module RefModule; is this a VerilogEval v2 folder?")
    reference = re.sub(r"\bRefModule\b", "TopModule", ref)
    header = read("_ifc.txt") if with_ifc else find_module_header(reference, "TopModule")
    if not header or "TopModule" not in header:
        raise UserError(f"{folder / stem}: cannot find the TopModule interface")
    problem = Problem(task_id=stem, benchmark=f"verilog-eval-v2-{kind}", description=read("_prompt.txt"),
                      header=header.strip() + "\n", reference=reference,
                      testbench=read("_test.sv") + "\n" + ref, top="tb", dut_module="TopModule",
                      completion_mode="module")
    return replace(problem, prompt=build_prompt(problem))
