"""Which torch device and numeric precision a job runs with, and how they are described in run metadata."""

from __future__ import annotations

import contextlib
import platform
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]
# CPU flags of instruction sets that compute bf16 dot products natively (AVX512-BF16, AMX).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def default_device() -> torch.device:
    """cuda when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def bf16_native(dev: torch.device) -> bool:
    """Whether the device computes bf16 matmuls natively (a GPU that supports bf16, a CPU with AVX512-BF16 or AMX)."""
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return dev.type == "cpu" and bool(cpu_flags() & set(BF16_CPU_FLAGS))


def resolve_precision(dev: torch.device, precision: Precision = "auto") -> Literal["bf16", "fp32"]:
    """``auto``: bf16 autocast where the hardware computes it natively, fp32 elsewhere."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision: expected 'auto', 'bf16' or 'fp32', found {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_native(dev) else "fp32"
    return precision


def autocast(dev: torch.device, precision: Literal["bf16", "fp32"]):
    """bf16 autocast for ``precision="bf16"`` (weights and optimizer state stay fp32); a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16)
