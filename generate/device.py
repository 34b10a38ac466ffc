"""Which torch device a job runs on, and how it is described in run metadata."""

from __future__ import annotations

import platform

import torch


def default_device() -> torch.device:
    """cuda when a GPU is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
