"""Training checkpoints as plain ``.npz`` files (no pickles), written atomically.

A checkpoint holds everything needed to continue training bit for bit: model parameters, the
update rule's state (nested dicts of arrays and scalars), the minibatch RNG state, epoch,
iteration and loss history, plus the vocabulary (tokenizer JSON) and the config (YAML) it was
trained with. Nested Python structures are stored as JSON whose arrays point at ``.npz`` entries,
so loading works with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from capx.checkpoint_checks import state_problems
from capx.checkpoint_entries import (
    RNG_LIMIT, TEXT_LIMIT, EntryError, EntryReader, referenced, shape_list,
)
from capx.atomic_files import atomic_savez

FORMAT = "capx-checkpoint"
FORMAT_VERSION = 1
_ARRAY_REF = "__array__"


class CheckpointError(ValueError):
    """A checkpoint is unreadable, truncated, or does not fit the model it is loaded into."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the solver state plus what it was trained with."""

    state: dict[str, Any]
    tokenizer: dict[str, Any]
    config_yaml: str
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


# -- encoding nested structures -------------------------------------------------------------


def _encode(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON-ready copy of ``value``; arrays and NumPy scalars go to ``arrays`` under ``prefix``."""
    if isinstance(value, dict):
        return {str(k): _encode(v, f"{prefix}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_encode(v, f"{prefix}/{i}", arrays) for i, v in enumerate(value)],
                "__tuple__": isinstance(value, tuple)}
    if isinstance(value, (np.ndarray, np.generic)):
        arrays[prefix] = np.asarray(value)
        return {_ARRAY_REF: prefix, "scalar": isinstance(value, np.generic)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {prefix!r} in a checkpoint")


def _decode(value: Any, arrays: Any) -> Any:
    if isinstance(value, dict):
        if _ARRAY_REF in value:
            array = arrays[value[_ARRAY_REF]]
            return array[()] if value.get("scalar") else array.copy()
        if "__list__" in value:
            items = [_decode(v, arrays) for v in value["__list__"]]
            return tuple(items) if value.get("__tuple__") else items
        return {k: _decode(v, arrays) for k, v in value.items()}
    return value


# -- save -------------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], tokenizer: dict[str, Any],
                    config_yaml: str, meta: dict[str, Any] | None = None) -> Path:
    """Write ``state`` (from ``CaptioningSolver.state_dict()``) and its context to ``path``.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder, synced, then renamed over ``path``. Non-finite parameters are a
    :class:`CheckpointError` and write nothing, so a diverged run never replaces a good file.
    """
    path = Path(path)
    bad = [name for name, value in state["params"].items() if not np.isfinite(value).all()]
    if bad:
        raise CheckpointError(f"not writing {path}: parameters {', '.join(bad)} are not finite "
                              f"(NaN or inf); the file there, if any, is kept")
    arrays: dict[str, np.ndarray] = {}
    for name, value in state["params"].items():
        arrays[f"params/{name}"] = np.asarray(value)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "param_shapes": {k: list(np.shape(v)) for k, v in state["params"].items()},
        "param_dtypes": {k: str(np.asarray(v).dtype) for k, v in state["params"].items()},
        "optim_configs": _encode(state["optim_configs"], "optim", arrays),
        "rng_state": _encode(state["rng_state"], "rng", arrays),
        "epoch": int(state["epoch"]),
        "iteration": int(state["iteration"]),
        "meta": meta or {},
    }
    arrays["loss_history"] = np.asarray(state["loss_history"], dtype=np.float64)
    arrays["header_json"] = np.asarray(json.dumps(header))
    arrays["tokenizer_json"] = np.asarray(json.dumps(tokenizer))
    arrays["config_yaml"] = np.asarray(config_yaml)
    return atomic_savez(path, arrays)


# -- load -------------------------------------------------------------------------------------


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`. A damaged or hand-made file is a
    :class:`CheckpointError` naming the file and what is wrong (unreadable entries, entries
    larger or shaped otherwise than its header says, non-float or non-finite weights, optimiser
    or RNG state that does not fit, see :mod:`capx.checkpoint_entries` and
    :mod:`capx.checkpoint_checks`), raised here, before anything is trained or recorded. Only
    the entries the header names are read, each after its size and shape are checked."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            header, tokenizer, config_yaml, arrays = _read_entries(path, EntryReader(archive))
    except EntryError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}: not a checkpoint capx wrote; use "
                              f"another checkpoint (e.g. best.npz) or start without resume"
                              ) from exc
    # zipfile's answers to a damaged file: a bad zip or CRC, a broken stream, an unsupported
    # compression method (NotImplementedError), an entry flagged encrypted (RuntimeError)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a capx checkpoint ({type(exc).__name__}: "
            f"{exc}); use another checkpoint (e.g. best.npz) or start without resume") from exc
    state = _decoded_state(path, header, arrays)
    problems = state_problems(state, header["param_shapes"], arrays["loss_history"])
    if problems:
        raise CheckpointError(f"checkpoint {path} is not a valid training state: "
                              f"{'; '.join(problems)}. Use another checkpoint (e.g. best.npz) "
                              f"or start without resume")
    state["loss_history"] = arrays["loss_history"].tolist()
    return Checkpoint(state=state, tokenizer=tokenizer, config_yaml=config_yaml,
                      meta=header.get("meta") or {}, path=path)


def _read_entries(path: Path, reader: EntryReader
                  ) -> tuple[dict[str, Any], dict[str, Any], str, dict[str, np.ndarray]]:
    """The header, tokenizer, config text and the arrays the header names, each checked."""
    for key in ("header_json", "tokenizer_json", "config_yaml", "loss_history"):
        if key not in reader:
            raise CheckpointError(f"checkpoint {path} has no {key!r} entry: not a capx checkpoint")
    texts = {key: reader.read(key, TEXT_LIMIT, shape=(), kinds="U")
             for key in ("header_json", "tokenizer_json", "config_yaml")}
    header = _parsed(path, texts, "header_json", json.loads)
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format {header.get('format')!r} version "
            f"{header.get('format_version')!r}; this capx reads {FORMAT!r} version {FORMAT_VERSION}")
    tokenizer = _parsed(path, texts, "tokenizer_json", json.loads)
    config_yaml = str(texts["config_yaml"])
    _parsed(path, texts, "config_yaml", lambda text: yaml.safe_load(text) or {})
    shapes = header.get("param_shapes")
    if not isinstance(shapes, dict) or not all(shape_list(s) is not None
                                               for s in shapes.values()):
        raise CheckpointError(f"checkpoint {path}: its header's param_shapes are not a mapping "
                              f"of shapes: not a checkpoint capx wrote")
    arrays: dict[str, np.ndarray] = {}
    total = 0  # bytes of every parameter at float64: the most one optimiser array can hold
    for name, shape in shapes.items():
        key, most = f"params/{name}", math.prod(shape) * 8
        total += most
        if key not in reader:
            raise CheckpointError(f"checkpoint {path} lacks parameter {name!r}")
        arrays[key] = reader.read(key, most)  # its shape and dtype: checkpoint_checks
    for key in referenced(header.get("optim_configs"), _ARRAY_REF):
        if key in reader:  # a missing one is named when the state is decoded
            arrays[key] = reader.read(key, max(total, 64))  # per parameter, or all (flat)
    for key in referenced(header.get("rng_state"), _ARRAY_REF):
        if key in reader:
            arrays[key] = reader.read(key, RNG_LIMIT)
    iteration = header.get("iteration")
    steps = iteration if isinstance(iteration, int) and iteration >= 0 else 0
    arrays["loss_history"] = reader.read("loss_history", max((steps + 1) * 8, RNG_LIMIT))
    return header, tokenizer, config_yaml, arrays


def _parsed(path: Path, arrays: dict[str, np.ndarray], key: str, parse: Any) -> dict[str, Any]:
    """``parse`` of the text entry ``key``, which must give a mapping."""
    try:
        value = parse(str(arrays[key]))
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"checkpoint {path}: its {key!r} entry does not parse "
                              f"({reason}): not a checkpoint capx wrote") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint {path}: its {key!r} entry is a "
                              f"{type(value).__name__}, not a mapping: not a checkpoint capx "
                              f"wrote")
    return value


def _decoded_state(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]
                   ) -> dict[str, Any]:
    """The solver state the header describes, its arrays taken from ``arrays``."""
    missing = [k for k in ("param_shapes", "optim_configs", "rng_state", "epoch", "iteration")
               if k not in header]
    if missing or not isinstance(header["param_shapes"], dict):
        raise CheckpointError(f"checkpoint {path}: its header lacks {missing or 'param_shapes'}: "
                              f"not a checkpoint capx wrote")
    params = {}
    for name in header["param_shapes"]:
        key = f"params/{name}"
        if key not in arrays:
            raise CheckpointError(f"checkpoint {path} lacks parameter {name!r}")
        params[name] = arrays[key]
    try:
        optim_configs = _decode(header["optim_configs"], arrays)
        rng_state = _decode(header["rng_state"], arrays)
    except KeyError as exc:
        raise CheckpointError(f"checkpoint {path}: its header refers to entry {exc}, which the "
                              f"file lacks") from exc
    return {"params": params, "optim_configs": optim_configs, "rng_state": rng_state,
            "epoch": header["epoch"], "iteration": header["iteration"]}


def check_compatible(checkpoint: Checkpoint, params: dict[str, np.ndarray],
                     idx_to_word: list[str]) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint fits this model and vocabulary."""
    where = checkpoint.path or "the checkpoint"
    saved_vocab = checkpoint.tokenizer.get("idx_to_word", [])
    if list(saved_vocab) != list(idx_to_word):
        first = next((i for i, (a, b) in enumerate(zip(saved_vocab, idx_to_word)) if a != b),
                     min(len(saved_vocab), len(idx_to_word)))
        saw = saved_vocab[first] if first < len(saved_vocab) else "(end)"
        has = idx_to_word[first] if first < len(idx_to_word) else "(end)"
        raise CheckpointError(
            f"{where} was trained with another vocabulary ({len(saved_vocab)} symbols, this run "
            f"has {len(idx_to_word)}; first difference at id {first}: {saw!r} vs {has!r}). "
            f"Resume with the dataset and tokenizer settings it was trained with.")
    saved = checkpoint.state["params"]
    if set(saved) != set(params):
        raise CheckpointError(f"{where} holds parameters {sorted(saved)}, the model has "
                              f"{sorted(params)}: another cell type?")
    for name, value in params.items():
        if tuple(saved[name].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{where}: parameter {name!r} has shape {tuple(saved[name].shape)}, the model's "
                f"is {tuple(value.shape)}; resume with the model sizes it was trained with")
    kept_for = {"flat"} if getattr(params, "flat", None) is not None else set(params)
    saved_optim = set(checkpoint.state["optim_configs"])
    if saved_optim and saved_optim != kept_for:  # none saved: the update rule starts afresh
        raise CheckpointError(f"{where} holds optimiser state for {sorted(saved_optim)}, this "
                              f"model's update rule keeps it for {sorted(kept_for)}")
