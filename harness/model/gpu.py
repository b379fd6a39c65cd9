"""GPU helpers shared by the samplers and the train stage: how many CUDA devices are visible, which one
this process runs on, handing cached memory back, and waiting until enough of a GPU is free.

torch is imported inside each function: this module sits low in the layering (the vLLM sampler, the
loop and the accelerate launcher import it) and must import without torch, which answers 0 devices
and "cpu" when it is missing.
"""
from __future__ import annotations

import gc
import time

from verilog_tools.errors import UserError


def cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_name() -> str:
    """The CUDA device this process runs on, or "cpu" (recorded in sample_stats.json and train_log.json)."""
    import torch
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def release_cuda_cache() -> None:
    """Hand the memory torch keeps cached (an earlier stage's model) back before another process needs it."""
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def wait_for_free_gpu_memory(fraction: float, timeout_s: float, *, devices: int = 1, what: str = "this stage",
                             poll_s: float = 2.0, query=None) -> list[tuple[int, int]]:
    """Wait until ``fraction`` of each of the first ``devices`` CUDA GPUs is free; UserError (one line,
    the figures) after ``timeout_s``. Returns (free, total) bytes per GPU; [] without CUDA.

    Free means free to the whole machine (``cudaMemGetInfo``): memory another process still holds, such
    as an earlier stage's engine that is shutting down, counts as taken. ``query(device)`` replaces
    ``torch.cuda.mem_get_info`` in tests.
    """
    if query is None:
        if cuda_device_count() == 0:
            return []
        import torch
        query = torch.cuda.mem_get_info
    deadline = time.monotonic() + timeout_s
    while True:
        figures = [tuple(query(d)) for d in range(devices)]
        short = [(d, free, total) for d, (free, total) in enumerate(figures) if free < fraction * total]
        if not short:
            return figures
        if time.monotonic() >= deadline:
            d, free, total = short[0]
            gib = 1 << 30
            raise UserError(f"{what} needs {fraction:.0%} of GPU {d} free ({fraction * total / gib:.1f} of "
                            f"{total / gib:.1f} GiB) but only {free / gib:.1f} GiB was free after {timeout_s:g} s: "
                            "another process holds GPU memory (nvidia-smi shows which); end it, or lower "
                            "vllm_gpu_memory_utilization")
        time.sleep(poll_s)
