"""The output files of an evaluation (tasks.reports) hold whatever a design or completion contains."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from types import SimpleNamespace

from tasks.reports import write_outcome, xml_safe

C0 = "".join(map(chr, range(32)))
HOSTILE = C0 + "\x7f \ud800 \udfff \ufffe \uffff ]]> <tag> &amp; \U0001f600 ok"


def hostile_outcome() -> SimpleNamespace:
    """Stands in for tasks.evaluate.EvalOutcome: the three fields write_outcome reads."""
    rows = [{"task_id": "t" + C0[1:4], "completion_id": 0, "completion": HOSTILE, "status": "mismatch",
             "passed": False, "seconds": 0.5, "log_tail": HOSTILE},
            {"task_id": "u]]>\udc80", "completion_id": 0, "completion": "", "status": "pass", "passed": True,
             "seconds": 0.1, "log_tail": HOSTILE}]
    per_problem = [{"task_id": r["task_id"], "n": 1, "c": int(r["passed"]), "pass@1": float(r["passed"]),
                    "statuses": {r["status"]: 1}} for r in rows]
    return SimpleNamespace(results=rows, per_problem=per_problem,
                           metrics={"benchmark": "b\x1b", "wall_seconds": 1.0, "log": HOSTILE})


def test_junit_is_well_formed_for_any_log_content(tmp_path):
    write_outcome(hostile_outcome(), tmp_path)
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    text = failure.text
    assert "]]> <tag> &amp;" in text and "\\x00" in text and "\\x1b" in text and "\\ud800" in text
    assert "\\ufffe" in text and "\U0001f600 ok" in text
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == ["t\\x01\\x02\\x03", "u]]>\\udc80"]


def test_results_and_metrics_keep_lone_surrogates(tmp_path):
    outcome = hostile_outcome()
    write_outcome(outcome, tmp_path)
    for name in ("results.jsonl", "metrics.json", "problems.csv", "junit.xml"):
        (tmp_path / name).read_bytes().decode("utf-8")  # every file is valid UTF-8
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_bytes().split(b"\n") if line]
    assert rows == outcome.results
    assert json.loads((tmp_path / "metrics.json").read_text())["log"] == HOSTILE


def test_xml_safe_keeps_what_xml_holds():
    assert xml_safe("a\tb\nc\rd é \U0001f600") == "a\tb\nc\rd é \U0001f600"
    assert xml_safe("\x00\x08\x0b\x0c\x1f\ud800\uffff") == "\\x00\\x08\\x0b\\x0c\\x1f\\ud800\\uffff"
