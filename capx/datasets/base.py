"""The one structure every dataset plugin returns, and its conversion to the solver's data dict.

Datasets hand over caption *text*, so any tokenizer can encode the same data; image features are
one float32 row per image and each caption points at its image's row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


@dataclass
class CaptionSplit:
    """One split: features (n_images, D) float32, captions and the image row of each caption."""

    features: np.ndarray
    captions: list[str]
    image_idxs: np.ndarray
    image_ids: np.ndarray | None = None
    urls: list[str] | None = None

    def __post_init__(self) -> None:
        self.image_idxs = np.asarray(self.image_idxs, dtype=np.int64)
        if self.features.ndim != 2:
            raise ValueError(f"features must be 2-D (images, dims), got shape {self.features.shape}")
        if len(self.captions) != len(self.image_idxs):
            raise ValueError(
                f"{len(self.captions)} captions but {len(self.image_idxs)} image indices"
            )
        if len(self.image_idxs) and (
            self.image_idxs.min() < 0 or self.image_idxs.max() >= len(self.features)
        ):
            raise ValueError(
                f"caption image indices span [{self.image_idxs.min()}, {self.image_idxs.max()}] "
                f"but there are only {len(self.features)} feature rows"
            )

    @property
    def num_images(self) -> int:
        return int(self.features.shape[0])

    def references(self) -> list[list[str]]:
        """All captions of each image, indexed by image row (for BLEU/CIDEr)."""
        refs: list[list[str]] = [[] for _ in range(self.num_images)]
        for text, idx in zip(self.captions, self.image_idxs):
            refs[idx].append(text)
        return refs


@dataclass
class CaptionData:
    """Train and val splits of one dataset, plus free-form provenance.

    ``val`` is the dev split (early stopping and every choice); ``test``, when a split scheme
    made one (see :mod:`capx.datasets.splits`), is scored once at the end.
    """

    name: str
    train: CaptionSplit
    val: CaptionSplit
    info: dict[str, Any] = field(default_factory=dict)
    test: CaptionSplit | None = None

    @property
    def feature_dim(self) -> int:
        return int(self.train.features.shape[1])

    def to_solver_data(self, tokenizer: Any) -> dict[str, Any]:
        """Encode both splits with a fitted tokenizer into the CS231n-style data dict (plus the
        share of each split's captions the tokenizer cut, as ``<split>_truncated_fraction``)."""
        data: dict[str, Any] = {
            "word_to_idx": tokenizer.word_to_idx,
            "idx_to_word": tokenizer.idx_to_word,
        }
        for split_name in ("train", "val"):
            split: CaptionSplit = getattr(self, split_name)
            data[f"{split_name}_captions"] = tokenizer.encode(split.captions)
            data[f"{split_name}_truncated_fraction"] = float(
                getattr(tokenizer, "last_truncated_fraction", 0.0))
            data[f"{split_name}_image_idxs"] = split.image_idxs
            data[f"{split_name}_features"] = split.features
            if split.image_ids is not None:
                data[f"{split_name}_image_ids"] = np.asarray(split.image_ids)
            if split.urls is not None:
                data[f"{split_name}_urls"] = np.asarray(split.urls, dtype=object)
        return data


def pictures_of(plugin: Any, options: dict[str, Any]
                ) -> Callable[[str, Sequence[int]], np.ndarray] | None:
    """``images_for(image_ids) -> uint8 (n, H, W, 3)`` for a dataset plugin that can draw its
    images, else None. A plugin offers it as an ``images_for(image_ids, **options)``
    attribute taking the plugin's own options (``shapes.images_for`` re-renders its scenes);
    runs then log their sample captions beside the pictures."""
    images_for = getattr(plugin, "images_for", None)
    return None if images_for is None else functools.partial(images_for, **options)
