"""RTLLM v2.0: loading, the rewritten (unforgeable) verdict, multi-module designs, data files, self-check."""
from __future__ import annotations

import pytest

from tasks import rtllm
from verilog_tools import status as st


def test_verdict_rewrite_keeps_failure_arguments_and_counts_lines():
    tb = ('initial begin if (error == 0) $display("===========Your Design Passed===========");\n'
          'else $display("===========Test completed with %d /100 failures===========", error);\n'
          '$display("Test failed: A = %d", a); end\n')
    out, passes, fails = rtllm.rewrite_verdict(tb)
    assert (passes, fails) == (1, 1)
    assert '$display("Mismatches: 0 in 1 samples")' in out
    assert '"Mismatches: 1 in 1 samples (upstream: Test completed with %d /100 failures)", error' in out
    assert '"Test failed: A = %d"' in out   # per-case messages are left alone


@pytest.fixture(scope="module")
def problems(rtllm_dir):
    return {p.task_id: p for p in rtllm.load_rtllm_v2(rtllm_dir)}


def test_loads_fifty_designs_with_errata_data_and_renamed_references(problems):
    assert len(problems) == 50
    booth = problems["multi_booth_8bit"]
    assert set(booth.data_files) == {"test_data.dat"} and booth.meta["data_sha256"]
    assert "module multi_booth_8bit" in booth.reference and "verified_" not in booth.reference
    assert "freq_divbyeven" in problems["freq_divbyeven"].prompt   # the documented erratum
    assert problems["fixed_point_substractor"].dut_module == "fixed_point_subtractor"
    assert problems["adder_8bit"].completion_mode == "module"
    assert set(rtllm.KNOWN_REFERENCE_FAILURES) <= set(problems)


def _simulate(problem, design):
    from verilog_tools.icarus import simulate
    return simulate(design, problem.testbench, top=problem.top, dut_module=problem.dut_module,
                    data_files=problem.data_files)


def test_multi_module_reference_passes_and_a_forged_pass_line_fails(problems):
    adder = problems["adder_8bit"]
    assert adder.reference.count("endmodule") >= 2          # a top module and its full adders
    assert _simulate(adder, adder.reference).status == st.PASS
    forged = ("module adder_8bit(input [7:0] a, b, input cin, output [7:0] sum, output cout);\n"
              "  assign sum = 0; assign cout = 0;\n"
              '  initial begin #1 $display("===========Your Design Passed==========="); '
              '$display("Mismatches: 0 in 1 samples"); end\nendmodule\n')
    result = _simulate(adder, forged)
    assert result.status != st.PASS and not result.passed


def test_testbench_data_files_are_staged(problems):
    alu = problems["alu"]
    assert alu.data_files and _simulate(alu, alu.reference).status == st.PASS


@pytest.mark.slow
def test_reference_self_check_fails_only_the_documented_designs(problems):
    from tasks.evaluate import evaluate
    from tasks.samples import reference_samples
    ps = list(problems.values())
    outcome = evaluate(ps, reference_samples(ps), progress=False, ks=(1,))
    failing = {r["task_id"] for r in outcome.results if r["status"] != st.PASS}
    assert failing == set(rtllm.KNOWN_REFERENCE_FAILURES), failing
    assert outcome.metrics["pass_at_k"]["pass@1"] == pytest.approx(46 / 50)


def _tarball(src, dest, tamper: bool = False):
    import tarfile
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=f"RTLLM-{rtllm.COMMIT}")
        if tamper:
            import io
            data = b"module testbench; endmodule\n"
            info = tarfile.TarInfo(f"RTLLM-{rtllm.COMMIT}/Arithmetic/Adder/adder_8bit/testbench.v")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("tamper", [False, True])
def test_online_fetch_extracts_the_pinned_tree_and_checks_its_hash(rtllm_dir, tmp_path, monkeypatch, tamper):
    import shutil

    from tasks import fetch
    from verilog_tools.errors import UserError
    archive = tmp_path / "upstream.tar.gz"
    _tarball(rtllm_dir, archive, tamper)
    urls = []
    monkeypatch.setattr(fetch, "download", lambda url, dest: (urls.append(url), shutil.copy(archive, dest)))
    monkeypatch.delenv("RTLLM_V2_DIR", raising=False)
    monkeypatch.setenv("ITERTL_CACHE", str(tmp_path / "cache"))
    if tamper:
        with pytest.raises(UserError, match="failed its hash check"):
            fetch.dataset_dir("rtllm-v2")
        assert not any((tmp_path / "cache").glob("rtllm-v2-*"))   # nothing half-checked is kept
        return
    root = fetch.dataset_dir("rtllm-v2")
    assert urls == [f"https://codeload.github.com/hkust-zhiyao/RTLLM/tar.gz/{rtllm.COMMIT}"]
    assert len(rtllm.load_rtllm_v2(root)) == 50 and fetch.dataset_dir("rtllm-v2") == root   # cached now
