"""Which floating-point arithmetic a run used: NumPy's version and its BLAS library, kernels and
thread count, as one line (the run's ``capx.arithmetic`` tag).

A run is reproducible to the last bit only on the same arithmetic. Float32 training over tens of
epochs amplifies rounding: the study's char LSTM on fold 1 ends 0.012 test bits/char apart with
two BLAS threads instead of one (another blocking of the same products), about as far apart as
two seeds. So the commit alone does not say whether a number reproduces on another machine; this
line, beside it, does.
"""

from __future__ import annotations

import numpy as np


def arithmetic() -> str:
    """``numpy 2.4.6; openblas 0.3.31 (Haswell kernels, 1 thread)``: this process's NumPy and
    the BLAS it calls (from threadpoolctl), with the thread count in force now."""
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    parts = [f"numpy {np.__version__}"]
    for lib in blas:
        detail = [f"{lib.get('architecture')} kernels"] if lib.get("architecture") else []
        threads = lib.get("num_threads")
        detail.append(f"{threads} thread" + ("" if threads == 1 else "s"))
        parts.append(f"{lib.get('internal_api')} {lib.get('version')} ({', '.join(detail)})")
    if not blas:
        parts.append("BLAS unknown")
    return "; ".join(parts)


if __name__ == "__main__":  # the line for this machine: python -m capx.tracking.arithmetic
    print(arithmetic())
