"""Synthetic task set: determinism, split hygiene, coverage, mutation, and simulation of references."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tasks.synthetic import FAMILIES, dump_json, generate_tasks, load_problems, to_records, verilog_corpus
from tasks.synthetic import generate as gen
from tasks.synthetic.mutate import mutate, mutation_sites
from verilog_tools.errors import UserError
from verilog_tools.icarus import check_syntax_many, simulate

REPO = Path(__file__).resolve().parents[1]
VERDICT = '$display("Mismatches: %1d in %1d samples", stats1.errors, stats1.clocks);'
FAMILY_NAMES = [name for name, _ in FAMILIES]


@pytest.fixture(scope="module")
def default_set():
    return generate_tasks()


def _fresh(**kwargs):
    gen._generate_cached.cache_clear()
    return generate_tasks(**kwargs)


def test_same_seed_gives_identical_json_and_other_seed_differs():
    first = [dump_json(split) for split in _fresh(seed=5, n_train=130, n_heldout=26)]
    again = [dump_json(split) for split in _fresh(seed=5, n_train=130, n_heldout=26)]
    other = [dump_json(split) for split in _fresh(seed=6, n_train=130, n_heldout=26)]
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


def test_output_does_not_depend_on_string_hashing():
    """Two interpreters with different PYTHONHASHSEED produce the same bytes."""
    script = ("import hashlib; from tasks.synthetic import generate_tasks, dump_json; "
              "t, h = generate_tasks(seed=3, n_train=260, n_heldout=26); "
              "print(hashlib.sha256((dump_json(t) + dump_json(h)).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              cwd=REPO, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2")}
    assert len(digests) == 1


def test_default_generation_is_fast_and_counts_match():
    started = time.monotonic()
    train, heldout = _fresh()
    assert time.monotonic() - started < 10
    assert (len(train), len(heldout)) == (2000, 200)
    ids = [p.task_id for p in train + heldout]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"syn-[a-z]+-(\d{4}|h\d{3})", i) for i in ids)


def test_heldout_signatures_never_occur_in_training(default_set):
    train, heldout = default_set
    train_sigs = {tuple(p.meta["signature"]) for p in train}
    heldout_sigs = {tuple(p.meta["signature"]) for p in heldout}
    assert heldout_sigs and not train_sigs & heldout_sigs


def test_every_family_and_level_appears_in_both_splits(default_set):
    for split in default_set:
        assert sorted({p.meta["family"] for p in split}) == sorted(FAMILY_NAMES)
        assert {p.meta["level"] for p in split} == {1, 2, 3}


def test_levels_filter_and_bad_arguments():
    train, heldout = generate_tasks(seed=1, n_train=52, n_heldout=13, levels=(1,))
    assert {p.meta["level"] for p in train + heldout} == {1}
    with pytest.raises(UserError, match="levels"):
        generate_tasks(levels=(4,))
    with pytest.raises(UserError, match="n_train"):
        generate_tasks(n_train=-1)
    with pytest.raises(UserError, match="split"):
        load_problems("test")
    tiny_train, tiny_heldout = generate_tasks(seed=2, n_train=20, n_heldout=5)
    assert (len(tiny_train), len(tiny_heldout)) == (20, 5)
    assert generate_tasks(seed=2, n_train=0, n_heldout=0) == ([], [])


def test_problems_have_v1_style_testbenches(default_set):
    for problem in default_set[0][:60] + default_set[1][:20]:
        assert problem.benchmark == "synthetic" and problem.completion_mode == "module"
        assert problem.reference.startswith(problem.header) and problem.header.endswith(");")
        assert problem.reference.count("module top_module(") == 1
        tb = problem.testbench
        assert tb.count(VERDICT) == 1 and "final begin" in tb and "$finish" in tb
        assert "module reference_module(" in tb and "module tb();" in tb
        assert '#1000000 $display("TIMEOUT");' in tb and "top_module top_module1" in tb


def test_load_problems_and_records(default_set):
    heldout = load_problems("heldout")
    assert [p.task_id for p in heldout] == [p.task_id for p in default_set[1]]
    records = to_records(heldout[:5])
    assert all(r.split == "heldout" and r.source == "synthetic" and r.top == "tb" for r in records)
    assert records[0].instruction == heldout[0].description
    assert records[0].reference == heldout[0].reference
    assert to_records(heldout[:1], split="train")[0].split == "train"
    assert json.loads(records[0].to_json())["dut_module"] == "top_module"


def test_verilog_corpus_reads_rtlcoder_outputs(tmp_path, monkeypatch):
    (tmp_path / "a.jsonl").write_text(json.dumps({"instruction": "i", "output": "module m; endmodule"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"output": "module n; endmodule"}) + "\n\n")
    monkeypatch.setenv("RTLCODER_SMALL_DIR", str(tmp_path))
    texts = list(verilog_corpus())
    assert texts[-2:] == ["module m; endmodule", "module n; endmodule"]
    assert texts[0] == load_problems("train")[0].reference
    assert "module m; endmodule" not in list(verilog_corpus(include_rtlcoder=False))


def test_mutate_changes_one_operator_in_the_body_only():
    code = ("module m #(parameter W = 4)(input [3:0] a, input [3:0] b, output [3:0] y);\n"
            "    localparam K = 4'd3;\n    assign y = a & b;\nendmodule\n")
    assert mutate(code, random.Random(0)) == code.replace("a & b", "a | b")
    assert mutate("module m(input a, output y);\n    assign y = a;\nendmodule\n", random.Random(0)) is None


def test_mutate_skips_nonblocking_assignments_loops_and_delays():
    code = ("module m(input clk, input [7:0] d, output reg [7:0] q, output reg [3:0] n);\n"
            "    integer i;\n    always @(posedge clk) begin\n        q <= d;\n"
            "        for (i = 0; i < 8; i = i + 1)\n            n <= #1 (q <= d);\n    end\nendmodule\n")
    sites = [code[start:end] for start, end, _ in mutation_sites(code)]
    assert sites == ["<="]    # only the comparison in parentheses
    assert mutate(code, random.Random(1)).count("(q < d)") == 1


def test_mutate_leaves_compound_assignments_and_fill_literals_valid():
    code = ("module m(input [4:0] q, output logic [4:0] n);\n    always @(*) begin\n        n = '1;\n"
            "        n[2] ^= q[3];\n    end\nendmodule\n")
    sites = {code[start:end]: options for start, end, options in mutation_sites(code)}
    assert sites == {"'1": ["'0"], "2": ["1"], "3": ["2"]}


def test_mutate_keeps_part_selects_ordered():
    code = "module m(input [7:0] q, input s, output [7:0] y);\n    assign y = {q[6:0], s};\nendmodule\n"
    mutants = {code[:a] + o + code[b:] for a, b, opts in mutation_sites(code) for o in opts}
    assert mutants == {code.replace("q[6:0]", "q[5:0]"), code.replace("q[6:0]", "q[6:1]")}


def _sample(default_set, count=40):
    everything = default_set[0] + default_set[1]
    return everything[::len(everything) // count][:count]


def _simulate_all(problems, designs):
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda pd: simulate(pd[1], pd[0].testbench, top=pd[0].top,
                                                 dut_module=pd[0].dut_module), zip(problems, designs)))


def test_sample_references_pass_and_mutants_fail(default_set):
    problems = _sample(default_set)
    assert {p.meta["family"] for p in problems} == set(FAMILY_NAMES)
    results = _simulate_all(problems, [p.reference for p in problems])
    failed = [(p.task_id, r.status, r.log_tail[-300:]) for p, r in zip(problems, results) if not r.passed]
    assert not failed
    mutants = [mutate(p.reference, random.Random(p.task_id)) for p in problems]
    assert None not in mutants
    results = _simulate_all(problems, mutants)
    assert all(r.status == "mismatch" for r in results), [r.status for r in results]


def test_every_mutant_of_sample_compiles(default_set):
    codes = [p.reference[:a] + o + p.reference[b:] for p in _sample(default_set, 26)
             for a, b, opts in mutation_sites(p.reference) for o in opts]
    assert len(codes) > 60
    results = check_syntax_many(codes, workers=2)
    assert [c for c, r in zip(codes, results) if not r.ok] == []


def _simulators():
    sims = [pytest.param("/usr/bin", id="iverilog-system")]
    if (REPO / ".tools/iverilog-12/bin/iverilog").is_file():
        sims.append(pytest.param(str(REPO / ".tools/iverilog-12/bin"), id="iverilog-12"))
    return sims


@pytest.mark.slow
@pytest.mark.parametrize("tools_dir", _simulators())
def test_every_reference_passes_and_mutants_are_caught(default_set, tools_dir, monkeypatch):
    if not Path(tools_dir, "iverilog").is_file():
        pytest.skip(f"no iverilog in {tools_dir}")
    monkeypatch.setenv("ITERTL_TOOLS_DIR", tools_dir)
    problems = default_set[0] + default_set[1]
    results = _simulate_all(problems, [p.reference for p in problems])
    failed = [(p.task_id, r.status) for p, r in zip(problems, results) if not r.passed]
    assert not failed
    mutants = [mutate(p.reference, random.Random(p.task_id)) for p in problems]
    mutated = [(p, m) for p, m in zip(problems, mutants) if m is not None]
    results = _simulate_all([p for p, _ in mutated], [m for _, m in mutated])
    caught = sum(r.status == "mismatch" for r in results)   # no mutant (None) counts as missed
    assert caught >= 0.95 * len(problems), f"mutation kill rate {caught}/{len(problems)}"


def test_multi_module_variants_pass_their_testbench_and_hold_two_modules(default_set):
    from tasks.synthetic import multi_module_extras
    from verilog_tools.text import count_modules

    train, _ = default_set
    one_per_family = list({p.meta["family"]: p for p in train}.values())
    extras = multi_module_extras(one_per_family, 1.0, seed=0)
    assert [p.task_id for p in extras] == [f"{p.task_id}-mm" for p in one_per_family]
    assert all(count_modules(p.reference) == 2 for p in extras)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: simulate(p.reference, p.testbench, top="tb", dut_module="top_module"),
                                extras))
    assert [p.task_id for p, r in zip(extras, results) if not r.passed] == []
    assert len(multi_module_extras(train, 0.1, seed=0)) == 200
    assert multi_module_extras(train, 0.1, seed=0) == multi_module_extras(train, 0.1, seed=0)
    with pytest.raises(UserError, match="share"):
        multi_module_extras(train, 1.5, seed=0)
