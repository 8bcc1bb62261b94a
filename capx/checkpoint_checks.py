"""What a loaded checkpoint must look like, so a damaged or hand-made file is refused while it is
loaded (before any MLflow run exists) instead of failing mid-run or training on garbage.

Each check returns what is wrong, in words (an empty list: nothing);
:func:`capx.checkpoint.load_checkpoint` raises them as one
:class:`~capx.checkpoint.CheckpointError` that names the file. The shapes they expect are the
ones :meth:`capx.solver.CaptioningSolver.state_dict` writes: parameters, the update rule's
state per parameter (or per ``flat`` buffer, all parameters in one), and the legacy MT19937
state of :meth:`numpy.random.RandomState.get_state`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
FLAT = "flat"  # the optimiser state over all parameters at once (see capx.solver.apply_update)
MT19937_WORDS = 624


def state_problems(state: dict[str, Any], shapes: dict[str, list[int]],
                   loss_history: np.ndarray) -> list[str]:
    """Everything wrong with a decoded solver ``state`` whose header lists parameter ``shapes``."""
    params = state["params"]
    return (param_problems(params, shapes) + counter_problems(state, loss_history)
            + optimiser_problems(state["optim_configs"], params)
            + rng_problems(state["rng_state"]))


def param_problems(params: dict[str, np.ndarray], shapes: dict[str, list[int]]) -> list[str]:
    """Weights are float32/float64, finite, and shaped as the header says."""
    problems = []
    for name, value in params.items():
        where = f"parameter {name!r}"
        if tuple(value.shape) != tuple(shapes[name]):
            problems.append(f"{where} has shape {tuple(value.shape)}, the header says "
                            f"{tuple(shapes[name])}")
        problems += float_array_problems(where, value)
    return problems


def float_array_problems(where: str, value: np.ndarray) -> list[str]:
    """A float32/float64 array without NaN or inf."""
    if value.dtype not in FLOAT_DTYPES:
        return [f"{where} has dtype {value.dtype}, not float32 or float64"]
    bad = int(value.size - np.count_nonzero(np.isfinite(value)))
    return [f"{where} has {bad} non-finite values (NaN or inf) of {value.size}"] if bad else []


def counter_problems(state: dict[str, Any], loss_history: np.ndarray) -> list[str]:
    """Epoch and iteration are non-negative integers; the loss history is a 1-d float array."""
    problems = [f"{key} is {state[key]!r}, not a non-negative integer"
                for key in ("epoch", "iteration") if not _is_count(state[key])]
    if loss_history.ndim != 1 or loss_history.dtype not in FLOAT_DTYPES:
        problems.append(f"loss_history is a {loss_history.ndim}-d {loss_history.dtype} array, "
                        f"not a 1-d float one")
    return problems


def optimiser_problems(configs: Any, params: dict[str, np.ndarray]) -> list[str]:
    """Per parameter (or ``flat``), the update rule's arrays have the parameter's shape and are
    finite floats; its numbers are finite, ``t`` counts steps, a learning rate is positive."""
    if not isinstance(configs, dict):
        return [f"optim_configs is a {type(configs).__name__}, not a dict per parameter"]
    flat_shape = (sum(int(v.size) for v in params.values()),)
    problems = []
    for name, config in configs.items():
        if name != FLAT and name not in params:
            problems.append(f"optimiser state for {name!r}, which is not a parameter "
                            f"(parameters: {', '.join(params)})")
            continue
        shape = flat_shape if name == FLAT else tuple(params[name].shape)
        problems += _update_rule_problems(name, config, shape)
    return problems


def _update_rule_problems(name: str, config: Any, shape: tuple[int, ...]) -> list[str]:
    where = f"optimiser state of parameter {name!r}"
    if not isinstance(config, dict):
        return [f"{where} is a {type(config).__name__}, not a dict"]
    problems = []
    for key, value in config.items():
        at = f"{where}, key {key!r}"
        if isinstance(value, np.ndarray) and value.ndim > 0:
            if tuple(value.shape) != shape:
                problems.append(f"{at} has shape {tuple(value.shape)}, the parameter's is "
                                f"{shape}")
            problems += float_array_problems(at, value)
        elif key == "t" and not _is_count(value):
            problems.append(f"{at} is {value!r}, not a non-negative step count")
        elif _is_number(value) and not np.isfinite(float(value)):
            problems.append(f"{at} is {value!r}, not a finite number")
        elif key == "learning_rate" and not (_is_number(value) and float(value) > 0):
            problems.append(f"{at} is {value!r}, not a positive number")
    return problems


def rng_problems(rng_state: Any) -> list[str]:
    """``('MT19937', 624 uint32 words, position 0..624, has_gauss 0/1, cached gaussian)``."""
    if not isinstance(rng_state, (tuple, list)) or len(rng_state) != 5:
        return [f"rng_state is {type(rng_state).__name__} of "
                f"{len(rng_state) if hasattr(rng_state, '__len__') else '?'} items, not the 5 of "
                f"numpy's RandomState.get_state()"]
    kind, key, pos, has_gauss, gauss = rng_state
    problems = []
    if kind != "MT19937":
        problems.append(f"rng_state is for {kind!r}, not 'MT19937'")
    if not isinstance(key, np.ndarray) or key.shape != (MT19937_WORDS,) or key.dtype != np.uint32:
        problems.append(f"rng_state key has shape {getattr(key, 'shape', None)} and dtype "
                        f"{getattr(key, 'dtype', type(key).__name__)}, not ({MT19937_WORDS},) "
                        f"uint32")
    if not (_is_count(pos) and int(pos) <= MT19937_WORDS):
        problems.append(f"rng_state position is {pos!r}, not in 0..{MT19937_WORDS}")
    if not (_is_count(has_gauss) and has_gauss <= 1 and _is_number(gauss)
            and np.isfinite(float(gauss))):
        problems.append(f"rng_state gaussian cache is ({has_gauss!r}, {gauss!r}), not "
                        f"(0 or 1, a finite number)")
    return problems


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool))
