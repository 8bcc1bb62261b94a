"""Train / dev / test splits: k-fold covers every image once, images never straddle splits."""

from __future__ import annotations

import numpy as np
import pytest

from capx.datasets.base import CaptionData, CaptionSplit
from capx.datasets.splits import SplitSettings, assign_folds, make_splits


def toy_data(train_images: int = 40, val_images: int = 10) -> CaptionData:
    def split(offset: int, count: int) -> CaptionSplit:
        ids = np.arange(offset, offset + count)
        return CaptionSplit(features=ids[:, None].astype(np.float32).repeat(3, axis=1),
                            captions=[f"image {i} caption {k}" for i in ids for k in range(2)],
                            image_idxs=np.repeat(np.arange(count), 2), image_ids=ids)
    return CaptionData("toy", split(0, train_images), split(1000, val_images))


def ids(split: CaptionSplit) -> set[int]:
    return set(np.asarray(split.image_ids).tolist())


def captions_follow_their_images(split: CaptionSplit) -> bool:
    return all(c.startswith(f"image {int(split.image_ids[i])} ")
               for c, i in zip(split.captions, split.image_idxs))


def test_kfold_makes_every_image_test_exactly_once_and_splits_disjoint():
    data = toy_data()
    all_ids = ids(data.train) | ids(data.val)
    seen_as_test: list[int] = []
    for fold in range(5):
        out = make_splits(data, SplitSettings(scheme="kfold", folds=5, fold=fold, dev_percent=20))
        train, dev, test = ids(out.train), ids(out.val), ids(out.test)
        assert not (train & dev) and not (train & test) and not (dev & test)
        assert train | dev | test == all_ids
        assert len(test) == 10 and len(dev) == 8
        for split in (out.train, out.val, out.test):
            assert captions_follow_their_images(split)
            assert len(split.captions) == 2 * split.num_images
        seen_as_test += sorted(test)
    assert sorted(seen_as_test) == sorted(all_ids)


def test_holdout_keeps_the_dataset_val_split_as_test_and_carves_dev_from_train():
    data = toy_data()
    out = make_splits(data, SplitSettings(scheme="holdout", dev_percent=25))
    assert ids(out.test) == ids(data.val)
    assert ids(out.train) | ids(out.val) == ids(data.train)
    assert len(ids(out.val)) == 10


def test_given_scheme_is_the_dataset_as_it_was():
    data = toy_data()
    out = make_splits(data, SplitSettings())
    assert out.test is None and ids(out.train) == ids(data.train) and ids(out.val) == ids(data.val)


def test_train_share_is_nested_and_leaves_dev_and_test_alone():
    data = toy_data(80, 20)
    outs = {p: make_splits(data, SplitSettings(scheme="kfold", fold=1, train_percent=p))
            for p in (25, 50, 100)}
    assert ids(outs[25].train) < ids(outs[50].train) < ids(outs[100].train)
    assert len({frozenset(ids(o.val)) for o in outs.values()}) == 1
    assert len({frozenset(ids(o.test)) for o in outs.values()}) == 1


def test_folds_are_balanced_and_seeded():
    folds = assign_folds(23, 5, seed=3)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(folds, assign_folds(23, 5, seed=3))
    assert not np.array_equal(folds, assign_folds(23, 5, seed=4))


@pytest.mark.parametrize("settings, message", [
    (SplitSettings(scheme="kfold", folds=5, fold=5), "split.fold"),
    (SplitSettings(scheme="kfold", folds=1), "split.folds"),
    (SplitSettings(scheme="random"), "split.scheme"),
    (SplitSettings(dev_percent=0), "split.dev_percent"),
])
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        make_splits(toy_data(), settings)
