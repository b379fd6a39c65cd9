"""Audit the verifier's policy on reference designs: which real designs does it refuse, and why?

`python -m tasks.policy_audit [SOURCE ...] [--out FILE]` checks every reference of each source (a
benchmark id such as `verilog-eval-v1-human`, or a JSONL training file with an `output` or `Response`
field, such as rtlcoder-small) twice: the compiler alone (`iverilog -t null`, in the container, no
policy), and the full verifier (`verilog_tools.icarus.check_syntax`: canonical text, policy, compiler).
A reference counts as refused when the compiler alone accepts it and the verifier does not; references
the compiler alone rejects are not RTL the policy could wrongly refuse, and are counted apart.

It prints one line per source and writes the refused references with their reasons as JSON: the list
behind the refusal figures in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from verilog_tools import status as st
from verilog_tools.errors import UserError
from verilog_tools.icarus import IVERILOG_FLAGS, _compiled_ok, check_syntax
from verilog_tools.runner import run_sandboxed, sample_dir
from verilog_tools.tools import find_tool

DEFAULT_SOURCES = ("verilog-eval-v1-human", "verilog-eval-v1-machine", "verilog-eval-v2-spec-to-rtl",
                   "verilog-eval-v2-code-complete", "synthetic", "rtllm-v2")


def compiles_alone(code: str) -> bool:
    """Does iverilog accept `code` by itself, with no policy in front (UTF-8 as given)?"""
    with sample_dir() as d:
        (d / "design.sv").write_bytes(code.encode("utf-8", "replace"))
        r = run_sandboxed([find_tool("iverilog"), *IVERILOG_FLAGS, "-t", "null", "design.sv"], d)
    return _compiled_ok(r)


def references(source: str) -> list[tuple[str, str]]:
    """(id, reference design) pairs of a benchmark id or a JSONL file of training examples."""
    path = Path(source)
    if path.is_file():
        out = []
        for n, line in enumerate(path.read_bytes().split(b"\n"), 1):
            if line.strip():
                row = json.loads(line)
                ref = row.get("output") or row.get("Response")
                out.append((f"{path.name}:{n}", ref[0] if isinstance(ref, list) else ref))
        return out
    from tasks.benchmarks import load_benchmark
    return [(p.task_id, p.reference) for p in load_benchmark(source)]


def audit(source: str, workers: int = 2) -> dict:
    """Counts and the refused references of one source."""
    refs = references(source)

    def one(item):
        ident, code = item
        verdict = check_syntax(code)
        alone = verdict.ok or compiles_alone(code)
        return ident, alone, verdict

    with ThreadPoolExecutor(max(1, workers)) as pool:
        rows = list(pool.map(one, refs))
    compiling = [(i, v) for i, alone, v in rows if alone]
    refused = [{"id": i, "status": v.status, "reason": v.log.strip().split("\n")[1:4]}
               for i, v in compiling if not v.ok]
    return {"source": source, "references": len(refs), "compile_alone": len(compiling),
            "refused": len(refused), "refused_share": len(refused) / len(compiling) if compiling else 0.0,
            "refused_by_status": {s: sum(1 for r in refused if r["status"] == s) for s in (st.REJECTED,)},
            "refused_list": refused}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.policy_audit", description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="*", default=list(DEFAULT_SOURCES),
                        help="benchmark ids or JSONL files of references (default: every benchmark)")
    parser.add_argument("--out", default=None, help="write the full report (with the refused lists) here")
    parser.add_argument("--md", default=None, help="write the figures and refused lists as Markdown here")
    parser.add_argument("--workers", type=int, default=2, help="parallel checks")
    args = parser.parse_args(argv)
    try:
        reports = [audit(s, args.workers) for s in args.sources]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in reports:
        print(f"{r['source']}: {r['references']} references, {r['compile_alone']} compile alone, "
              f"{r['refused']} refused by the policy ({100 * r['refused_share']:.2f}%)")
    if args.out:
        Path(args.out).write_text(json.dumps(reports, indent=1) + "\n")
    if args.md:
        Path(args.md).write_text(markdown(reports))
    return 0


def markdown(reports: list[dict]) -> str:
    """The audit as a Markdown page: one table of figures, then each refused reference with its reasons."""
    lines = ["| source | references | compile alone | refused by the policy |", "|---|---|---|---|"]
    for r in reports:
        lines.append(f"| `{Path(r['source']).name}` | {r['references']} | {r['compile_alone']} | "
                     f"{r['refused']} ({100 * r['refused_share']:.2f}%) |")
    for r in reports:
        if r["refused_list"]:
            lines += ["", f"Refused in `{Path(r['source']).name}`:", ""]
            lines += [f"- `{x['id'].rsplit(':', 1)[-1]}`: " + "; ".join(x["reason"]).replace("|", "\\|")
                      for x in r["refused_list"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
