"""Put an `EvalOutcome` on disk and on the terminal.

Files (each written atomically into the run folder):

* ``results.jsonl``: one row per sample, the sample plus its verdict;
* ``metrics.json``: pass@k, status counts, timings, simulator, benchmark and data hash, flags;
* ``problems.csv``: task_id, n, c, pass@1 and the status counts of each problem;
* ``junit.xml``: one testcase per problem, failing when none of its samples passes (so a
  ``MODEL=reference`` self-check shows every broken problem in a CI report). Well-formed whatever a
  design prints: characters XML 1.0 cannot hold (C0 controls, lone surrogates, U+FFFE/FFFF) are
  written as visible escapes such as ``\x1b``.
"""
from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from tasks.samples import atomic_write_text, write_samples

OUTPUT_FILES = ("results.jsonl", "metrics.json", "problems.csv", "junit.xml")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write_outcome(outcome, folder: str | Path) -> list[str]:
    """Write the four output files into ``folder``; returns their names."""
    folder = Path(folder)
    write_samples(folder / "results.jsonl", outcome.results)
    atomic_write_text(folder / "metrics.json", json.dumps(outcome.metrics, indent=2, sort_keys=True) + "\n")
    atomic_write_text(folder / "problems.csv", problems_csv(outcome.per_problem))
    atomic_write_text(folder / "junit.xml", junit_xml(outcome))
    return list(OUTPUT_FILES)


def problems_csv(per_problem: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["task_id", "n", "c", "pass@1", "statuses"])
    for r in per_problem:
        statuses = ";".join(f"{k}={v}" for k, v in sorted(r["statuses"].items()))
        writer.writerow([r["task_id"], r["n"], r["c"], f"{r['pass@1']:.4f}", statuses])
    return buf.getvalue()


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by its Python escape (``\\x00``)."""
    return _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], text)


def junit_xml(outcome) -> str:
    bench = xml_safe(outcome.metrics.get("benchmark") or "benchmark")
    seconds: dict[str, float] = {}
    for row in outcome.results:
        seconds[row["task_id"]] = seconds.get(row["task_id"], 0.0) + (row.get("seconds") or 0.0)
    failed = [r for r in outcome.per_problem if r["c"] == 0]
    suite = ET.Element("testsuite", name=bench, tests=str(len(outcome.per_problem)),
                       failures=str(len(failed)), time=f"{outcome.metrics.get('wall_seconds', 0):.3f}")
    for r in outcome.per_problem:
        case = ET.SubElement(suite, "testcase", classname=bench, name=xml_safe(r["task_id"]),
                             time=f"{seconds.get(r['task_id'], 0.0):.3f}")
        if r["c"] == 0:
            detail = ", ".join(f"{k}={v}" for k, v in sorted(r["statuses"].items())) or "no samples"
            message = xml_safe(f"0/{r['n']} samples passed ({detail})")
            failure = ET.SubElement(case, "failure", message=message)
            failure.text = xml_safe(_first_log(outcome.results, r["task_id"]))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _first_log(results: list[dict], task_id: str) -> str:
    for row in results:
        if row["task_id"] == task_id and row.get("log_tail"):
            return row["log_tail"]
    return ""


def summary_table(metrics: dict) -> str:
    """A few lines for the terminal: pass@k, counts per status, wall vs tool CPU time."""
    lines = [f"benchmark: {metrics.get('benchmark')}  problems: {metrics.get('problems')}  "
             f"samples: {metrics.get('samples')}  n: {metrics.get('n')}"]
    if metrics.get("smoke"):
        lines.append(f"SMOKE RUN: only the first {metrics.get('limit')} problems")
    if metrics.get("containment") == "none":
        lines.append("CONTAINMENT: none (CONTAINMENT=none): simulations ran without the container")
    for name, value in metrics.get("pass_at_k", {}).items():
        lines.append(f"  {name:<9} {value:7.2%}")
    if metrics.get("ks_skipped"):
        lines.append(f"  (k > n skipped: {metrics['ks_skipped']})")
    counts = {k: v for k, v in metrics.get("status_counts", {}).items() if v}
    lines.append("  statuses: " + (", ".join(f"{k}={v}" for k, v in counts.items()) or "none"))
    if metrics.get("missing_problems"):
        lines.append(f"  missing (scored as failures): {len(metrics['missing_problems'])} problems")
    if metrics.get("reference_failures"):
        ids = [r["task_id"] for r in metrics["reference_failures"]]
        lines.append(f"  reference fails its own testbench: {', '.join(ids)}")
    ratio = metrics.get("wall_over_cpu_per_worker")
    lines.append(f"  wall {metrics.get('wall_seconds', 0):.1f} s, tool cpu {metrics.get('tool_cpu_seconds', 0):.1f} s "
                 f"on {metrics.get('workers')} workers, wall/(cpu/workers) = "
                 f"{'n/a' if ratio is None else f'{ratio:.2f}'}")
    return "\n".join(lines)
