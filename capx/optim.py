"""First-order update rules with the CS231n signature ``rule(w, dw, config) -> (next_w, config)``.

``config`` holds hyperparameters and the rule's running state (momentum, moments, step count);
missing hyperparameters get the CS231n defaults. Rules compute in the dtype of ``w``. The solver
applies them to the model's whole flat parameter buffer at once.
"""

from __future__ import annotations

import numpy as np

from capx.registry import UPDATE_RULES


def _dtype_scalar(w: np.ndarray, value: float):
    return w.dtype.type(value)


@UPDATE_RULES.register("sgd")
def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-2)
    w -= _dtype_scalar(w, config["learning_rate"]) * dw
    return w, config


@UPDATE_RULES.register("sgd_momentum")
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


@UPDATE_RULES.register("adam")
def adam(w, dw, config=None):
    """Adam with bias correction; ``t`` counts updates (CS231n increments it before use)."""
    config = {} if config is None else config
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("t", 0)
    m, v = config.get("m"), config.get("v")
    if m is None:
        m, v = np.zeros_like(w), np.zeros_like(w)
    beta1, beta2 = config["beta1"], config["beta2"]
    config["t"] += 1
    t = config["t"]
    m *= _dtype_scalar(w, beta1)
    m += _dtype_scalar(w, 1 - beta1) * dw
    v *= _dtype_scalar(w, beta2)
    scratch = np.multiply(dw, dw)
    scratch *= _dtype_scalar(w, 1 - beta2)
    v += scratch
    # w -= lr * m_hat / (sqrt(v_hat) + eps), with the corrections folded into two scalars.
    step = config["learning_rate"] * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    eps_hat = config["epsilon"] * np.sqrt(1 - beta2**t)
    np.sqrt(v, out=scratch)
    scratch += _dtype_scalar(w, eps_hat)
    np.divide(m, scratch, out=scratch)
    scratch *= _dtype_scalar(w, step)
    w -= scratch
    config["m"], config["v"] = m, v
    return w, config
