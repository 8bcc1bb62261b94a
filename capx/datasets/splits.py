"""Honest splits: train / dev / test from any dataset, including k-fold cross-validation.

Every dataset plugin returns train and val splits. A study needs three: ``train`` to fit,
``dev`` for every choice (early stopping, the learning rate, the checkpoint), and ``test``,
scored once at the end. The ``split`` config section picks how they are made:

- ``given``: the dataset's own splits; val is dev, and the end-of-run scores are on val too
  (quick runs; the run is tagged so a report never mistakes it for a test score);
- ``holdout``: the dataset's val split is the test set; dev is carved from the train images;
- ``kfold``: train and val images are pooled and dealt into ``folds`` folds; fold ``fold`` is
  the test set, dev is carved from the other folds' images. Over all folds every image is test
  exactly once.

Images, never captions, are the unit: all captions of an image go to one split. The fold and dev
draws use ``split.seed`` only, so runs with other model seeds see the same images.
``train_percent`` keeps a nested share of the train images (25% is inside 50%) for
learning-curve studies; dev and test do not change with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capx.datasets.base import CaptionData, CaptionSplit

SCHEMES = ("given", "holdout", "kfold")


@dataclass
class SplitSettings:
    scheme: str = "given"
    folds: int = 5
    fold: int = 0
    dev_percent: int = 15
    train_percent: int = 100
    seed: int = 0


def make_splits(data: CaptionData, settings: SplitSettings) -> CaptionData:
    """``data`` with ``val`` as the dev split and ``test`` set, as ``settings.scheme`` says."""
    check_settings(settings)
    if settings.scheme == "given":
        return CaptionData(data.name, keep_train_share(data.train, settings), data.val,
                           dict(data.info, split="given"), test=None)
    if settings.scheme == "holdout":
        pool, test = data.train, data.val
        candidates = np.arange(pool.num_images)
        rng = np.random.default_rng([settings.seed, 7919])
    else:
        pool = concat_splits(data.train, data.val)
        fold_of = assign_folds(pool.num_images, settings.folds, settings.seed)
        test = select_images(pool, np.flatnonzero(fold_of == settings.fold))
        candidates = np.flatnonzero(fold_of != settings.fold)
        rng = np.random.default_rng([settings.seed, settings.fold, 7919])
    shuffled = rng.permutation(candidates)
    num_dev = max(1, round(len(shuffled) * settings.dev_percent / 100))
    dev = select_images(pool, np.sort(shuffled[:num_dev]))
    train = select_images(pool, np.sort(shuffled[num_dev:]))
    info = dict(data.info, split=settings.scheme, fold=settings.fold, folds=settings.folds,
                train_images=train.num_images, dev_images=dev.num_images,
                test_images=test.num_images)
    return CaptionData(data.name, keep_train_share(train, settings), dev, info, test=test)


def check_settings(s: SplitSettings) -> None:
    problems = []
    if s.scheme not in SCHEMES:
        problems.append(f"split.scheme must be one of {', '.join(SCHEMES)}, got {s.scheme!r}")
    if s.scheme == "kfold" and not (isinstance(s.folds, int) and s.folds >= 2):
        problems.append(f"split.folds must be an integer >= 2 for kfold, got {s.folds!r}")
    if s.scheme == "kfold" and not (isinstance(s.fold, int) and 0 <= s.fold < s.folds):
        problems.append(f"split.fold must be in 0..{s.folds - 1}, got {s.fold!r}")
    if not 0 < s.dev_percent < 100:
        problems.append(f"split.dev_percent must be in 1..99, got {s.dev_percent!r}")
    if not 0 < s.train_percent <= 100:
        problems.append(f"split.train_percent must be in 1..100, got {s.train_percent!r}")
    if problems:
        raise ValueError("; ".join(problems))


def assign_folds(num_images: int, folds: int, seed: int) -> np.ndarray:
    """Fold id of each image: a seeded permutation dealt round-robin (sizes differ by <= 1)."""
    order = np.random.default_rng([seed, 104729]).permutation(num_images)
    fold_of = np.empty(num_images, dtype=np.int64)
    fold_of[order] = np.arange(num_images) % folds
    return fold_of


def keep_train_share(train: CaptionSplit, settings: SplitSettings) -> CaptionSplit:
    """The first ``train_percent`` % of a fixed permutation of the train images (nested shares)."""
    if settings.train_percent >= 100:
        return train
    order = np.random.default_rng([settings.seed, 15485863]).permutation(train.num_images)
    count = max(1, round(train.num_images * settings.train_percent / 100))
    return select_images(train, np.sort(order[:count]))


def select_images(split: CaptionSplit, rows: np.ndarray) -> CaptionSplit:
    """The split restricted to image ``rows`` (in that order), with all of their captions."""
    rows = np.asarray(rows, dtype=np.int64)
    new_row = np.full(split.num_images, -1, dtype=np.int64)
    new_row[rows] = np.arange(len(rows))
    kept = np.flatnonzero(new_row[split.image_idxs] >= 0)
    return CaptionSplit(
        features=split.features[rows],
        captions=[split.captions[i] for i in kept],
        image_idxs=new_row[split.image_idxs[kept]],
        image_ids=None if split.image_ids is None else np.asarray(split.image_ids)[rows],
        urls=None if split.urls is None else [split.urls[i] for i in rows],
    )


def concat_splits(first: CaptionSplit, second: CaptionSplit) -> CaptionSplit:
    """One split holding the images of both (``second``'s rows after ``first``'s)."""
    ids = None
    if first.image_ids is not None and second.image_ids is not None:
        ids = np.concatenate([first.image_ids, second.image_ids])
    urls = None
    if first.urls is not None and second.urls is not None:
        urls = list(first.urls) + list(second.urls)
    return CaptionSplit(
        features=np.concatenate([first.features, second.features]),
        captions=list(first.captions) + list(second.captions),
        image_idxs=np.concatenate([first.image_idxs, second.image_idxs + first.num_images]),
        image_ids=ids, urls=urls)
