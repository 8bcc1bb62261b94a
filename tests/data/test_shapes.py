"""The embedded ``shapes`` dataset: determinism, contents, cache, PNG output, learnability."""

from __future__ import annotations

import struct
import time
import warnings
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from capx.datasets.base import CaptionData
from capx.datasets.shapes import (
    CAPTIONS_PER_IMAGE,
    default_cache_dir,
    shapes,
    shapes_images,
    shapes_scenes,
)
from capx.datasets.shapes_features import FIXED_DIM, image_features, standardize
from capx.datasets.shapes_grammar import (
    COLOUR_WEIGHTS,
    COLOUR_WORDS,
    SHAPE_NOUNS,
    SHAPE_WEIGHTS,
    relations,
)
from capx.datasets.shapes_render import PNG_SIGNATURE, render_images, save_png
from capx.registry import DATASETS

SMALL = {"num_train": 60, "num_val": 20, "image_size": 32, "feature_dim": 64}


@pytest.fixture(scope="module")
def default_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[CaptionData, float, Path]:
    """The default dataset generated once into a fresh cache, with its CPU seconds."""
    cache = tmp_path_factory.mktemp("shapes-cache")
    started = time.process_time()
    data = shapes(cache_dir=cache)
    return data, time.process_time() - started, cache


def read_png(path: Path) -> np.ndarray:
    """Decode the 8-bit, unfiltered, non-interlaced PNGs that save_png writes."""
    blob = path.read_bytes()
    assert blob[:8] == PNG_SIGNATURE
    pos, chunks = 8, {}
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data), f"bad CRC in chunk {kind!r}"
        chunks[kind] = chunks.get(kind, b"") + data
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and b"IEND" in chunks
    channels = {0: 1, 2: 3}[colour_type]
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8)
    rows = raw.reshape(height, 1 + width * channels)
    assert (rows[:, 0] == 0).all()  # filter type 0
    return rows[:, 1:].reshape(height, width, channels).squeeze()


def test_registered_and_defaults(default_data: tuple[CaptionData, float, Path]) -> None:
    data, _, _ = default_data
    assert DATASETS.get("shapes") is shapes
    assert data.name == "shapes"
    assert data.train.features.shape == (2000, FIXED_DIM) and data.val.features.shape == (300, FIXED_DIM)
    for split, first_id in ((data.train, 0), (data.val, data.train.num_images)):
        assert split.features.dtype == np.float32
        assert len(split.captions) == CAPTIONS_PER_IMAGE * split.num_images
        assert np.array_equal(np.bincount(split.image_idxs), np.full(split.num_images, 5))
        assert np.array_equal(split.image_ids, first_id + np.arange(split.num_images))
        assert split.urls is None
    info = data.info
    assert info["options"]["seed"] == 0 and info["format_version"] >= 1
    assert info["seconds_to_generate"] > 0 and info["from_cache"] is False


def test_default_generation_is_fast(default_data: tuple[CaptionData, float, Path]) -> None:
    _, cpu_seconds, _ = default_data
    assert cpu_seconds < 5.0, f"generating the default shapes dataset took {cpu_seconds:.1f} CPU s"


def test_features_are_centred_and_scaled_like_pca(
        default_data: tuple[CaptionData, float, Path]) -> None:
    train = default_data[0].train.features
    assert np.abs(train.mean(axis=0)).max() < 1e-4
    assert np.sqrt(np.mean(train ** 2)) == pytest.approx(0.4, rel=1e-3)
    assert (train.std(axis=0) > 0.01).all()  # no dead dimension


def test_captions_are_lowercase_words_of_usual_length(
        default_data: tuple[CaptionData, float, Path]) -> None:
    captions = default_data[0].train.captions
    for text in captions:
        assert text == text.lower() and text == " ".join(text.split())
        assert all(word.isalpha() for word in text.split()), text
    lengths = np.array([len(text.split()) for text in captions])
    assert lengths.min() >= 4
    assert np.mean((lengths >= 5) & (lengths <= 15)) > 0.85
    per_image = default_data[0].train.references()
    assert np.mean([len(set(refs)) for refs in per_image]) > 4.5  # paraphrases, not copies


def test_vocabulary_has_a_long_tail(default_data: tuple[CaptionData, float, Path]) -> None:
    captions = default_data[0].train.captions
    documents = Counter(word for text in captions for word in set(text.split()))
    assert 200 <= len(documents) <= 1000
    rare = [word for word, count in documents.items() if count < 0.005 * len(captions)]
    assert len(rare) >= 30
    for word in ("crimson", "vermilion", "orb", "lozenge"):
        assert documents[word] < 0.005 * len(captions), word
    val_words = {w for text in default_data[0].val.captions for w in text.split()}
    assert val_words - set(documents), "val should hold some words never seen in train (<UNK>)"


