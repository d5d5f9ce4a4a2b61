"""Shared by the benchmark scripts: the median time of a step, and a line naming the machine."""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np
import torch


def median_seconds(step, repeats: int, warmup: int = 3) -> float:
    """Median wall time of ``step()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return (f"{platform.processor() or platform.machine()}{gpu}, {torch.get_num_threads()} torch threads, "
            f"numpy {np.__version__}, torch {torch.__version__}")
