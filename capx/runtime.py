"""Process-level settings that make NumPy training loops faster.

A training step allocates and frees tens of megabytes of temporaries (activations, gate buffers,
scores, gradients). glibc serves blocks over its mmap threshold with fresh pages from the kernel
and returns them on free, so every step pays to fault and zero those pages again. Raising the
threshold lets freed blocks be reused from the heap, which speeds up word-model steps (measured
in benchmarks/README.md). Results are bit-identical; only memory reuse changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems

_applied: bool | None = None


def reuse_freed_memory() -> bool:
    """Ask glibc to keep blocks up to 32 MB in the heap for reuse; True when it applied.

    Safe to call repeatedly; a no-op (False) off Linux or without glibc.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc (e.g. musl): keep the defaults
            mallopt = None
        if mallopt is not None:
            _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    log.debug("reuse_freed_memory: %s", "applied" if _applied else "not available")
    return _applied