def test_same_seed_same_data_other_seed_other_data() -> None:
    first, again = shapes(use_cache=False, **SMALL), shapes(use_cache=False, **SMALL)
    other = shapes(use_cache=False, seed=1, **SMALL)
    for split in ("train", "val"):
        a, b, c = (getattr(d, split) for d in (first, again, other))
        assert np.array_equal(a.features, b.features) and a.captions == b.captions
        assert not np.allclose(a.features, c.features) and a.captions != c.captions


def test_features_depend_on_pixels_not_captions() -> None:
    base = shapes(use_cache=False, **SMALL)
    recaptioned = shapes(use_cache=False, caption_seed=123, **SMALL)
    assert np.array_equal(base.train.features, recaptioned.train.features)
    assert np.array_equal(base.val.features, recaptioned.val.features)
    assert base.train.captions != recaptioned.train.captions
    # The features are a function of the rendered images alone.
    images = {split: shapes_images(split, **SMALL) for split in ("train", "val")}
    train, val = standardize(image_features(images["train"]), image_features(images["val"]),
                             feature_dim=SMALL["feature_dim"])
    np.testing.assert_allclose(base.train.features, train, atol=1e-5)
    np.testing.assert_allclose(base.val.features, val, atol=1e-5)


def test_captions_describe_the_scene() -> None:
    scenes = shapes_scenes("train", 60)
    data = shapes(use_cache=False, **SMALL)
    checked = 0
    for scene, refs in zip(scenes, data.train.references()):
        if len(scene.shapes) != 1:
            continue
        shape = scene.shapes[0]
        for text in refs:
            padded = f" {text} "
            says_colour = any(f" {w} " in padded for w in COLOUR_WORDS[shape.colour])
            says_kind = any(f" {w} " in padded for w in SHAPE_NOUNS[shape.kind])
            assert says_colour or says_kind, (text, shape)
            checked += 1
    assert checked >= 25
    left = replace(scenes[0].shapes[0], row=0, col=0)
    right = replace(left, row=2, col=2)
    assert set(relations(left, right)) == {"above", "left of"}
    assert set(relations(right, left)) == {"below", "right of"}
    assert set(relations(left, replace(left, col=1))) == {"left of", "next to"}


def test_images_match_scenes_and_render_subsets() -> None:
    images = shapes_images("val", **SMALL)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(shapes_images("val", indices=[3, 1], **SMALL), images[[3, 1]])
    assert np.array_equal(images, render_images(shapes_scenes("val", 20), 32))
    with pytest.raises(IndexError, match=r"\[0, 20\)"):
        shapes_images("val", indices=[20], **SMALL)
    # A lone shape's colour shows up at its centre pixel.
    scene_index, scene = next((i, s) for i, s in enumerate(shapes_scenes("val", 20))
                              if len(s.shapes) == 1 and s.shapes[0].kind in ("circle", "square"))
    shape = scene.shapes[0]
    pixel = images[scene_index, int(shape.cy * 32), int(shape.cx * 32)].astype(int)
    assert np.abs(pixel - np.array(shape.rgb)).max() <= 12


