"""How a run's device, GPU memory and threads read in a status line, for the CLI's progress bar and the
app alike (no torch).

On CUDA every metrics row carries ``gpu_mem_mib`` and ``gpu_peak_mib`` (memory in use and peak, MiB)
and maybe ``gpu_util`` (percent, from NVML), and the run's ``started`` event carries ``gpu`` (the device
name); see train/loop.py and train/device.py.
"""

from __future__ import annotations

from typing import Any


def gpu_text(row: dict) -> str:
    """'mem 312/540 MiB util 87%' from a metrics row on CUDA (memory in use / peak), '' elsewhere."""
    if not isinstance(row.get("gpu_mem_mib"), (int, float)):
        return ""
    peak = row.get("gpu_peak_mib")
    peak_s = f"/{peak:.0f}" if isinstance(peak, (int, float)) else ""
    util = f" util {row['gpu_util']:.0f}%" if isinstance(row.get("gpu_util"), (int, float)) else ""
    return f"mem {row['gpu_mem_mib']:.0f}{peak_s} MiB{util}"


def device_text(device: str, gpu: str | None = None) -> str:
    """'cuda:0 (NVIDIA H200)' when the device has a name, else the device."""
    return f"{device} ({gpu})" if gpu else device


def threads_text(threads: int | None, cpus: int) -> str:
    """The CPU threads a run uses as set: 'threads 2', or 'threads 16 (auto)' for 0 (one per core)."""
    if threads is None:
        return ""
    return f"threads {threads}" if threads else f"threads {cpus} (auto)"


def fmt(v: Any) -> str:
    """A value as the runs tables print it: '-' where unknown, floats to three significant digits."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
