"""Data preparation end to end (tasks.prepare, tasks.decontam, harness.commands.data) with real iverilog."""
from __future__ import annotations

import json
import time

import pytest

from harness.commands import data as data_cli
from tasks import prepare
from tasks.decontam import BenchmarkIndex, BenchmarkLoad, code_ngrams, word_ngrams
from tasks.prepare import DataConfig, prepare_data, split_records
from tasks.problem import Problem
from tasks.records import TrainingRecord
from verilog_tools.errors import UserError

AND = "module and2(input a, input b, output y);\n  assign y = a & b;\nendmodule\n"
OR = "module or2(input a, input b, output y);\n  assign y = a | b;\nendmodule\n"
BAD = "module broken(input a, output y);\n  assign y = ;\nendmodule\n"
POPCOUNT_DESCRIPTION = ("A population count circuit counts the number of ones in an input vector. "
                        "Build a population count circuit for a 255-bit input vector and report "
                        "the count on an 8-bit output named out.")
POPCOUNT = ("module top_module(input [254:0] in, output reg [7:0] out);\n"
            "  integer i;\n  always @(*) begin\n    out = 8'd0;\n"
            "    for (i = 0; i < 255; i = i + 1) out = out + in[i];\n  end\nendmodule\n")
PLANTED = Problem(task_id="popcount255", benchmark="verilog-eval-v1-human",
                  description=POPCOUNT_DESCRIPTION, header=POPCOUNT.split("\n")[0], reference=POPCOUNT,
                  testbench="module tb; endmodule")


@pytest.fixture
def planted_benchmark(monkeypatch):
    """Decontaminate against one planted problem, without touching the network or env vars."""
    load = BenchmarkLoad([PLANTED], ["verilog-eval-v1-human"], {})
    monkeypatch.setattr(prepare, "load_benchmark_problems", lambda: load)


