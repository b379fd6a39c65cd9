"""Shared fixtures: where the upstream data lives (only through environment variables) and markers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir(var: str) -> Path:
    value = os.environ.get(var)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{var} is not set: CI must point it at the upstream data (see .ci/run)")
        pytest.skip(f"{var} not set; export it to run tests that need this data")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{var}={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def v1_dir() -> Path:
    return _data_dir("VERILOG_EVAL_V1_DIR")


@pytest.fixture(scope="session")
def v2_dir() -> Path:
    return _data_dir("VERILOG_EVAL_V2_DIR")


@pytest.fixture(scope="session")
def rtlcoder_dir() -> Path:
    return _data_dir("RTLCODER_SMALL_DIR")


@pytest.fixture(scope="session")
def rtllm_dir() -> Path:
    return _data_dir("RTLLM_V2_DIR")


@pytest.fixture(autouse=True)
def _no_reference_cache(monkeypatch):
    """Evaluations in tests simulate every reference unless a test asks for a cache: a user's
    ITERTL_REFERENCE_CACHE must neither change what a test counts nor receive its verdicts."""
    monkeypatch.delenv("ITERTL_REFERENCE_CACHE", raising=False)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread: the test machines are shared, and one is also faster for models this small."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
