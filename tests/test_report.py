"""report.md, plots and comparisons, built from small fake run folders in the real file formats."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from harness.commands import report as report_cli
from harness.reports.compare import compare_runs
from harness.reports.report import build_report
from harness.objective.scoring import score_stats
from verilog_tools.errors import UserError

FAMILIES = ("adder", "fsmx", "mux")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# One scored group: compiling (0.9), not compiling (0), multi-module (-1), unscorable (None), reference.
CANDIDATES = [{"source": "model", "score": score, "rouge_l": rouge, "syntax_ok": ok, "modules": modules,
               "status": status} for score, rouge, ok, modules, status in (
    (0.9, 0.9, True, 1, "ok"), (0.0, None, False, 1, "compile_error"), (-1.0, None, None, 2, "multi_module"),
    (None, None, None, 1, "infra_error"))] + [
    {"source": "reference", "score": 1.0, "rouge_l": None, "syntax_ok": None, "modules": 1, "status": "reference"}]


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, list):
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    else:
        path.write_text(json.dumps(data))


def _eval_folder(folder: Path, passes: int, bench="synthetic", ids=None, pass_at_k=None, smoke=False):
    ids = ids or [f"syn-{f}-h{i:03d}" for f in FAMILIES for i in range(2)]
    statuses = ["pass"] * passes + ["syntax_error", "mismatch", "compile_error", "timeout"] * len(ids)
    rows = [{"task_id": t, "completion_id": 0, "completion": "x", "status": s, "passed": s == "pass"}
            for t, s in zip(ids, statuses)]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "syntax_error", "mismatch",
                                                               "compile_error", "timeout", "no_code")}
    _write(folder / "results.jsonl", rows)
    _write(folder / "metrics.json", {"benchmark": bench, "n": 1, "temperature": 0.0, "simulator": "12.0 (stable)",
                                     "problems": len(ids), "smoke": smoke, "status_counts": counts,
                                     "pass_at_k": pass_at_k or {"pass@1": passes / len(ids)}})


def _train_log(it: int) -> dict:
    history = [{"loss": 0.5 - 0.01 * s, "ce_loss": 0.4 - 0.01 * s, "rank_loss": 0.0 if it == 0 else 0.02 / s,
                "rank_pairs": 0.0 if it == 0 else 10.0, "step": s, "epoch": s / 4,
                **({} if it == 0 else {"rank_accuracy": 0.5 + 0.05 * s})} for s in range(1, 5)]
    return {"groups": 8, "steps": 4, "history": history, "final": history[-1]}


def fake_train_run(root: Path, name="run", iters=3, present=None, mode="iterative") -> Path:
    """A train run folder with iterations 0..present (default: all) of the real files."""
    path = root / name
    config = {"preset": "tiny-cpu", "model": "tiny", "data": "synthetic", "mode": mode, "filter": True,
              "k": 4, "iters": iters, "seed": 0, "eval_bench": "synthetic", "eval_n": 1, "eval_temperature": 0.0,
              "learning_rate": 0.0001, "warmup_learning_rate": 0.003, "score": "paper"}
    _write(path / "manifest.json", {"kind": "train", "config": config, "git": {"commit": "abc123", "dirty": True},
                                    "tools": {"iverilog": "12.0 (stable)"}, "seeds": {"seed": 0},
                                    "python": "3.11.7", "packages": {"torch": "2.13.0"},
                                    "started": "2026-01-01T00:00:00", "finished": "2026-01-01T01:00:00"})
    for it in range(iters + 1 if present is None else present + 1):
        d = path / f"iter-{it:02d}"
        _eval_folder(d / "eval", passes=1 + it)
        _write(d / "train_log.json", _train_log(it))
        if it == 0:
            continue
        rows = [{"id": "r1", "candidates": CANDIDATES}]
        _write(d / "scores.jsonl", rows)
        stats = score_stats(rows)
        if it == 1:
            stats.pop("mean_score")  # as written before mean_score existed: recomputed from scores.jsonl
        _write(d / "score_stats.json", stats)
    if present is not None:
        (path / ".incomplete").touch()
    return path


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_mean_score_counts_only_scorable_sampled_candidates():
    assert score_stats([{"candidates": CANDIDATES}])["mean_score"] == pytest.approx(-0.1 / 3)


def test_train_report_has_table_breakdown_and_legible_plots(tmp_path):
    run = fake_train_run(tmp_path)
    text = build_report(run).read_text()
    assert "| preset | tiny-cpu |" in text and "abc123 (DIRTY tree)" in text and "iverilog 12.0 (stable)" in text
    assert "| iteration | held-out pass@1 | held-out syntax-valid |" in text
    # iteration 1's mean score comes from scores.jsonl: (0.9 + 0 - 1) / 3
    assert "| 1 | 0.333 |" in text and "| -0.033 |" in text
    assert "### Iteration 0 (6 samples)" in text and "### Iteration 3 (6 samples)" in text
    assert "| adder | 1 | 1 | 0 | 0 | 0 | 2 | 0.500 |" in text  # pass, syntax, compile, timeout, mismatch
    assert "Against the published numbers" not in text  # synthetic, not VerilogEval
    pngs = sorted((run / "plots").glob("*.png"))
    assert len(pngs) >= 4
    for png in pngs:
        width, height = _png_size(png)
        assert width >= 600 and height >= 400 and png.stat().st_size > 10_000
        assert f"](plots/{png.name})" in text


def test_unfinished_run_names_the_missing_iterations(tmp_path):
    text = build_report(fake_train_run(tmp_path, iters=4, present=1)).read_text()
    assert "UNFINISHED" in text and "Iterations with no folder: 2, 3, 4." in text
    assert "### Iteration 1" in text and not any(line.startswith("| 2 |") for line in text.splitlines())


def test_verilog_eval_run_gets_the_paper_table(tmp_path):
    run = tmp_path / "ve"
    _write(run / "manifest.json", {"kind": "eval", "config": {"bench": "verilog-eval-v1-human", "n": 10,
                                                               "model": "m", "temperature": 0.8, "top_p": 0.95}})
    _eval_folder(run, passes=2, bench="verilog-eval-v1-human", ids=["fsm1", "kmap2", "zero", "dff8"],
                 pass_at_k={"pass@1": 0.4, "pass@5": 0.55, "pass@10": 0.6})
    text = build_report(run).read_text()
    assert "| ITERTL (paper, v3) | verilog-eval-v1-human | 53.8 | 60.8 | 64.1 |" in text
    assert "| RTLCoder-DeepSeek | verilog-eval-v1-human | 41.6 |" in text and "| 61.2 |" in text
    assert "| this run | verilog-eval-v1-human | 40.0 | 55.0 | 60.0 | 1 | 0.0 | 12.0 (stable) |" in text
    assert "| fsm | 1 |" in text and "| kmap / truth table / waveform |" in text
    assert not (run / "plots").exists()


def test_train_command_ends_with_a_report_and_survives_a_failing_one(tmp_path, monkeypatch, capsys):
    from harness.commands import train as train_cli
    from harness.loop import loop
    from harness.reports import report

    def fake_iterations(run, cfg):
        fake_train_run(run.path.parent, run.path.name, iters=cfg.iters)
        return {"iterations": [{"iteration": 0, "pass@1": 0.1}]}

    monkeypatch.setattr(loop, "run_iterations", fake_iterations)
    assert train_cli.main_train(["--results-dir", str(tmp_path), "--run", "a", "--iters", "1"]) == 0
    assert "Per-iteration results" in (tmp_path / "a" / "report.md").read_text()

    monkeypatch.setattr(report, "build_report", lambda path: 1 / 0)
    assert train_cli.main_train(["--results-dir", str(tmp_path), "--run", "b", "--iters", "1"]) == 0
    assert "make report RUN=" in capsys.readouterr().err
    assert not (tmp_path / "b" / ".incomplete").exists() and not (tmp_path / "b" / "report.md").exists()


def test_eval_command_writes_a_report(tmp_path):
    from harness.commands.eval import main_eval

    main_eval(["--bench", "synthetic", "--model", "reference", "--limit", "2", "--results-dir", str(tmp_path),
               "--run", "e"])
    assert "## Failure breakdown" in (tmp_path / "e" / "report.md").read_text()


def test_compare_writes_a_new_folder_each_time(tmp_path, capsys):
    a, b = fake_train_run(tmp_path, "a"), fake_train_run(tmp_path, "b", mode="static")
    table = compare_runs([a, b], tmp_path, labels=["iterative, filter on", "static, filter on"])
    assert "| iteration | iterative, filter on | static, filter on |" in table and "| 3 | 0.667 | 0.667 |" in table
    md = (tmp_path / "compare.md").read_text()
    assert "| mode | iterative | static |" in md and "| learning_rate |" not in md  # only differences
    assert _png_size(tmp_path / "compare_pass_at_1.png")[0] >= 600
    argv = ["a", "b", "--results-dir", str(tmp_path)]
    assert report_cli.main_compare(argv) == 0 and report_cli.main_compare(argv) == 0
    folders = sorted(tmp_path.glob("compare-*"))
    assert len(folders) == 2 and all((f / "compare.md").exists() for f in folders)
    assert "comparison folder:" in capsys.readouterr().out
    report_cli.main_compare(argv + ["--run", "mine"])
    with pytest.raises(UserError, match="already exists"):
        report_cli.main_compare(argv + ["--run", "mine"])


def test_cli_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(UserError, match=r"run folder 'nope' not found .*a name under"):
        report_cli.main_report(["nope", "--results-dir", str(tmp_path)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not a run folder"):
        report_cli.main_report([str(tmp_path / "empty")])
    run = fake_train_run(tmp_path, "a")
    with pytest.raises(UserError, match="at least two run folders, got 1"):
        report_cli.main_compare([str(run)])
    with pytest.raises(UserError, match="1 labels for 2 runs"):
        report_cli.main_compare([str(run), str(run), "--labels", "x", "--results-dir", str(tmp_path)])
    assert report_cli.main_report(["a", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("report.md")