def write_fixture(path):
    rows = [
        {"instruction": "Make a two-input AND gate.", "output": AND},
        {"instruction": "Make a two-input OR gate.", "output": f"```verilog\n{OR}```"},
        {"instruction": "Make  a two-input AND gate.", "output": AND.replace("assign", "// and\n  assign")},
        {"instruction": "Make an AND and an OR gate.", "output": AND + "\n" + OR},
        {"instruction": "Make a broken gate.", "output": BAD},
        {"instruction": "Explain flip-flops.", "output": "A flip-flop stores one bit."},
        {"instruction": "Please act as a professional Verilog designer. " + POPCOUNT_DESCRIPTION,
         "output": OR.replace("or2", "or2b")},
        {"instruction": "Count the ones.", "output": POPCOUNT.replace("integer i;", "integer i; // loop")},
        {"instruction": "An inverter.", "output": "module inv(input a, output y); assign y = ~a; endmodule"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"instruction": "cut off\n')
    return path


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pipeline_counts_every_rule(tmp_path, planted_benchmark):
    data = write_fixture(tmp_path / "rows.jsonl")
    result = prepare_data(DataConfig(data=str(data), valid_fraction=0.0, workers=1), tmp_path / "out")
    summary = result.summary
    assert summary["rows_in"] == 10
    assert summary["dropped"] == {"malformed": 1, "empty_or_non_verilog": 1, "duplicates": 1,
                                  "multi_module": 1, "syntax": 1, "policy": 0, "syntax_unchecked": 0,
                                  "contamination": 2}
    assert summary["rows_out"] == {"train": 3, "valid": 0}
    train = read_rows(tmp_path / "out" / "train.jsonl")
    assert sorted(r["header"].split("(")[0] for r in train) == ["module and2", "module inv", "module or2"]
    assert [r["id"] for r in train] == sorted(r["id"] for r in train)
    flagged = read_rows(tmp_path / "out" / "contamination.jsonl")
    assert {(f["task_id"], f["field"]) for f in flagged} == {
        ("verilog-eval-v1-human/popcount255", "description"), ("verilog-eval-v1-human/popcount255", "reference")}
    on_disk = json.loads((tmp_path / "out" / "data_summary.json").read_text())
    assert on_disk["files"]["train"]["sha256"] == result.hashes["train"]


def test_filter_off_keeps_multi_module_and_broken_rows(tmp_path, planted_benchmark):
    data = write_fixture(tmp_path / "rows.jsonl")
    result = prepare_data(DataConfig(data=str(data), filter=False, valid_fraction=0.0), tmp_path / "out")
    assert result.summary["dropped"]["multi_module"] == 0 and result.summary["dropped"]["syntax"] == 0
    references = [r["reference"] for r in read_rows(tmp_path / "out" / "train.jsonl")]
    assert any("module and2" in r and "module or2" in r for r in references)
    assert any("module broken" in r for r in references)


def test_same_config_gives_same_hashes(tmp_path, planted_benchmark):
    data = write_fixture(tmp_path / "rows.jsonl")
    cfg = DataConfig(data=str(data), valid_fraction=0.3, seed=3, workers=1)
    first, second = prepare_data(cfg, tmp_path / "a"), prepare_data(cfg, tmp_path / "b")
    assert first.hashes == second.hashes
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes()


def test_decontamination_skipped_or_required_when_no_benchmark(tmp_path, monkeypatch):
    data = write_fixture(tmp_path / "rows.jsonl")
    missing = BenchmarkLoad([], [], {"verilog-eval-v1-human": "cannot download VerilogEval v1"})
    monkeypatch.setattr(prepare, "load_benchmark_problems", lambda: missing)
    cfg = DataConfig(data=str(data), syntax_filter=False)
    result = prepare_data(cfg, tmp_path / "out")
    assert result.summary["decontamination"]["status"] == "skipped"
    assert result.summary["dropped"]["contamination"] == 0
    with pytest.raises(UserError, match="decontamination needs VerilogEval data"):
        prepare_data(DataConfig(data=str(data), syntax_filter=False, require_decontamination=True),
                     tmp_path / "out2")


def records(n, prefix="r"):
    return [TrainingRecord(id=f"{prefix}{i}", instruction="i", header="h", reference="r", source="t")
            for i in range(n)]


def test_split_is_deterministic_and_row_independent():
    rows = records(2000)
    train, valid = split_records(rows, 0.1, seed=0)
    assert len(train) + len(valid) == 2000 and 140 < len(valid) < 260
    assert {r.split for r in valid} == {"valid"} and {r.split for r in train} == {"train"}
    again, _ = split_records(rows, 0.1, seed=0)
    assert [r.id for r in again] == [r.id for r in train]
    _, valid_half = split_records(rows[::2], 0.1, seed=0)
    assert {r.id for r in valid_half} == {r.id for r in valid} & {r.id for r in rows[::2]}
    _, other_seed = split_records(rows, 0.1, seed=1)
    assert {r.id for r in other_seed} != {r.id for r in valid}
    assert split_records(rows, 0.0, seed=0)[1] == []


@pytest.mark.parametrize("kwargs, field_name", [
    ({"valid_fraction": 0.9}, "valid_fraction"), ({"limit": 0}, "limit"), ({"workers": 0}, "workers"),
    ({"data": ""}, "data"), ({"filter": "yes"}, "filter"), ({"synthetic_train": -1}, "synthetic_train"),
])
def test_config_validation_names_the_field(kwargs, field_name):
    with pytest.raises(UserError, match=f"config field {field_name}"):
        DataConfig(**kwargs)


def test_index_catches_copies_and_keeps_unrelated_text():
    index = BenchmarkIndex([PLANTED])
    assert index.match("x", "Please implement this: " + POPCOUNT_DESCRIPTION.upper(), AND).field == "description"
    hit = index.match("y", "Count ones in a vector.", "// mine\n" + POPCOUNT)
    assert hit.field == "reference" and hit.score == 1.0
    assert index.match("w", "Build an 8-bit counter with synchronous reset and an enable input.", OR) is None
    assert len(word_ngrams("too short")) == 1 and len(code_ngrams(POPCOUNT)) > 12


def test_real_verilog_eval_rows_are_caught(v1_dir, rtlcoder_dir):
    from tasks.benchmarks import load_benchmark

    problems = load_benchmark("verilog-eval-v1-human")
    target = max(problems, key=lambda p: len(p.description))
    index = BenchmarkIndex(problems)
    assert index.match("d", "Solve this. " + target.description, AND).task_id.endswith(target.task_id)
    code_target = max(problems, key=lambda p: len(p.reference))
    assert index.match("r", "unrelated words", code_target.reference).field == "reference"
    rows = [json.loads(line) for line in (rtlcoder_dir / "randomized_filtered_data_7b.jsonl").open()][:300]
    flagged = [r for r in rows if index.match("u", r["instruction"], r["output"])]
    assert len(flagged) <= 6  # unrelated design tasks stay (a handful of textbook ones may match)


def test_cli_prints_summary_table(tmp_path, planted_benchmark, capsys):
    data = write_fixture(tmp_path / "rows.jsonl")
    code = data_cli.main_data(["--data", str(data), "--out", str(tmp_path / "out"), "--filter", "0",
                               "--seed", "1", "--limit", "5", "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "rows in" in printed and "dropped: duplicates" in printed and "limit 5" in printed
    digest = json.loads((tmp_path / "out" / "data_summary.json").read_text())["files"]["train"]["sha256"]
    assert digest in printed


def test_cli_rejects_bad_flag_value(tmp_path):
    with pytest.raises(UserError, match="argument --filter: expected 1/0"):
        data_cli.main_data(["--filter", "maybe", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_cli_writes_a_run_folder(tmp_path, planted_benchmark, monkeypatch):
    pytest.importorskip("harness.runs.folder")
    data = write_fixture(tmp_path / "rows.jsonl")
    argv = ["--data", str(data), "--run", "d1", "--syntax-filter", "0", "--results-dir", str(tmp_path)]
    assert data_cli.main_data(argv) == 0
    manifest = json.loads((tmp_path / "d1" / "manifest.json").read_text())
    summary = json.loads((tmp_path / "d1" / "data_summary.json").read_text())
    assert manifest["data_hashes"]["train"] == summary["files"]["train"]["sha256"]
    assert not (tmp_path / "d1" / ".incomplete").exists()
    with pytest.raises(UserError, match="already exists"):
        data_cli.main_data(argv)


def test_synthetic_source_writes_heldout(tmp_path, monkeypatch):
    pytest.importorskip("tasks.synthetic")
    monkeypatch.setattr(prepare, "load_benchmark_problems", lambda: BenchmarkLoad([], [], {"x": "offline"}))
    cfg = DataConfig(data="synthetic", synthetic_train=20, synthetic_heldout=5, valid_fraction=0.2)
    result = prepare_data(cfg, tmp_path / "out")
    counts = result.summary["rows_out"]
    assert counts["heldout"] == 5 and counts["train"] + counts["valid"] == 20
    heldout = read_rows(tmp_path / "out" / "heldout.jsonl")
    assert {r["split"] for r in heldout} == {"heldout"} and all(r["testbench"] for r in heldout)
    train_ids = {r["id"] for r in read_rows(tmp_path / "out" / "train.jsonl")}
    assert train_ids.isdisjoint(r["id"] for r in heldout)
    assert prepare_data(cfg, tmp_path / "again").hashes == result.hashes


@pytest.mark.slow  # about 1 min on a shared 2-core machine: 1.3k iverilog runs
def test_real_rtlcoder_small_full_pipeline(tmp_path, rtlcoder_dir, v1_dir, v2_dir):
    started = time.monotonic()
    cfg = DataConfig(data=str(rtlcoder_dir / "randomized_filtered_data_7b.jsonl"), workers=2)
    summary = prepare_data(cfg, tmp_path / "out").summary
    seconds = time.monotonic() - started
    dropped, out = summary["dropped"], summary["rows_out"]
    assert summary["rows_in"] == 1310 and dropped["malformed"] == 0
    assert summary["rows_in"] == sum(dropped.values()) + out["train"] + out["valid"]
    assert dropped["multi_module"] >= 20       # about 2% of outputs hold more than one module
    assert 5 <= dropped["policy"] <= 30   # docs/policy-audit.md: 13 that compile, plus refusals of ones that do not
    assert summary["decontamination"]["status"] == "done"
    assert out["train"] > 1000 and 5 <= out["valid"] <= 60
    print(f"\nrtlcoder-small 7b: {json.dumps(dropped)} out={out} in {seconds:.1f}s")


def test_synthetic_filter_drops_exactly_the_two_module_variants(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "load_benchmark_problems", lambda: BenchmarkLoad([], [], {"x": "offline"}))
    base = dict(data="synthetic", synthetic_train=40, synthetic_heldout=5, valid_fraction=0.0)
    on = prepare_data(DataConfig(**base), tmp_path / "on")
    off = prepare_data(DataConfig(**base, filter=False), tmp_path / "off")
    none = prepare_data(DataConfig(**base, synthetic_multi_module=0.0, filter=False), tmp_path / "none")
    assert on.summary["dropped"]["multi_module"] == 4 and off.summary["dropped"]["multi_module"] == 0
    assert on.hashes["train"] == none.hashes["train"]       # the filter removes only the variants
    assert on.hashes["heldout"] == off.hashes["heldout"]
    extra = {r["id"] for r in read_rows(tmp_path / "off" / "train.jsonl")} - \
        {r["id"] for r in read_rows(tmp_path / "on" / "train.jsonl")}
    rows = {r["id"]: r for r in read_rows(tmp_path / "off" / "train.jsonl")}
    assert len(extra) == 4 and all(rows[i]["reference"].count("endmodule") == 2 for i in extra)
    with pytest.raises(UserError, match="synthetic_multi_module"):
        DataConfig(data="synthetic", synthetic_multi_module=2)
