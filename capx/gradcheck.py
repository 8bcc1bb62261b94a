"""Numerical gradients (centred differences) for checking backward passes, as in CS231n."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _centred_differences(f: Callable[[np.ndarray], float], x: np.ndarray, h: float,
                         verbose: bool = False) -> np.ndarray:
    """(f(x + h e_i) - f(x - h e_i)) / 2h for every entry i of ``x`` (restored afterwards)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, verbose: bool = True,
                            h: float = 1e-5) -> np.ndarray:
    """Gradient of the scalar function ``f`` at ``x`` (modified in place, then restored)."""
    return _centred_differences(f, x, h, verbose)


def eval_numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                                  df: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of ``sum(f(x) * df)`` at ``x``, for array-valued ``f`` with upstream ``df``."""
    return _centred_differences(lambda v: float(np.sum(np.array(f(v), copy=True) * df)), x, h)


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """Maximum relative error, as the CS231n notebooks print it."""
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
