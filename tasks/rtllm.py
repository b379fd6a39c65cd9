"""RTLLM v2.0 (github.com/hkust-zhiyao/RTLLM, 50 designs, MIT) as `Problem`s, judged unforgeably.

Upstream layout: ``<Category>/<Group>/<design>/`` holding ``design_description.txt`` (the prompt),
``testbench.v``, ``verified_<name>.v`` (the reference; its top module is often named ``verified_...``)
and, for a few designs, data files the testbench reads. Upstream's flow runs Synopsys VCS and greps the
log for the testbench's ``Your Design Passed`` line, which any design can print itself.

What this module does to the upstream files (nothing else is changed):

* **Verdict**: each string literal of the testbench that is its pass line (``Your Design Passed``)
  becomes ``"Mismatches: 0 in 1 samples"``; each end-of-run failure line (``=== Error ===``,
  ``=== Failed ===``, ``Test completed with %d failures`` ...) becomes ``"Mismatches: 1 in 1 samples
  (upstream: <its text>)"`` with its format arguments kept. The verifier (`verilog_tools.icarus`)
  prefixes those literals with a per-run nonce and reads only nonce lines, so a design that prints a
  pass line gains nothing; no verdict at all (a design that hangs or stops the run) is not a pass.
  ``mismatches`` is therefore 1 for a failed design, not upstream's own failure count.
* **Reference**: the ``verified_*`` top module is renamed to the module the testbench instantiates
  (helper modules are kept), so ``MODEL=reference`` is a self-check.
* **Data files** (``test_data.dat``, ``reference.dat``, ``*.txt``) are the testbench's (trusted) input:
  ``Problem.data_files`` carries their bytes, and the verifier stages them read-only beside the compiled
  simulation (``simulate(..., data_files=)``). The design itself may never do file I/O (the policy
  refuses it). Their sha256 are in ``Problem.meta["data_sha256"]``.
* **Errata** (`ERRATA`): explicit, documented text substitutions in upstream files, each applied only if
  its old text occurs exactly once. Everything else that fails under Icarus 12 is listed, unpatched, in
  `KNOWN_REFERENCE_FAILURES` with its reason.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

from tasks.problem import Problem
from verilog_tools.errors import UserError
from verilog_tools.text import find_module_header, module_names, rewrite_strings

BENCHMARK = "rtllm-v2"
COMMIT = "41b26896e33b536940116a975626455eed3de65e"
PASS_LINE = re.compile(r"Your\s+Design\s+Passed", re.I)
# End-of-run failure summaries only; per-case messages ("Test failed: A = ...") stay as they are.
FAIL_LINE = re.compile(r'^"\s*=*\s*(Error|Failed|Test completed with\b.*\b(failures|errors)\.?)\s*=*\s*"$', re.I)
PASS_VERDICT = '"Mismatches: 0 in 1 samples"'
UPSTREAM_FILES = ("design_description.txt", "testbench.v", "makefile")


@dataclass(frozen=True)
class Erratum:
    """One explicit change to an upstream file: ``old`` (must occur exactly once) becomes ``new``."""

    design: str
    file: str          # "testbench.v" or "design_description.txt"
    old: str
    new: str
    reason: str


ERRATA: tuple[Erratum, ...] = (
    Erratum("freq_divbyeven", "design_description.txt", "Module name: \n    freq_diveven",
            "Module name:\n    freq_divbyeven",
            "the description names the module freq_diveven, but the testbench instantiates freq_divbyeven, "
            "so a design that follows the prompt could never compile"),
)

# References that do not pass their own testbench under Icarus Verilog 12 (measured; not patched).
KNOWN_REFERENCE_FAILURES = {
    "asyn_fifo": "the testbench uses `break`, which Icarus 12 does not support (sorry: break statements "
                 "not supported)",
    "ring_counter": "the testbench initialises a whole array in its declaration (sorry: Assignment to an "
                    "entire array ... not yet supported); it also prints its pass line even after a "
                    "failure",
    "radix2_div": "the reference fails its own testbench (a known upstream issue): 3 of its cases differ",
    "clkgenerator": "a race: the testbench samples clk in the very time step (#5) in which the reference "
                    "toggles it; VCS happens to run the testbench first, Icarus the design (20 failures)",
}


def design_folders(root: Path) -> list[Path]:
    """Every design folder (one holding testbench.v and design_description.txt), sorted by name."""
    root = Path(root)
    folders = [p.parent for p in root.glob("*/*/*/testbench.v") if (p.parent / "design_description.txt").is_file()]
    return sorted(folders, key=lambda p: p.name.lower())


def upstream_files(root: Path) -> list[str]:
    """Relative paths of every upstream file the loader reads (for hashing)."""
    out = []
    for folder in design_folders(root):
        out += [f.relative_to(root).as_posix() for f in sorted(folder.iterdir())
                if f.is_file() and (f.name in UPSTREAM_FILES[:2] or f.name.startswith("verified_")
                                    or f.name in data_file_names(folder))]
    return sorted(out)


def data_file_names(folder: Path) -> list[str]:
    """Files of a design folder that the testbench reads (anything not upstream's own sources)."""
    return sorted(f.name for f in folder.iterdir() if f.is_file() and f.name not in UPSTREAM_FILES
                  and not f.name.startswith("verified_") and not f.name.endswith(".v"))


def apply_errata(design: str, file: str, text: str) -> str:
    for e in ERRATA:
        if e.design == design and e.file == file:
            if text.count(e.old) != 1:
                raise UserError(f"RTLLM erratum for {design}/{file} no longer applies (its old text occurs "
                                f"{text.count(e.old)} times); is RTLLM_V2_DIR at commit {COMMIT}?")
            text = text.replace(e.old, e.new)
    return text


def rewrite_verdict(testbench: str) -> tuple[str, int, int]:
    """The testbench reporting through ``Mismatches:`` lines (see module doc); (text, #pass, #fail)."""
    counts = [0, 0]

    def rewrite(literal: str) -> str:
        if PASS_LINE.search(literal):
            counts[0] += 1
            return PASS_VERDICT
        if FAIL_LINE.match(literal):
            counts[1] += 1
            return f'"Mismatches: 1 in 1 samples (upstream: {literal[1:-1].strip(" =")})"'
        return literal
    return rewrite_strings(testbench, rewrite), counts[0], counts[1]


def dut_name(testbench: str, description: str, folder: Path) -> str:
    """The module the testbench instantiates: the description's name or the folder's, whichever it uses."""
    said = re.search(r"Module name:\s*`?(\w+)", description)
    for name in ([said.group(1)] if said else []) + [folder.name]:
        if re.search(rf"^\s*{re.escape(name)}\s*(#|\w)", testbench, re.M):
            return name
    raise UserError(f"{folder}: cannot tell which module testbench.v instantiates "
                    f"(tried the description's 'Module name' and the folder name)")


def reference_design(text: str, dut: str, path: Path) -> str:
    """The reference with its ``verified_*`` top module renamed to ``dut``."""
    names = module_names(text)
    if dut in names:
        return text
    tops = [n for n in names if n.startswith("verified_")
            and not re.search(rf"^\s*{re.escape(n)}\s*(#|\w)", text, re.M)]
    if len(tops) != 1:
        raise UserError(f"{path}: expected one top module named verified_* or {dut}, found {names}")
    return re.sub(rf"\b{re.escape(tops[0])}\b", dut, text)


def load_problem(root: Path, folder: Path) -> Problem:
    """One RTLLM design as a `Problem` (completion mode "module": a whole design, several modules allowed)."""
    design = folder.name
    read = lambda name: apply_errata(design, name, (folder / name).read_text(encoding="utf-8"))  # noqa: E731
    description, upstream_tb = read("design_description.txt"), read("testbench.v")
    testbench, passes, fails = rewrite_verdict(upstream_tb)
    if passes == 0:
        raise UserError(f"{folder}/testbench.v: no 'Your Design Passed' line to turn into a verdict")
    dut = dut_name(upstream_tb, description, folder)
    refs = sorted(folder.glob("verified_*.v"))
    if len(refs) != 1:
        raise UserError(f"{folder}: expected one verified_*.v reference, found {len(refs)}")
    reference = reference_design(refs[0].read_text(encoding="utf-8"), dut, refs[0])
    tops = [n for n in module_names(upstream_tb) if n != dut]
    data = {name: (folder / name).read_bytes() for name in data_file_names(folder)}
    header = find_module_header(reference, dut) or f"module {dut}();"
    problem = Problem(task_id=design, benchmark=BENCHMARK, description=description, header=header.strip() + "\n",
                      reference=reference, testbench=testbench, top=tops[-1] if tops else "testbench",
                      dut_module=dut, completion_mode="module",
                      meta={"category": folder.relative_to(root).parts[0], "design_modules": "multi",
                            "data_sha256": {n: hashlib.sha256(b).hexdigest() for n, b in data.items()},
                            "fail_lines": fails, "known_failure": KNOWN_REFERENCE_FAILURES.get(design)},
                      data_files=data or None)
    return replace(problem, prompt=description.strip() + "\n")


def load_rtllm_v2(root: Path) -> list[Problem]:
    """The 50 designs of an RTLLM v2.0 checkout at ``root`` (see module doc)."""
    root = Path(root)
    folders = design_folders(root)
    if not folders:
        raise UserError(f"no RTLLM designs (*/*/<design>/testbench.v) under {root}; point RTLLM_V2_DIR at "
                        f"a checkout of hkust-zhiyao/RTLLM at commit {COMMIT}")
    return [load_problem(root, f) for f in folders]
