"""Image features for the shapes dataset, computed from rendered pixels only.

A fixed, hand-built extractor stands in for a CNN: it must let a captioner recover *what*
(shape, colour, size) and *where* (grid position) from one vector. Blocks:

- colour means on 3x3 and 6x6 grids: colour and position, linearly;
- colour-name histograms (12 soft hue bins weighted by chroma + 6 grey-level bins, at half
  resolution) over the whole image and a 3x3 grid: which colours are where, even for colours
  between the RGB corners;
- edge-orientation histograms (8 soft bins, HOG-like) over the image and a 3x3 grid, as edge
  energy plus the share of each orientation: shape (and size);
- random ReLU features of the 12x12 thumbnail (fixed seed) filling the rest of ``feature_dim``.

The concatenation is mixed by a fixed orthogonal map to ``feature_dim`` (dense, like PCA
output; lossless when the blocks fit). Centring and scaling use training-set statistics and are
done by the dataset (:func:`standardize`). Nothing here depends on the dataset seed.
"""

from __future__ import annotations

import functools

import numpy as np

FEATURE_SEED = 7_2024  # fixed: the extractor is the same for every dataset seed
HUE_BINS = 12
GREY_BINS = 6
ORIENTATION_BINS = 8
TARGET_RMS = 0.4  # per-entry scale of the finished features (the PCA features of coco-mini)
CHUNK = 256  # images per batch, to bound memory
EDGE_FLOOR = 0.02  # edge energy below which a region's orientation shares fade towards zero
REGIONS = 1 + 3 * 3  # histograms cover the whole image and each cell of a 3x3 grid
FIXED_DIM = (3 * 3 + 6 * 6) * 3 + REGIONS * (HUE_BINS + GREY_BINS + ORIENTATION_BINS + 1)
STD_FLOOR = 1e-3  # added to each descriptor's spread, so near-constant ones are not blown up


def pool_grid(maps: np.ndarray, cells: int) -> np.ndarray:
    """Mean of (N, H, W, C) maps over a cells x cells grid -> (N, cells * cells * C)."""
    n, height, width, channels = maps.shape
    rows = np.linspace(0, height, cells + 1).round().astype(int)
    cols = np.linspace(0, width, cells + 1).round().astype(int)
    sums = np.add.reduceat(np.add.reduceat(maps, rows[:-1], axis=1), cols[:-1], axis=2)
    areas = np.outer(np.diff(rows), np.diff(cols))[None, :, :, None]
    return (sums / areas).reshape(n, -1)


def half_resolution(pixels: np.ndarray) -> np.ndarray:
    """2x2 mean pooling of (N, H, W, C) (odd sizes lose their last row/column)."""
    n, height, width, channels = pixels.shape
    cropped = pixels[:, : height // 2 * 2, : width // 2 * 2]
    return cropped.reshape(n, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4))


