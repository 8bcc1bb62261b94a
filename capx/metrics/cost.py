"""What a model costs: parameters, sequence lengths, decoding speed, peak memory."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any, Callable, TypeVar

import numpy as np

from capx.metrics.failure_modes import generated_mask
from capx.tokenizers.base import END_ID

T = TypeVar("T")


def parameter_counts(model: Any, prefix: str = "params/") -> dict[str, float]:
    """``model.param_counts()`` (total, per tensor, per group) with metric-name prefixes."""
    return {f"{prefix}{name}": float(count) for name, count in model.param_counts().items()}


def mean_length_tokens(ids: np.ndarray, end_id: int = END_ID) -> float:
    """Average decoded length in tokens, ``<END>`` included when emitted."""
    ids = np.asarray(ids)
    if not len(ids):
        return 0.0
    symbols = generated_mask(ids, end_id).sum(axis=1)
    return float((symbols + (ids == end_id).any(axis=1)).mean())


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``(fn(*args, **kwargs), seconds)`` on a monotonic wall clock."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def per_second(count: int, seconds: float) -> float:
    """``count / seconds`` (inf when too fast to time)."""
    return count / seconds if seconds > 0 else float("inf")


def peak_memory(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, int]:
    """``(fn(*args, **kwargs), peak bytes)`` allocated while it ran, as seen by tracemalloc.

    NumPy reports its array buffers to tracemalloc, so this covers arrays and Python objects.
    Tracing slows the call down: measure memory and speed in separate calls.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, int(max(peak, 0))
