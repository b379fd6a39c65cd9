"""VerilogEval loaders, prompts, the benchmark registry and the pinned, hash-checked fetch."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
import urllib.error
from pathlib import Path

import pytest

from tasks import fetch, verilog_eval
from tasks.benchmarks import known_benchmarks, load_benchmark
from tasks.prompts import BODY_INSTRUCTION, build_prompt
from verilog_tools.errors import UserError


def test_counts(v1_dir, v2_dir):
    assert len(verilog_eval.load_v1(v1_dir, "human")) == 156
    assert len(verilog_eval.load_v1(v1_dir, "machine")) == 143
    assert len(verilog_eval.load_v2(v2_dir, "spec-to-rtl")) == 156
    assert len(verilog_eval.load_v2(v2_dir, "code-complete")) == 156


def test_v1_fields_and_description_join(v1_dir):
    problems = {p.task_id: p for p in verilog_eval.load_v1(v1_dir, "human")}
    p = problems["mux2to1v"]  # first description row, not the first problem row: joined by id
    assert p.description.startswith("Create a 2-1 multiplexer")
    assert p.reference.startswith(p.header) and p.reference.rstrip().endswith("endmodule")
    assert "module tb" in p.testbench and "reference_module" in p.testbench
    assert (p.completion_mode, p.dut_module, p.top) == ("body", "top_module", "tb")
    assert p.reference_completion() == p.reference[len(p.header):]
    assert p.prompt == build_prompt(p) and p.prompt.rstrip().endswith(p.header.strip())
    assert BODY_INSTRUCTION in p.prompt


def test_v2_fields(v2_dir):
    spec = {p.task_id: p for p in verilog_eval.load_v2(v2_dir, "spec-to-rtl")}
    p = spec["Prob004_vector2"]
    assert p.header.startswith("module TopModule") and p.header.rstrip().endswith(");")
    assert "RefModule" not in p.reference and "module TopModule" in p.reference
    assert "module tb" in p.testbench and "module RefModule" in p.testbench
    assert (p.completion_mode, p.dut_module) == ("module", "TopModule")
    assert p.prompt.count("module TopModule") == 1
    assert "Prob062_bugs_mux2" in spec  # the stray Prob062_bugs_mux2.sv neither breaks nor adds a task
    cc = {p.task_id: p for p in verilog_eval.load_v2(v2_dir, "code-complete")}
    q = cc["Prob004_vector2"]
    assert q.header.strip() == (v2_dir / "dataset_code-complete-iccad2023/Prob004_vector2_ifc.txt").read_text().strip()
    assert q.prompt.count("module TopModule") == 1  # the prompt already ends with the interface


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


ROW = {"task_id": "t1", "prompt": "module top_module(input a, output b);\n",
       "canonical_solution": "assign b = a;\nendmodule\n", "test": "module tb; endmodule\n"}


def test_v1_missing_description_is_one_line_error(tmp_path):
    problems = _write_jsonl(tmp_path / "p.jsonl", [ROW])
    descriptions = _write_jsonl(tmp_path / "d.jsonl", [{"task_id": "other", "detail_description": "x"}])
    with pytest.raises(UserError, match=r"p\.jsonl:1: no description for task 't1'") as err:
        verilog_eval.load_v1_jsonl(problems, descriptions)
    assert "\n" not in str(err.value)


def test_v1_bad_rows(tmp_path):
    with pytest.raises(UserError, match=r"p\.jsonl:2: malformed JSON"):
        verilog_eval.load_v1_jsonl(_write_jsonl(tmp_path / "p.jsonl", [dict(ROW, description="d"), "{oops"]))
    with pytest.raises(UserError, match="field 'test' missing"):
        verilog_eval.load_v1_jsonl(_write_jsonl(tmp_path / "q.jsonl", [{k: v for k, v in ROW.items() if k != "test"}]))
    with pytest.raises(UserError, match="not found"):
        verilog_eval.load_v1_jsonl(tmp_path / "absent.jsonl")


def test_v2_ignores_incomplete_sets(tmp_path, v2_dir):
    src = v2_dir / "dataset_spec-to-rtl"
    dst = tmp_path / "dataset_spec-to-rtl"
    dst.mkdir()
    for name in ("Prob001_zero_prompt.txt", "Prob001_zero_ref.sv", "Prob001_zero_test.sv",
                 "Prob002_m2014_q4i_prompt.txt", "Prob002_m2014_q4i_ref.sv", "Prob062_bugs_mux2.sv"):
        shutil.copy(src / name, dst / name)
    assert [p.task_id for p in verilog_eval.load_v2(tmp_path, "spec-to-rtl")] == ["Prob001_zero"]


def test_registry(v1_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("VERILOG_EVAL_V1_DIR", str(v1_dir))
    assert len(load_benchmark("verilog-eval-v1-machine")) == 143
    with pytest.raises(UserError, match="unknown benchmark 'nope'; known: verilog-eval-v1-human"):
        load_benchmark("nope")
    user = _write_jsonl(tmp_path / "mine.jsonl", [dict(ROW, description="copy a to b")])
    assert [p.benchmark for p in load_benchmark(None, problems_file=user)] == ["file"]
    assert "file" in known_benchmarks()


# --- fetch ------------------------------------------------------------------------------------

def test_local_copies_match_pins(v1_dir, v2_dir):
    assert fetch.hash_mismatches("v1", v1_dir) == []
    assert fetch.hash_mismatches("v2", v2_dir) == []


def test_local_mismatch_warns_but_works(tmp_path, v1_dir, monkeypatch):
    copy = _writable_copy(v1_dir, tmp_path / "v1")
    with open(copy / "data/VerilogEval_Machine.jsonl", "a") as fh:
        fh.write("\n")
    monkeypatch.setenv("VERILOG_EVAL_V1_DIR", str(copy))
    with pytest.warns(UserWarning, match="VerilogEval_Machine.jsonl differs"):
        assert fetch.dataset_dir("v1") == copy


def _writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for path in [dst, *dst.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


def _tarball_of(root: Path, rels, prefix="verilog-eval-abc") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for rel in rels:
            tar.add(root / rel, arcname=f"{prefix}/{rel}")
    return buf.getvalue()


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("VERILOG_EVAL_V1_DIR", raising=False)
    monkeypatch.setenv("ITERTL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_offline_names_the_variable(offline_cache, monkeypatch):
    def refuse(url, dest):
        raise urllib.error.URLError("network is unreachable")
    monkeypatch.setattr(fetch, "download", refuse)
    with pytest.raises(UserError, match="set VERILOG_EVAL_V1_DIR") as err:
        fetch.dataset_dir("v1")
    assert "\n" not in str(err.value)
    assert not any(offline_cache.iterdir())  # no half-made folder


def test_fetch_downloads_verifies_and_caches(offline_cache, v1_dir, monkeypatch):
    payload = _tarball_of(v1_dir, list(fetch.V1_SHA256) + ["LICENSE"])
    calls = []

    def fake_download(url, dest):
        calls.append(url)
        Path(dest).write_bytes(payload)
    monkeypatch.setattr(fetch, "download", fake_download)
    root = fetch.dataset_dir("v1")
    assert calls == [fetch.TARBALL_URL.format(repo="NVlabs/verilog-eval", commit=fetch.DATASETS["v1"].commit)]
    assert fetch.hash_mismatches("v1", root) == []
    assert len(verilog_eval.load_v1(root, "human")) == 156
    assert fetch.dataset_dir("v1") == root and len(calls) == 1  # cached: no second download


def test_fetch_rejects_tampered_download(offline_cache, v1_dir, tmp_path, monkeypatch):
    bad = _writable_copy(v1_dir, tmp_path / "bad")
    (bad / "data/VerilogEval_Human.jsonl").write_text("{}\n")
    payload = _tarball_of(bad, list(fetch.V1_SHA256))
    monkeypatch.setattr(fetch, "download", lambda url, dest: Path(dest).write_bytes(payload))
    with pytest.raises(UserError, match="failed its hash check"):
        fetch.dataset_dir("v1")
    assert not any(offline_cache.iterdir())  # neither the target nor a temp folder is left


def test_data_hash_tracks_content(v1_dir):
    problems = verilog_eval.load_v1(v1_dir, "human")
    assert fetch.data_hash(problems) == fetch.data_hash(list(reversed(problems)))
    from dataclasses import replace
    changed = [replace(problems[0], testbench=problems[0].testbench + " ")] + problems[1:]
    assert fetch.data_hash(changed) != fetch.data_hash(problems)


def test_fetch_v2_checks_tree_digests(tmp_path, v2_dir, monkeypatch):
    monkeypatch.delenv("VERILOG_EVAL_V2_DIR", raising=False)
    monkeypatch.setenv("ITERTL_CACHE", str(tmp_path / "cache"))
    payload = _tarball_of(v2_dir, ["LICENSE", *fetch.DATASETS["v2"].folders])
    monkeypatch.setattr(fetch, "download", lambda url, dest: Path(dest).write_bytes(payload))
    root = fetch.dataset_dir("v2")
    assert len(verilog_eval.load_v2(root, "code-complete")) == 156
    assert not (root / "LICENSE").exists()  # only the folders the loaders read are extracted