def soft_histograms(position: np.ndarray, weight: np.ndarray, bins: int, circular: bool,
                    cells: int = 3) -> np.ndarray:
    """Weighted soft histograms of per-pixel ``position`` (in bin units, shape (N, H, W)).

    Each pixel adds ``weight`` to its two nearest bins (linear interpolation); sums are taken
    over the whole image and over a ``cells`` x ``cells`` grid and divided by the pixel counts.
    Returns (N, (1 + cells * cells) * bins): the whole-image histogram, then one per cell.
    """
    n, height, width = position.shape
    rows = np.minimum(np.arange(height) * cells // height, cells - 1)
    cols = np.minimum(np.arange(width) * cells // width, cells - 1)
    image_offset = cells * cells * np.arange(n)[:, None, None]
    cell = (rows[:, None] * cells + cols[None, :])[None] + image_offset
    low = np.floor(position)
    upper = position - low
    low = low.astype(np.intp)
    np.clip(low, 0, bins - 1, out=low)  # (integer % is slow; positions are in [0, bins])
    high = low + 1
    high[high == bins] = 0 if circular else bins - 1
    base = (cell * bins).ravel()
    weight = weight.ravel().astype(np.float64)
    upper = upper.ravel()
    size = n * cells * cells * bins
    sums = (np.bincount(base + low.ravel(), weight * (1.0 - upper), minlength=size)
            + np.bincount(base + high.ravel(), weight * upper, minlength=size))
    sums = sums.reshape(n, cells * cells, bins)
    areas = np.outer(np.bincount(rows, minlength=cells), np.bincount(cols, minlength=cells))
    per_cell = sums / areas.reshape(1, -1, 1)
    whole = sums.sum(axis=1) / (height * width)
    return np.concatenate([whole, per_cell.reshape(n, -1)], axis=1).astype(np.float32)


def colour_histograms(pixels: np.ndarray) -> np.ndarray:
    """Colour-name histograms from RGB in [0, 1]: 12 soft hue bins weighted by chroma, then 6
    grey-level bins weighted by (1 - chroma); whole image and 3x3 grid."""
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    high = np.maximum(np.maximum(red, green), blue)
    low = np.minimum(np.minimum(red, green), blue)
    chroma = high - low
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(high == red, np.mod((green - blue) / safe, 6.0),
                   np.where(high == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0))
    hues = soft_histograms(hue * (HUE_BINS / 6.0), chroma, HUE_BINS, circular=True)
    lightness = (high + low) / 2 * (GREY_BINS - 1)
    greys = soft_histograms(lightness, 1.0 - chroma, GREY_BINS, circular=False)
    return np.concatenate([hues, greys], axis=1)


def edge_histograms(pixels: np.ndarray) -> np.ndarray:
    """Edge strength by orientation (8 soft bins over 180 degrees, HOG-like) from the channel
    with the strongest gradient; whole image and 3x3 grid."""
    padded = np.pad(pixels, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    dx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2
    dy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2
    magnitude = dx * dx + dy * dy
    strongest = magnitude.argmax(axis=-1)[..., None]
    dx = np.take_along_axis(dx, strongest, axis=-1)[..., 0]
    dy = np.take_along_axis(dy, strongest, axis=-1)[..., 0]
    orientation = np.mod(np.arctan2(dy, dx), np.pi) * (ORIENTATION_BINS / np.pi)
    return soft_histograms(orientation, np.hypot(dx, dy), ORIENTATION_BINS, circular=True)


def edge_block(pixels: np.ndarray) -> np.ndarray:
    """Per region (image, 3x3 cells): sqrt of the edge energy, and the share of each orientation.

    Shares don't depend on a shape's size or contrast, so they name the shape almost linearly.
    """
    histograms = edge_histograms(pixels).reshape(len(pixels), REGIONS, ORIENTATION_BINS)
    energy = histograms.sum(axis=-1)
    shares = histograms / (energy[..., None] + EDGE_FLOOR)
    return np.concatenate([np.sqrt(energy), shares.reshape(len(pixels), -1)], axis=1)


@functools.lru_cache(maxsize=8)
def _mixing(inputs: int, outputs: int) -> np.ndarray:
    """A fixed dense (inputs, outputs) map with orthonormal columns (rows if inputs < outputs).

    Rows and columns of an orthonormal DCT-II matrix of side max(inputs, outputs), with seeded
    sign flips and permutations: orthogonal like a random rotation, but built without a QR
    decomposition (LAPACK is slow on a busy machine and its signs vary between builds).
    """
    side = max(inputs, outputs)
    rng = np.random.default_rng([FEATURE_SEED, inputs, outputs, 2])
    k = np.arange(side)[:, None]
    dct = np.sqrt(2.0 / side) * np.cos(np.pi * (np.arange(side)[None, :] + 0.5) * k / side)
    dct[0] /= np.sqrt(2.0)
    signs = rng.choice([-1.0, 1.0], size=side)[:, None]
    mixed = (signs * dct)[rng.permutation(side)][:, rng.permutation(side)]
    return mixed[:inputs, :outputs].astype(np.float32)


def raw_blocks(pixels: np.ndarray) -> np.ndarray:
    """Pixel descriptors of (N, H, W, 3) pixels in [0, 1] -> (N, FIXED_DIM)."""
    colours = np.sqrt(colour_histograms(half_resolution(pixels)))
    means = np.concatenate([pool_grid(pixels, k) for k in (3, 6)], 1)
    return np.concatenate([means, colours, edge_block(pixels)], axis=1).astype(np.float32)


def image_features(images: np.ndarray) -> np.ndarray:
    """Unnormalised pixel descriptors (N, FIXED_DIM) float32 of uint8 images (N, H, W, 3)."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    out = np.empty((len(images), FIXED_DIM), np.float32)
    for start in range(0, len(images), CHUNK):
        pixels = images[start:start + CHUNK].astype(np.float32) / 255.0
        out[start:start + CHUNK] = raw_blocks(pixels)
    return out


def standardize(train: np.ndarray, *others: np.ndarray,
                feature_dim: int | None = None) -> list[np.ndarray]:
    """Z-score descriptors on the training split, optionally mix to ``feature_dim``, scale."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64) + STD_FLOOR
    mixing = None if feature_dim is None else _mixing(train.shape[1], feature_dim).astype(np.float64)

    def transform(x: np.ndarray) -> np.ndarray:
        z = (x - mean) / std
        return z if mixing is None else z @ mixing

    scale = TARGET_RMS / (float(np.sqrt(np.mean(transform(train) ** 2))) or 1.0)
    return [(transform(x) * scale).astype(np.float32) for x in (train, *others)]
