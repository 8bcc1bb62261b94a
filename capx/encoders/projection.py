"""The 1280 -> 512 projection of coco-mini's CS231n-layout features (``coco_captioning/``).

coco-mini has too few train images for PCA, so its 512-d features are a fixed random
orthonormal map: W = Q of the QR of ``default_rng(0).standard_normal((1280, 512))``, columns
sign-fixed so diag(R) > 0, then centred by the mean of the projected train rows. Projecting a
new image's 1280-d feature the same way (same W, same train mean) lets a model trained on
``coco_captioning/`` caption it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from capx.datasets.coco import coco_json

SEED, IN_DIM, OUT_DIM = 0, 1280, 512


@functools.lru_cache(maxsize=1)
def projection_matrix() -> np.ndarray:
    """W (1280, 512) float32, orthonormal columns."""
    q, r = np.linalg.qr(np.random.default_rng(SEED).standard_normal((IN_DIM, OUT_DIM)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def project(features: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
    """``features`` (N, 1280) as float32 @ W, minus ``centre`` (the train mean, 512-d) if given."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != IN_DIM:
        raise ValueError(f"the 512-d projection takes (N, {IN_DIM}) features, got shape "
                         f"{features.shape}")
    out = features @ projection_matrix()
    return out if centre is None else out - np.asarray(centre, dtype=np.float32)


def coco_mini_centre(base_dir: str | os.PathLike) -> np.ndarray:
    """The mean of coco-mini's projected train rows (images of ``captions_train.json``)."""
    data = coco_json(base_dir=Path(base_dir), train_file="captions_train.json",
                     val_file="captions_val.json", features_file="features_effl0.h5")
    return project(data.train.features, None).mean(axis=0)
