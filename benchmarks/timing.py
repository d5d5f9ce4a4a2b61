"""Shared by the benchmark scripts: the median time of a step, and a line naming the machine."""

from __future__ import annotations

import os
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


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what the platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    """One line naming the device, the CPU and its cores, the torch threads and the versions."""
    cpu = f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} cores), {torch.get_num_threads()} torch threads"
    where = torch.cuda.get_device_name(device) + "; CPU " + cpu if device.type == "cuda" else cpu
    return f"device {device}: {where}; torch {torch.__version__}, numpy {np.__version__}"
