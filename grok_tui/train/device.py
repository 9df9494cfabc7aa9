"""The device a run trains on and how: CUDA or CPU, CPU threads, matmul precision, graph capture, and
what the GPU is doing (name, memory, utilisation) for the front ends' status lines."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from grok_tui.errors import ConfigError
from grok_tui.spec.checks import device_error


def check_device(name: str) -> str | None:
    """The sentence for a device this machine cannot train on (a bad name, no CUDA, no such GPU), or None."""
    bad = device_error(name)
    if bad or name in ("auto", "cpu"):
        return bad
    if not torch.cuda.is_available():
        return f"device '{name}' was asked for but CUDA is not available here (use --device cpu or auto)."
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        return f"device '{name}' does not exist (this machine has {torch.cuda.device_count()} GPUs)."
    return None


def resolve_device(name: str) -> torch.device:
    """The torch device of a config's `device` (auto: CUDA when present); ConfigError (one sentence) for a
    device this machine does not have."""
    bad = check_device(name)
    if bad:
        raise ConfigError(bad)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def apply_precision(precision: str, device: torch.device) -> None:
    """tf32 lets CUDA's float32 matmuls and convolutions use TensorFloat-32; fp32 and bf16 keep them exact
    (bf16 is an autocast around the training forward, see ``autocast``). Process-wide settings."""
    tf32 = precision == "tf32" and device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def autocast(precision: str, device: torch.device):
    """The context of a training forward pass: bf16 autocast, or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_mode(device: torch.device) -> str:
    """torch.compile's mode for the training forward: CUDA graphs on CUDA (every step has the same
    shapes, so one graph replays; the launch overhead of a small model's many kernels goes), inductor's
    default elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def gpu_status(device: torch.device) -> dict[str, Any] | None:
    """Name, memory in use and peak (MiB), and utilisation (% , where NVML is installed) of a CUDA device;
    None on the CPU. Reads counters only: no sync with the device."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(index),
                           "gpu_mem_mib": round(torch.cuda.memory_allocated(index) / 2**20, 1),
                           "gpu_peak_mib": round(torch.cuda.max_memory_allocated(index) / 2**20, 1)}
    with contextlib.suppress(Exception):  # nvidia-ml-py is an optional extra; NVML may be missing
        out["gpu_util"] = torch.cuda.utilization(index)
    return out
