"""Draw shape scenes into small RGB images with NumPy, and write PNG files without Pillow.

Each shape is an inside-test on coordinates normalised by its radius (``u`` right, ``v`` up),
sampled on a 2x2 sub-pixel grid for anti-aliased edges, then blended over a grey background
with a little seeded pixel noise.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from capx.datasets.shapes_scene import BACKGROUND_LEVEL, Scene, Shape

SUPERSAMPLE = 2
NOISE_STD = 3.0  # grey levels
NOISE_TEXTURE_SEED = 20240917


def _regular_star(u: np.ndarray, v: np.ndarray, points: int, inner: float) -> np.ndarray:
    """Inside a star polygon (circumradius 1, one tip up) whose inner corners lie at ``inner``.

    With ``inner = cos(pi / points)`` the inner corners are edge midpoints: a regular polygon.
    """
    half_step = np.pi / points
    angle = np.mod(np.arctan2(v, u) - np.pi / 2, 2 * half_step)
    angle = np.minimum(angle, 2 * half_step - angle)  # angle from the nearest tip
    rise = inner * np.sin(half_step)
    boundary = rise / (rise * np.cos(angle) + (1 - inner * np.cos(half_step)) * np.sin(angle))
    return np.hypot(u, v) <= boundary


def _cross(u: np.ndarray, v: np.ndarray, arm: float = 0.3) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= arm) & (av <= 1)) | ((av <= arm) & (au <= 1))


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.15 * u, 1.15 * v + 0.1
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0


SHAPE_TESTS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": lambda u, v: u * u + v * v <= 1,
    "ring": lambda u, v: (u * u + v * v <= 1) & (u * u + v * v >= 0.55 ** 2),
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.8,
    "rectangle": lambda u, v: (np.abs(u) <= 1) & (np.abs(v) <= 0.5),
    "diamond": lambda u, v: np.abs(u) / 0.8 + np.abs(v) <= 1,
    "triangle": lambda u, v: _regular_star(u, v + 0.2, 3, np.cos(np.pi / 3)),
    "pentagon": lambda u, v: _regular_star(u, v, 5, np.cos(np.pi / 5)),
    "hexagon": lambda u, v: _regular_star(u, v, 6, np.cos(np.pi / 6)),
    "octagon": lambda u, v: _regular_star(u, v, 8, np.cos(np.pi / 8)),
    "star": lambda u, v: _regular_star(u, v, 5, 0.45),
    "cross": _cross,
    "x": lambda u, v: _cross((u + v) / np.sqrt(2), (u - v) / np.sqrt(2), arm=0.28),
    "heart": _heart,
    "crescent": lambda u, v: (u * u + v * v <= 1) & ((u - 0.45) ** 2 + v * v >= 0.8 ** 2),
    "oval": lambda u, v: u * u + (v / 0.6) ** 2 <= 1,
}


def _draw(canvas: np.ndarray, shape: Shape) -> None:
    """Blend one anti-aliased shape into ``canvas`` (H, W, 3 float32), in place."""
    size = canvas.shape[0]
    cx, cy, radius = shape.cx * size, shape.cy * size, shape.radius * size
    x0, x1 = max(0, int(cx - radius) - 1), min(size, int(np.ceil(cx + radius)) + 1)
    y0, y1 = max(0, int(cy - radius) - 1), min(size, int(np.ceil(cy + radius)) + 1)
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = (np.arange(x0, x1)[:, None] + offsets).ravel()
    ys = (np.arange(y0, y1)[:, None] + offsets).ravel()
    u = (xs[None, :] - cx) / radius
    v = (cy - ys[:, None]) / radius
    inside = SHAPE_TESTS[shape.kind](u, v).reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE)
    alpha = inside.sum(axis=(1, 3), dtype=np.float32)[..., None] * (1.0 / SUPERSAMPLE ** 2)
    patch = canvas[y0:y1, x0:x1]
    patch *= 1 - alpha
    patch += alpha * np.asarray(shape.rgb, dtype=np.float32)


def render_scene(scene: Scene, image_size: int) -> np.ndarray:
    """One scene as a (image_size, image_size, 3) uint8 RGB image."""
    canvas = np.full((image_size, image_size, 3), BACKGROUND_LEVEL[scene.background], np.float32)
    for shape in scene.shapes:
        _draw(canvas, shape)
    canvas += _noise_patch(image_size, scene.noise_seed)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _noise_texture(image_size: int) -> np.ndarray:
    """A fixed Gaussian noise texture twice the image side; images take seeded windows of it."""
    rng = np.random.default_rng(NOISE_TEXTURE_SEED)
    return rng.normal(0.0, NOISE_STD, (2 * image_size, 2 * image_size, 3)).astype(np.float32)


def _noise_patch(image_size: int, seed: int) -> np.ndarray:
    """The image-sized window of the noise texture chosen by ``seed`` (cheaper than a new RNG)."""
    y, x = divmod(seed % (image_size * image_size), image_size)
    flip = (seed // (image_size * image_size)) % 4
    patch = _noise_texture(image_size)[y:y + image_size, x:x + image_size]
    if flip & 1:
        patch = patch[::-1]
    return patch[:, ::-1] if flip & 2 else patch


def render_images(scenes: Sequence[Scene], image_size: int) -> np.ndarray:
    """Scenes as one (n, image_size, image_size, 3) uint8 array."""
    images = np.empty((len(scenes), image_size, image_size, 3), np.uint8)
    for i, scene in enumerate(scenes):
        images[i] = render_scene(scene, image_size)
    return images


# --- PNG --------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode an 8-bit grey (H, W) or RGB (H, W, 3) image as PNG; ``scale`` enlarges pixels."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"save_png needs a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"save_png needs an (H, W) or (H, W, 3) image, got shape {image.shape}")
    if int(scale) < 1:
        raise ValueError(f"save_png scale must be a positive integer, got {scale!r}")
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    height, width = image.shape[:2]
    colour_type = 2 if image.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    rows = np.ascontiguousarray(image).reshape(height, -1)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter byte 0 per row
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9))
            + _chunk(b"IEND", b""))


def save_png(path: str | os.PathLike[str], image: np.ndarray, scale: int = 1) -> Path:
    """Write ``image`` (uint8, grey or RGB) to ``path`` as a PNG file and return the path."""
    path = Path(path)
    data = png_bytes(image, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
