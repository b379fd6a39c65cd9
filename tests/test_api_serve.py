"""MODEL=openai:<name> through the official client, against `make serve` with the tiny model on loopback.

The fast tests cover the cache, the retry loop and credential scrubbing without a server; the slow one is
the acceptance run: serve, evaluate, kill the server mid-run, serve again, resume from the cache.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

openai = pytest.importorskip("openai")

from harness.sample import api_sampler  # noqa: E402
from verilog_tools.errors import UserError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_endpoint_is_recorded_without_credentials_and_templates_are_versioned(monkeypatch):
    assert api_sampler.public_endpoint("https://user:sk-secret@host:8443/v1/?key=sk-x#f") == "https://host:8443/v1"
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match="needs OPENAI_API_KEY"):
        api_sampler.endpoint_from_env()
    assert all("/v" in t for t in api_sampler.TEMPLATES)
    chat = api_sampler.TEMPLATES["chat/v1"].render("p")
    assert chat[-1] == {"role": "user", "content": "p"}
    assert api_sampler.prompt_sha256(chat) != api_sampler.prompt_sha256("p")


def test_cache_keeps_completions_across_instances(tmp_path):
    key = api_sampler.request_key("http://h/v1", "m", "chat/v1", "p", {"temperature": 0.2}, 0)
    assert key != api_sampler.request_key("http://h/v1", "m", "chat/v1", "p", {"temperature": 0.2}, 1)
    cache = api_sampler.CompletionCache(tmp_path / "c.sqlite")
    cache.put(key, "module m; endmodule", {"prompt_tokens": 3})
    cache.close()
    assert api_sampler.CompletionCache(tmp_path / "c.sqlite").get(key) == "module m; endmodule"


def test_retries_back_off_on_server_errors_then_give_up_in_one_line():
    request = SimpleNamespace(method="POST", url="http://h", headers={})
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise openai.APIConnectionError(request=request)
        return "ok"
    assert api_sampler.call_with_retries(flaky, retries=3, base_delay=0.001) == "ok" and len(calls) == 3

    def refused():
        raise openai.APIConnectionError(request=request)
    with pytest.raises(UserError, match="after 2 attempt") as err:
        api_sampler.call_with_retries(refused, retries=1, base_delay=0.001)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- acceptance: a real server on loopback

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make(*args: str) -> list[str]:
    return ["make", "-s", *args, f"PYTHON={sys.executable}", "INSTALLED="]


def _start_server(model: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(_make("serve", f"MODEL={model}", "HOST=127.0.0.1", f"PORT={port}", "MAX_NEW_TOKENS=48"),
                            cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make serve exited early: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    pytest.fail("make serve did not listen within 120 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _rows(cache: Path) -> int:
    if not cache.is_file():
        return 0
    with sqlite3.connect(cache, timeout=5) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.mark.slow
def test_eval_through_make_serve_resumes_from_the_cache_after_the_server_dies(tmp_path, torch_one_thread):
    from harness.model.tiny_model import build_tiny_model
    corpus = [f"module top_module(input [{i % 8}:0] a, output [{i % 8}:0] q);\n assign q = ~a;\nendmodule\n"
              for i in range(60)]
    model = build_tiny_model(tmp_path / "tiny", corpus, seed=0, vocab_size=512, hidden_size=64, num_layers=2,
                             num_heads=2, intermediate_size=128, max_positions=2048)
    port, log, cache = _free_port(), tmp_path / "serve.log", tmp_path / "cache.sqlite"
    env = {**os.environ, "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "test-key-not-secret"}
    eval_cmd = _make("eval", f"MODEL=openai:{model}", "BENCH=synthetic", "LIMIT=4", "N=3", "K=1", "TEMPERATURE=0.8",
                     "CONCURRENCY=1", "RETRIES=0", "MAX_NEW_TOKENS=48", f"API_CACHE={cache}",
                     f"RESULTS_DIR={tmp_path / 'results'}", "RUN=api")
    server = _start_server(model, port, log)
    try:
        first = subprocess.Popen(eval_cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while _rows(cache) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        _stop(server)                                   # the server dies mid-run
        out = first.communicate(timeout=120)[0].decode()
    finally:
        _stop(server)
    cached = _rows(cache)
    assert first.returncode != 0, out                  # it could not finish without the server
    assert 2 <= cached < 12, (cached, out)
    server = _start_server(model, port, log)
    try:
        second = subprocess.run(eval_cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    finally:
        _stop(server)
    assert second.returncode == 0, second.stdout + second.stderr
    run = tmp_path / "results" / "api"
    metrics = json.loads((run / "metrics.json").read_text())
    usage = metrics["token_usage"]
    assert usage["cached"] == cached and usage["requests"] == 12 - cached   # nothing was paid twice
    assert usage["completion_tokens"] > 0 and metrics["samples"] == 12
    assert json.loads((run / "manifest.json").read_text())["token_usage"] == usage
    assert metrics["sampling"]["template"] == "chat/v1" and metrics["prompt_template"] == "chat/v1"
    rows = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    assert all(r["prompt_sha256"].startswith("sha256:") for r in rows)
    for path in run.rglob("*"):
        if path.is_file():
            assert "test-key-not-secret" not in path.read_text(errors="replace"), path
