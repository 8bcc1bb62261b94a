"""The trained-without-image control: every image's feature replaced by one constant row.

A captioner trained and scored on a constant feature is a caption language model of the same
size and training (``model.image_features=constant``); the same run with the real features
minus it, in bits/char, is what the image contributes. The constant is the mean of the training
split's features, so the image projection starts where the real model's does on average, and
train, dev and test all get it (nothing of any image reaches the model). The shuffle control
(:mod:`capx.run.scoring`) asks something else: how much a model trained on images relies on
them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from capx.datasets.base import CaptionData, CaptionSplit

#: ``model.image_features`` values: the dataset's features, or the training mean for every image
IMAGE_FEATURES = ("real", "constant")


def with_image_features(data: CaptionData, how: str) -> CaptionData:
    """``data`` as is (``real``), or with every split's features the training mean (``constant``)."""
    if how == "real":
        return data
    if how != "constant":
        raise ValueError(f"model.image_features must be one of {', '.join(IMAGE_FEATURES)}, "
                         f"got {how!r}")
    features = data.train.features
    constant = features.mean(axis=0, dtype=np.float64).astype(features.dtype)

    def blank(split: CaptionSplit | None) -> CaptionSplit | None:
        if split is None:
            return None
        rows = np.broadcast_to(constant, split.features.shape).copy()
        return dataclasses.replace(split, features=rows)

    return dataclasses.replace(data, train=blank(data.train), val=blank(data.val),
                               test=blank(data.test),
                               info=dict(data.info, image_features="constant"))
