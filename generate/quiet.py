"""Silence transformers' weight-loading report where missing weights are expected (a new head)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from transformers.utils import logging as hf_logging


@contextmanager
def expected_new_weights() -> Iterator[None]:
    """Inside: transformers logs errors only (no report listing the newly initialised head); restored after."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
