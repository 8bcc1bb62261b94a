"""What machine the figures come from, whether something else was using it, and how fast it can go.

- :func:`machine_info`: date, CPU model, cores, NumPy and its BLAS, OpenBLAS environment variables.
- :func:`check_busy`: CPU time used by *other* processes over about a second, from ``/proc/stat``
  (falls back to the load average where that file does not exist).
- :func:`gemm_peak_gflops`: this machine's float32 matrix-product rate with NumPy, the yardstick
  for "fraction of peak".
- :func:`time_calls`: median wall time of a function after warm-up.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

BUSY_THRESHOLD_CORES = 0.5
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


# -- timing -------------------------------------------------------------------------------------

def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_ms(times: list[float]) -> float:
    return 1000.0 * statistics.median(times)


# -- machine description ------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what the platform module says)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries NumPy loaded (threadpoolctl when present, else ``np.show_config``)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        keys = ("internal_api", "version", "num_threads", "threading_layer", "architecture")
        found = [{k: info.get(k) for k in keys} for info in threadpool_info()
                 if info.get("user_api") == "blas"]
        if found:
            return found
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return [{"internal_api": blas.get("name"), "version": blas.get("version"),
                 "num_threads": None}]
    except Exception:  # old NumPy without mode="dicts"
        return [{"internal_api": "unknown", "version": None, "num_threads": None}]


def limit_blas_threads(threads: int | None):
    """Context that caps NumPy's BLAS threads (a no-op without threadpoolctl or with None)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def machine_info() -> dict[str, Any]:
    """Everything the report header prints about the machine."""
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable_cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
    }


# -- busy check ---------------------------------------------------------------------------------

@dataclass
class BusyReport:
    """CPU use outside this process during a short sampling window."""

    other_cores_busy: float  # cores' worth of CPU used by other processes
    own_cores_busy: float
    load_average: float
    seconds: float
    source: str  # "/proc/stat" or "loadavg"
    busy: bool

    def describe(self) -> str:
        if self.source == "loadavg":
            what = f"1-minute load average {self.load_average:.2f}"
        else:
            what = (f"{self.other_cores_busy:.2f} cores busy in other processes over "
                    f"{self.seconds:.1f} s (load average {self.load_average:.2f})")
        return f"machine busy: {what}; figures unreliable" if self.busy else f"machine quiet: {what}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _proc_stat_jiffies() -> tuple[int, int, int]:
    """(busy, total) jiffies summed over all CPUs, and the number of CPUs /proc/stat lists."""
    with open("/proc/stat", encoding="utf-8") as f:
        lines = f.read().splitlines()
    fields = [int(v) for v in lines[0].split()[1:]]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user..steal; guest time is already inside user
    return total - idle, total, max(cpus, 1)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def check_busy(seconds: float = 1.0, threshold: float = BUSY_THRESHOLD_CORES) -> BusyReport:
    """Sample CPU use for ``seconds``; busy when other processes used more than ``threshold`` cores."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    try:
        busy0, total0, cores = _proc_stat_jiffies()
    except (OSError, ValueError, IndexError):
        return BusyReport(0.0, 0.0, load, 0.0, "loadavg", load > threshold)
    own0, wall0 = _own_cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    busy1, total1, _ = _proc_stat_jiffies()
    own1, wall1 = _own_cpu_seconds(), time.perf_counter()
    elapsed = wall1 - wall0
    all_cores = cores * (busy1 - busy0) / max(total1 - total0, 1)
    own = (own1 - own0) / elapsed
    other = max(all_cores - own, 0.0)
    return BusyReport(round(other, 3), round(own, 3), load, round(elapsed, 3), "/proc/stat",
                      other > threshold)


# -- GEMM peak ----------------------------------------------------------------------------------

def gemm_peak_gflops(size: int = 1024, repeats: int = 20, dtype: Any = np.float32,
                     seed: int = 0) -> float:
    """float32 GFLOP/s of ``np.matmul`` on square ``size`` matrices (median of ``repeats``)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty((size, size), dtype=dtype)
    times = time_calls(lambda: np.matmul(a, b, out=out), repeats=repeats, warmup=3)
    return 2.0 * size**3 / statistics.median(times) / 1e9
