"""Process-level settings that make NumPy training loops faster.

A training step allocates and frees tens of megabytes of temporaries (activations, gate buffers,
scores, gradients). glibc serves blocks over its mmap threshold with fresh pages from the kernel
and returns them on free, so every step pays to fault and zero those pages again. Raising the
threshold lets freed blocks be reused from the heap, which speeds up word-model steps (measured
in benchmarks/README.md). Setting it also switches off glibc's own adjustment of the trim
threshold, which then stays at 128 KB: the heap's free top is handed back to the kernel after
every step and faulted in again the next, so the trim threshold is raised too (steps up to
18% faster, none clearly slower: benchmarks/README.md). The process then keeps up to 1 GB of
freed heap for the rest of its life (a training step's peak, needed again at once; evaluation
and sampling afterwards reuse it). Results are bit-identical; only memory reuse changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024  # free heap kept for reuse (faster than 64 or 256 MB)

_applied: bool | None = None


def reuse_freed_memory() -> bool:
    """Ask glibc to serve blocks up to 32 MB from the heap and to keep up to 1 GB of freed heap
    for reuse; True when the first applied (the second is logged if refused).

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
            if _applied and not mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES):
                log.debug("reuse_freed_memory: the trim threshold was refused")
    log.debug("reuse_freed_memory: %s", "applied" if _applied else "not available")
    return _applied


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable, else the physical memory), or None
    where neither can be read: what size checks compare a file's or a job's needs with."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def room_for(nbytes: int) -> str | None:
    """None when ``nbytes`` fit in the memory available, else a phrase saying how much there is."""
    available = available_memory()
    if available is None or nbytes <= available:
        return None
    return (f"{nbytes / 1024 ** 3:,.1f} GB, more than the {available / 1024 ** 3:,.1f} GB of "
            f"memory available")
