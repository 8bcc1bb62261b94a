"""The image controls of a study, per setting: what the image contributes and how much a model
relies on it.

*Image information* pairs each run trained with the real image features with the run of the same
setting, fold and seed trained and scored with a constant feature (``model.image_features=
constant``): blind minus image bits/char, with the paired t interval over runs and the two-level
bootstrap (:func:`capx.study.tables.compare`). *Reliance* is the shuffle control each image run
scores by itself (``test/image_gain_bits_per_char``: shuffled minus real features at test time),
with a t interval over runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from capx.study import statistics
from capx.study.tables import Comparison, Row, compare, fold_means, param, settings
from capx.tracking import names

IMAGE_FEATURES = "model.image_features"


def image_features(row: Row) -> str:
    """``constant`` for a trained-without-image row; ``real`` otherwise (also for runs made
    before the setting existed)."""
    return param(row.records[0], IMAGE_FEATURES) or "real"


def _setting_without_image(row: Row) -> tuple:
    rest = {k: v for k, v in settings(row.records[0]).items() if k != IMAGE_FEATURES}
    return row.tokenizer, row.cell, row.size, frozenset(rest.items())


@dataclass
class ImageControl:
    """One setting's image controls: ``information`` (blind - image, paired) and the shuffle
    control's mean and t interval over the image runs."""

    image: Row
    information: Comparison | None
    reliance: tuple[float, float, float]


def image_controls(rows: Sequence[Row]) -> list[ImageControl]:
    """For every row with real image features: its image information, when the study has the
    same setting trained without the image, and its shuffle control."""
    blind = {_setting_without_image(r): r for r in rows if image_features(r) == "constant"}
    out = []
    for row in rows:
        if image_features(row) == "constant":
            continue
        partner = blind.get(_setting_without_image(row))
        information = compare(partner, row, "bits_per_char") if partner else None
        out.append(ImageControl(row, information, _reliance(row)))
    return out


def _reliance(row: Row) -> tuple[float, float, float]:
    units = fold_means(row.values(f"{names.TEST}image_gain_bits_per_char"), row.records)
    if not len(units):
        return np.nan, np.nan, np.nan
    interval = statistics.mean_ci(units, method="t")
    return interval.mean, interval.low, interval.high
