"""A trained captioner outside training: a checkpoint in, captions of feature vectors out.

:class:`Captioner` rebuilds the model and tokenizer a checkpoint was trained with (the sizes
come from the saved parameters, the cell and decoder from its config), so a run can caption new
features, be scored from Python, or be served as an MLflow model (:mod:`capx.tracking.logged_model`)
without its data or its MLflow store::

    captioner = Captioner.from_checkpoint("outputs/.../checkpoints/best.npz")
    captioner.caption(features)                    # the run's own decoder (greedy by default)
    captioner.caption(features, "beam", beam_width=3)

A checkpoint says which plugin modules it needs (its config's ``plugins:``) but never causes
their import: pass them, ``Captioner.from_checkpoint(path, plugins=["my_cells"])``, or import
them yourself first.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

import numpy as np
import yaml

from capx.captioner import CaptioningRNN
from capx.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from capx.decoding import decode, decoder_settings, default_max_length
from capx.registry import load_plugins, require_plugins
from capx.tokenizers import Tokenizer

#: how to enable a checkpoint's plugins from Python
ENABLE_IN_PYTHON = ("pass them: Captioner.from_checkpoint(path, plugins=[{quoted}]) (or import "
                    "them first)")


class Captioner:
    """A model, its tokenizer and its decoding settings; :meth:`caption` returns caption text."""

    def __init__(self, model: Any, tokenizer: Any, decoder: str = "greedy",
                 options: dict[str, Any] | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.decoder, self.options = decoder, dict(options or {})

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | Checkpoint, plugins: Iterable[str] = (),
                        how: str = ENABLE_IN_PYTHON) -> "Captioner":
        """The model and tokenizer saved in ``path`` (a ``capx`` checkpoint ``.npz``).

        ``plugins``: the plugin modules to import (the caller's choice); those the checkpoint
        says it needs must be among them or already imported, else a
        :class:`capx.registry.PluginNotEnabledError` names them (``how`` says how to enable).
        """
        checkpoint = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        config = yaml.safe_load(checkpoint.config_yaml) or {}
        load_plugins(list(plugins))
        require_plugins(config.get("plugins"), str(checkpoint.path or "the checkpoint"), how)
        if not checkpoint.tokenizer.get("name"):
            raise CheckpointError(f"{checkpoint.path} holds no tokenizer; it cannot caption")
        tokenizer = Tokenizer.from_dict(checkpoint.tokenizer)
        params = checkpoint.state["params"]
        input_dim, hidden_dim = np.shape(params["W_proj"])
        model = CaptioningRNN(
            tokenizer.word_to_idx, input_dim=int(input_dim),
            wordvec_dim=int(np.shape(params["W_embed"])[1]), hidden_dim=int(hidden_dim),
            cell_type=config["cell"]["name"], dtype=np.asarray(params["W_proj"]).dtype)
        for name in model.params:
            model.params[name] = np.asarray(params[name])
        decoder, options = decoder_settings(config)
        return cls(model, tokenizer, decoder, options)

    @property
    def feature_dim(self) -> int:
        return int(self.model.input_dim)

    def caption(self, features: Any, decoder: str | None = None, **options: Any) -> list[str]:
        """One caption per row of ``features`` (N x feature_dim), with the run's decoder unless
        another is named (its options then replace the run's)."""
        features = np.asarray(features, dtype=self.model.dtype)
        if features.ndim == 1:
            features = features[None, :]
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"features must be N x {self.feature_dim} (this model's image feature "
                             f"size); got shape {features.shape}")
        if decoder is None:
            decoder, options = self.decoder, {**self.options, **options}
        ids = decode(self.model, features, default_max_length(self.tokenizer), decoder, **options)
        return self.tokenizer.decode(ids)
