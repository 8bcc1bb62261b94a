"""Scenes of coloured shapes, as pure data: what a picture holds and how one is drawn at random.

A :class:`Scene` is a grey background and one to three :class:`Shape` s (kind, colour, size,
grid cell, exact geometry, jittered RGB), drawn by :func:`sample_scene` from canonical tables
with prior weights. :class:`WeightedChoice` draws from such ``{value: weight}`` tables; the
words that describe a scene are :mod:`capx.datasets.shapes_grammar`.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from typing import Mapping

GRID = 3  # shapes sit in cells of a GRID x GRID layout (rows top->bottom, cols left->right)
RADIUS = {"small": 0.085, "large": 0.145}  # shape radius as a fraction of the image side
SIZE_WEIGHTS = {"small": 1.0, "large": 1.0}
COUNT_WEIGHTS = {1: 0.3, 2: 0.4, 3: 0.3}
COLOUR_JITTER = 10  # +- per RGB channel, so one colour name covers a small range of pixels


class WeightedChoice:
    """Draws one key of a ``{value: weight}`` table, fast enough for tens of thousands of calls."""

    def __init__(self, table: Mapping[str, float]):
        if not table or min(table.values()) <= 0:
            raise ValueError(f"a choice table needs positive weights, got {dict(table)!r}")
        self.values = list(table)
        self.cumulative = list(itertools.accumulate(table.values()))

    def __call__(self, rng: random.Random) -> str:
        return self.values[bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


def weighted_choices(tables: Mapping[str, Mapping[str, float]]) -> dict[str, WeightedChoice]:
    """One :class:`WeightedChoice` per table of ``{option: weight}``, under the table's key."""
    return {key: WeightedChoice(table) for key, table in tables.items()}


# --- What scenes contain: canonical shapes and colours with their prior weights -------------

SHAPE_WEIGHTS = {
    "circle": 20, "square": 18, "triangle": 15, "star": 10, "cross": 8, "ring": 7, "diamond": 6,
    "hexagon": 4, "pentagon": 3, "heart": 2.5, "crescent": 2, "rectangle": 2, "oval": 1.5,
    "x": 1.2, "octagon": 0.8,
}
COLOUR_RGB = {
    "red": (220, 30, 30), "blue": (35, 75, 225), "green": (30, 160, 50), "yellow": (240, 215, 30),
    "orange": (250, 135, 20), "purple": (130, 50, 180), "white": (245, 245, 245),
    "black": (15, 15, 15), "pink": (250, 140, 190), "brown": (125, 75, 30),
    "cyan": (30, 205, 215), "lime": (165, 235, 40), "navy": (20, 25, 105),
    "maroon": (115, 10, 35), "teal": (0, 120, 120), "olive": (120, 120, 20),
    "magenta": (220, 30, 200),
}
COLOUR_WEIGHTS = {
    "red": 16, "blue": 15, "green": 13, "yellow": 11, "orange": 8, "purple": 7, "white": 6,
    "black": 5, "pink": 4, "brown": 3, "cyan": 2.5, "lime": 1.5, "navy": 1.2, "maroon": 1,
    "teal": 0.8, "olive": 0.6, "magenta": 0.6,
}
BACKGROUND_LEVEL = {"dark": 60, "medium": 120, "light": 190}  # grey backgrounds, R = G = B
BACKGROUND_WEIGHTS = {"dark": 1.0, "medium": 1.0, "light": 1.0}

SHAPE_CHOICE = WeightedChoice(SHAPE_WEIGHTS)
COLOUR_CHOICE = WeightedChoice(COLOUR_WEIGHTS)
SIZE_CHOICE = WeightedChoice(SIZE_WEIGHTS)
BACKGROUND_CHOICE = WeightedChoice(BACKGROUND_WEIGHTS)
COUNT_CHOICE = WeightedChoice({str(k): v for k, v in COUNT_WEIGHTS.items()})


@dataclass(frozen=True)
class Shape:
    """One drawn shape: what it is, its grid cell and its geometry (fractions of the side)."""

    kind: str
    colour: str
    size: str
    row: int
    col: int
    cx: float
    cy: float
    radius: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """A picture: a grey background, one to three shapes in reading order, and its noise seed."""

    background: str
    shapes: tuple[Shape, ...]
    noise_seed: int


# --- Sampling scenes --------------------------------------------------------------------------

def sample_scene(rng: random.Random) -> Scene:
    """Draw one scene: 1-3 shapes in distinct grid cells, sorted top-left to bottom-right."""
    count = int(COUNT_CHOICE(rng))
    cells = sorted(rng.sample(range(GRID * GRID), count))
    shapes = tuple(_sample_shape(rng, divmod(cell, GRID)) for cell in cells)
    return Scene(BACKGROUND_CHOICE(rng), shapes, rng.getrandbits(63))


def _sample_shape(rng: random.Random, cell: tuple[int, int]) -> Shape:
    kind, colour, size = SHAPE_CHOICE(rng), COLOUR_CHOICE(rng), SIZE_CHOICE(rng)
    radius = RADIUS[size] * rng.uniform(0.9, 1.1)
    row, col = cell
    slack = max(0.0, 0.5 / GRID - radius - 0.01)  # jitter that keeps the shape inside its cell
    cx = (col + 0.5) / GRID + rng.uniform(-slack, slack)
    cy = (row + 0.5) / GRID + rng.uniform(-slack, slack)
    rgb = tuple(min(255, max(0, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER)))
                for c in COLOUR_RGB[colour])
    return Shape(kind, colour, size, row, col, cx, cy, radius, rgb)  # type: ignore[arg-type]


def sample_scenes(count: int, rng: random.Random) -> list[Scene]:
    return [sample_scene(rng) for _ in range(count)]