def test_cache_hit_is_equal_and_faster(tmp_path: Path) -> None:
    options = dict(SMALL, num_train=300)
    started = time.perf_counter()
    fresh = shapes(cache_dir=tmp_path, **options)
    generate_seconds = time.perf_counter() - started
    files = list(tmp_path.glob("shapes-v*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    started = time.perf_counter()
    cached = shapes(cache_dir=tmp_path, **options)
    load_seconds = time.perf_counter() - started
    assert cached.info["from_cache"] and not fresh.info["from_cache"]
    assert load_seconds < generate_seconds
    assert cached.info["seconds_to_generate"] == fresh.info["seconds_to_generate"]
    for split in ("train", "val"):
        assert np.array_equal(getattr(cached, split).features, getattr(fresh, split).features)
        assert getattr(cached, split).captions == getattr(fresh, split).captions
    shapes(cache_dir=tmp_path, **dict(options, seed=5))
    assert len(list(tmp_path.glob("shapes-v*.npz"))) == 2  # other options, other file


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other_key"])
def test_corrupted_cache_is_regenerated(tmp_path: Path, damage: str) -> None:
    fresh = shapes(cache_dir=tmp_path, **SMALL)
    (path,) = tmp_path.glob("shapes-v*.npz")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not an npz file at all")
    else:  # a well-formed file written for other options under this name
        other = shapes(cache_dir=tmp_path / "other", **dict(SMALL, seed=9))
        (path_other,) = (tmp_path / "other").glob("*.npz")
        path.write_bytes(path_other.read_bytes())
        assert not np.array_equal(other.train.features, fresh.train.features)
    with pytest.warns(RuntimeWarning, match="regenerating"):
        again = shapes(cache_dir=tmp_path, **SMALL)
    assert not again.info["from_cache"]
    assert np.array_equal(again.train.features, fresh.train.features)
    assert again.val.captions == fresh.val.captions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shapes(cache_dir=tmp_path, **SMALL).info["from_cache"]  # repaired


def test_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("CAPX_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path / "shapes"
    shapes(**SMALL)
    assert len(list((tmp_path / "shapes").glob("*.npz"))) == 1
    monkeypatch.delenv("CAPX_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "capx" / "shapes"


def test_unwritable_cache_only_warns(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="could not write"):
        data = shapes(cache_dir=blocker / "sub", **SMALL)
    assert data.train.num_images == SMALL["num_train"]


@pytest.mark.parametrize("option, value", [("num_train", 0), ("image_size", 8),
                                           ("feature_dim", "512"), ("seed", -1),
                                           ("num_val", 1.5)])
def test_bad_options_name_the_key(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"'{option}'.*dataset.{option}"):
        shapes(use_cache=False, **{**SMALL, option: value})


def test_save_png_round_trips(tmp_path: Path) -> None:
    image = shapes_images("train", indices=[0], **SMALL)[0]
    path = save_png(tmp_path / "sub" / "scene.png", image, scale=3)
    blob = path.read_bytes()
    assert blob[:8] == PNG_SIGNATURE and blob[12:16] == b"IHDR"
    assert struct.unpack(">II", blob[16:24]) == (96, 96)
    decoded = read_png(path)
    assert np.array_equal(decoded, image.repeat(3, axis=0).repeat(3, axis=1))
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(read_png(save_png(tmp_path / "grey.png", grey)), grey)
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "bad.png", image.astype(np.float32))


def _ridge_accuracy(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                    val_y: np.ndarray, classes: int, penalty: float = 1.0) -> float:
    def design(x: np.ndarray) -> np.ndarray:
        return np.hstack([x.astype(np.float64), np.ones((len(x), 1))])

    x = design(train_x)
    weights = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]),
                              x.T @ np.eye(classes)[train_y])
    return float(np.mean(np.argmax(design(val_x) @ weights, axis=1) == val_y))


@pytest.mark.parametrize("attribute, names", [
    ("colour", list(COLOUR_WEIGHTS)),
    ("kind", list(SHAPE_WEIGHTS)),
    ("cell", list(range(9))),
])
def test_a_linear_probe_reads_the_first_shape_from_features(
        default_data: tuple[CaptionData, float, Path], attribute: str, names: list) -> None:
    data = default_data[0]

    def labels(split: str, count: int) -> np.ndarray:
        firsts = [scene.shapes[0] for scene in shapes_scenes(split, count)]
        values = [s.row * 3 + s.col if attribute == "cell" else getattr(s, attribute)
                  for s in firsts]
        return np.array([names.index(v) for v in values])

    train_y, val_y = labels("train", 2000), labels("val", 300)
    accuracy = _ridge_accuracy(data.train.features, train_y, data.val.features, val_y, len(names))
    majority = np.bincount(val_y).max() / len(val_y)
    assert accuracy > 2 * majority if attribute != "kind" else accuracy > 1.5 * majority, (
        f"{attribute}: probe accuracy {accuracy:.2f}, majority class {majority:.2f}")


def test_scene_sampling_covers_the_long_tail() -> None:
    scenes = shapes_scenes("train", 2000)
    kinds = Counter(s.kind for scene in scenes for s in scene.shapes)
    colours = Counter(s.colour for scene in scenes for s in scene.shapes)
    assert set(kinds) == set(SHAPE_WEIGHTS) and set(colours) == set(COLOUR_WEIGHTS)
    assert kinds.most_common(1)[0][1] > 10 * min(kinds.values())
    counts = Counter(len(scene.shapes) for scene in scenes)
    assert set(counts) == {1, 2, 3}


def test_pictures_by_image_id_match_the_split_renders():
    from capx.datasets.shapes import shapes_pictures

    train = shapes_images("train", **SMALL)
    val = shapes_images("val", **SMALL)
    first_val = SMALL["num_train"]
    both = shapes_pictures([first_val + 1, 0], **SMALL)
    assert np.array_equal(both[0], val[1]) and np.array_equal(both[1], train[0])
