"""First-order update rules with the CS231n signature ``rule(w, dw, config) -> (next_w, config)``.

``config`` holds hyperparameters and the rule's running state (momentum, moments, step count);
missing hyperparameters get the CS231n defaults. Rules compute in the dtype of ``w``. The solver
applies them to the model's whole flat parameter buffer at once. :func:`hyperparameters` declares
the settings a rule takes (besides the learning rate) and their ranges, so that
``solver.options`` is checked before a run starts (:mod:`capx.run.config`).
"""

from __future__ import annotations

import numpy as np

from capx.registry import UPDATE_RULES


def _dtype_scalar(w: np.ndarray, value: float):
    return w.dtype.type(value)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


UNIT = (lambda v: _number(v) and 0 <= v < 1, "must be a number in [0, 1)")
POSITIVE = (lambda v: _number(v) and v > 0, "must be a positive number")


def hyperparameters(**rules):
    """Declare an update rule's settings: ``name=(check, message)``; see :data:`UNIT`."""

    def declare(rule):
        rule.hyperparameters = rules
        return rule

    return declare


@UPDATE_RULES.register("sgd")
@hyperparameters()
def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    w -= _dtype_scalar(w, config["learning_rate"]) * dw
    return w, config


@UPDATE_RULES.register("sgd_momentum")
@hyperparameters(momentum=UNIT)
def sgd_momentum(w, dw, config=None):
    """SGD with momentum: v = mu * v - lr * dw; w += v."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity")
    if v is None:
        v = np.zeros_like(w)
    v *= _dtype_scalar(w, config["momentum"])
    v -= _dtype_scalar(w, config["learning_rate"]) * dw
    w += v
    config["velocity"] = v
    return w, config


@UPDATE_RULES.register("rmsprop")
@hyperparameters(decay_rate=UNIT, epsilon=POSITIVE)
def rmsprop(w, dw, config=None):
    """RMSProp: a decaying average of squared gradients scales each step."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    cache = config.get("cache")
    if cache is None:
        cache = np.zeros_like(w)
    decay = _dtype_scalar(w, config["decay_rate"])
    cache *= decay
    cache += (1 - decay) * dw * dw
    w -= _dtype_scalar(w, config["learning_rate"]) * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    return w, config


#: elements per block in :func:`adam`: its five arrays' blocks stay in cache while all of its
#: steps run, instead of every step streaming whole arrays through memory
ADAM_BLOCK = 1 << 15


@UPDATE_RULES.register("adam")
@hyperparameters(beta1=UNIT, beta2=UNIT, epsilon=POSITIVE)
def adam(w, dw, config=None):
    """Adam with bias correction; ``t`` counts updates (CS231n increments it before use).

    Works in place, block by block, with the bias corrections folded into two scalars:
    ``w -= lr_t * m / (sqrt(v) + eps_t)``, which equals the textbook form exactly.
    """
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    w, dw = np.ascontiguousarray(w), np.ascontiguousarray(dw)  # no copy in the usual case
    m, v = config.get("m"), config.get("v")
    if m is None:
        m, v = np.zeros_like(w), np.zeros_like(w)
    m, v = np.ascontiguousarray(m), np.ascontiguousarray(v)
    beta1, beta2 = config["beta1"], config["beta2"]
    config["t"] += 1
    t = config["t"]
    scalar = w.dtype.type
    b1, c1, b2, c2 = scalar(beta1), scalar(1 - beta1), scalar(beta2), scalar(1 - beta2)
    step = scalar(config["learning_rate"] * np.sqrt(1 - beta2**t) / (1 - beta1**t))
    eps = scalar(config["epsilon"] * np.sqrt(1 - beta2**t))
    flat_w, flat_dw, flat_m, flat_v = (a.reshape(-1) for a in (w, dw, m, v))
    scratch = np.empty((2, min(ADAM_BLOCK, flat_w.size)), dtype=w.dtype)
    for start in range(0, flat_w.size, ADAM_BLOCK):
        block = slice(start, start + ADAM_BLOCK)
        g, mb, vb = flat_dw[block], flat_m[block], flat_v[block]
        a, b = scratch[0, : g.size], scratch[1, : g.size]
        np.multiply(g, c1, out=a)
        mb *= b1
        mb += a
        np.multiply(g, g, out=a)
        a *= c2
        vb *= b2
        vb += a
        np.sqrt(vb, out=b)
        b += eps
        np.divide(mb, b, out=b)
        b *= step
        flat_w[block] -= b
    config["m"], config["v"] = m, v
    return w, config
