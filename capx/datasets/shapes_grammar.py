"""The small grammar that describes scenes of coloured shapes in words.

A :class:`Scene` is pure data (shapes, colours, sizes, grid cells, exact geometry; see
:mod:`capx.datasets.shapes_scene`); it is sampled from one random stream and described from
another, so re-sampling the captions never changes the picture. Every vocabulary table maps a canonical value to weighted paraphrases: the common word
dominates and a long tail of rare synonyms ("vermilion", "lozenge", "orb") appears in well under
1% of captions, which is where word models meet ``<UNK>`` and character models must spell.
Captions are lowercase words separated by single spaces, without punctuation.
"""

from __future__ import annotations

import random
from typing import Sequence

from capx.datasets.shapes_scene import (  # noqa: F401  (the canonical tables: re-exported)
    COLOUR_WEIGHTS, SHAPE_WEIGHTS, Scene, Shape, WeightedChoice, weighted_choices,
)

# --- How captions name them -----------------------------------------------------------------

SHAPE_NOUNS = {
    "circle": {"circle": 60, "ball": 14, "disc": 8, "disk": 4, "dot": 6, "sphere": 2, "orb": 0.8,
               "roundel": 0.3},
    "square": {"square": 75, "box": 10, "block": 8, "tile": 3, "cube": 2, "quadrate": 0.3},
    "triangle": {"triangle": 85, "pyramid": 5, "wedge": 3, "delta": 0.5, "trigon": 0.3},
    "star": {"star": 88, "five pointed star": 6, "starburst": 0.7, "pentagram": 0.6},
    "cross": {"cross": 70, "plus": 15, "plus sign": 12, "greek cross": 0.5},
    "ring": {"ring": 65, "donut": 12, "hoop": 8, "doughnut": 5, "loop": 3, "annulus": 0.4},
    "diamond": {"diamond": 75, "rhombus": 12, "lozenge": 0.8, "rhomb": 0.3},
    "hexagon": {"hexagon": 90, "six sided shape": 5, "hex": 3},
    "pentagon": {"pentagon": 92, "five sided shape": 6},
    "heart": {"heart": 95, "love heart": 3},
    "crescent": {"crescent": 70, "moon": 15, "crescent moon": 12, "lune": 0.5},
    "rectangle": {"rectangle": 75, "bar": 10, "brick": 8, "oblong": 2},
    "oval": {"oval": 70, "ellipse": 25, "ellipsoid": 1},
    "x": {"x": 60, "letter x": 10, "x shape": 20, "saltire": 1},
    "octagon": {"octagon": 90, "stop sign": 5},
}
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
          "cross": "crosses", "ring": "rings", "diamond": "diamonds", "hexagon": "hexagons",
          "pentagon": "pentagons", "heart": "hearts", "crescent": "crescents",
          "rectangle": "rectangles", "oval": "ovals", "x": "x shapes", "octagon": "octagons"}
GENERIC_NOUNS = {"shape": 60, "object": 25, "thing": 6, "figure": 5, "symbol": 2, "icon": 0.5}
GENERIC_PLURALS = {"shapes": 70, "objects": 20, "figures": 4, "items": 3, "things": 3}

COLOUR_WORDS = {
    "red": {"red": 90, "bright red": 3, "crimson": 1.2, "scarlet": 2.5, "cherry": 0.8, "ruby": 0.6,
            "vermilion": 0.5},
    "blue": {"blue": 90, "royal blue": 2, "cobalt": 1.5, "azure": 1, "sapphire": 0.5,
             "cerulean": 0.4},
    "green": {"green": 90, "emerald": 2, "grass green": 1, "jade": 0.5, "verdant": 0.3},
    "yellow": {"yellow": 90, "golden": 3, "lemon": 2, "sunny yellow": 0.7, "canary": 0.5},
    "orange": {"orange": 92, "amber": 2, "tangerine": 1.5, "apricot": 0.5},
    "purple": {"purple": 80, "violet": 10, "plum": 1, "lilac": 1, "mauve": 0.8, "amethyst": 0.3},
    "white": {"white": 93, "pure white": 2, "snowy": 1, "ivory": 1},
    "black": {"black": 93, "jet black": 2, "ebony": 1, "inky": 0.5},
    "pink": {"pink": 90, "hot pink": 3, "rose": 3, "blush": 0.5},
    "brown": {"brown": 90, "chocolate": 3, "chestnut": 1, "coffee": 1, "umber": 0.5},
    "cyan": {"cyan": 55, "turquoise": 20, "aqua": 15, "aquamarine": 2},
    "lime": {"lime": 60, "lime green": 35, "chartreuse": 1.5},
    "navy": {"navy": 70, "navy blue": 25, "indigo": 2},
    "maroon": {"maroon": 75, "burgundy": 12, "wine": 3, "oxblood": 0.5},
    "teal": {"teal": 95, "dark cyan": 3},
    "olive": {"olive": 80, "olive green": 15, "khaki": 1},
    "magenta": {"magenta": 80, "fuchsia": 8},
}
SIZE_WORDS = {
    "small": {"small": 60, "little": 20, "tiny": 10, "miniature": 0.8, "petite": 0.3, "wee": 0.3,
              "minuscule": 0.2},
    "large": {"large": 50, "big": 35, "huge": 7, "giant": 3, "enormous": 2, "massive": 1,
              "gigantic": 0.5, "oversized": 0.3},
}
RELATION_WORDS = {
    "above": {"above": 55, "over": 20, "higher than": 10, "higher up than": 3, "atop": 0.4},
    "below": {"below": 45, "under": 30, "beneath": 10, "underneath": 8, "lower than": 6,
              "further down than": 0.5},
    "left of": {"to the left of": 55, "left of": 25, "on the left of": 10, "leftward of": 0.3},
    "right of": {"to the right of": 55, "right of": 25, "on the right of": 10,
                 "rightward of": 0.3},
    "next to": {"next to": 60, "beside": 25, "near": 10, "close to": 4, "alongside": 1.5,
                "adjacent to": 1.2},
    "bigger than": {"bigger than": 50, "larger than": 40, "much bigger than": 3,
                    "twice the size of": 1},
    "smaller than": {"smaller than": 85, "much smaller than": 3, "tinier than": 1},
}
INVERSE_RELATION = {"above": "below", "below": "above", "left of": "right of",
                    "right of": "left of", "next to": "next to",
                    "bigger than": "smaller than", "smaller than": "bigger than"}
IMAGE_NOUNS = {"image": 60, "picture": 25, "frame": 8, "canvas": 4, "scene": 3}
IMAGE_INTROS = {"an image of": 30, "a picture of": 30, "a picture showing": 10,
                "an image showing": 8, "a drawing of": 8, "an illustration of": 1.5,
                "a rendering of": 1, "a sketch of": 0.8, "a depiction of": 0.3}
GREY_WORDS = {"grey": 50, "gray": 50}
BACKGROUND_TONES = {
    "dark": {"dark": 85, "deep": 5, "charcoal": 2, "dim": 1},
    "medium": {"": 80, "medium": 12, "mid": 4, "neutral": 2},
    "light": {"light": 80, "pale": 15, "silvery": 1},
}

_CENTRE = {"in the centre": 30, "in the center": 30, "in the middle": 30, "at the centre": 5,
           "at the center": 5, "in the very middle": 1}
_EDGE = {"at the {v}": 40, "near the {v}": 25, "at the {v} of the {img}": 15,
         "in the {vpart} part": 8, "along the {v} edge": 2}
_SIDE = {"on the {h}": 40, "on the {h} side": 25, "at the {h}": 10, "near the {h} edge": 10,
         "on the {h} of the {img}": 10, "on the {h}hand side": 0.5}
_CORNER = {"in the {v} {h} corner": 40, "at the {v} {h}": 25, "in the {vpart} {h} corner": 15,
           "in the {v} {h}": 15, "near the {v} {h} corner": 5}
_ROW_WORDS = {0: ("top", "upper"), 2: ("bottom", "lower")}
_COL_WORDS = {0: "left", 2: "right"}

SHAPE_NOUN_CHOICE = weighted_choices(SHAPE_NOUNS)
COLOUR_WORD_CHOICE = weighted_choices(COLOUR_WORDS)
SIZE_WORD_CHOICE = weighted_choices(SIZE_WORDS)
RELATION_CHOICE = weighted_choices(RELATION_WORDS)
TONE_CHOICE = weighted_choices(BACKGROUND_TONES)
GENERIC_NOUN = WeightedChoice(GENERIC_NOUNS)
GENERIC_PLURAL = WeightedChoice(GENERIC_PLURALS)
IMAGE_NOUN = WeightedChoice(IMAGE_NOUNS)
IMAGE_INTRO = WeightedChoice(IMAGE_INTROS)
GREY_WORD = WeightedChoice(GREY_WORDS)
_POSITION_TEMPLATES = {
    "centre": WeightedChoice(_CENTRE), "edge": WeightedChoice(_EDGE),
    "side": WeightedChoice(_SIDE), "corner": WeightedChoice(_CORNER),
}


# --- Describing scenes ------------------------------------------------------------------------

def article(next_word: str) -> str:
    """'a' or 'an' for the word that follows (letters that sound like a vowel: 'an x')."""
    return "an" if next_word[:1] in "aeiox" else "a"


def noun_phrase(shape: Shape, rng: random.Random, *, size_p: float, determiner: str = "a") -> str:
    """e.g. 'a small crimson circle'; the size is optional, the colour nearly always said."""
    words = []
    if rng.random() < size_p:
        words.append(SIZE_WORD_CHOICE[shape.size](rng))
    say_colour = rng.random() < 0.96
    if say_colour:
        words.append(COLOUR_WORD_CHOICE[shape.colour](rng))
    if say_colour and rng.random() < 0.05:
        words.append(GENERIC_NOUN(rng))
    else:
        words.append(SHAPE_NOUN_CHOICE[shape.kind](rng))
    if determiner == "a":
        determiner = article(words[0])
    return " ".join([determiner, *words] if determiner else words)


def position_phrase(shape: Shape, rng: random.Random) -> str:
    """Where a shape is: 'in the top left corner', 'on the right side', 'in the middle'..."""
    row, col = shape.row, shape.col
    kind = ("centre" if (row, col) == (1, 1) else "edge" if col == 1 else "side" if row == 1
            else "corner")
    template = _POSITION_TEMPLATES[kind](rng)
    v, vpart = _ROW_WORDS.get(row, ("", ""))
    return template.format(v=v, vpart=vpart, h=_COL_WORDS.get(col, ""), img=IMAGE_NOUN(rng))


def relations(a: Shape, b: Shape) -> list[str]:
    """The relations that hold from ``a`` to ``b`` (canonical names, 'a is <rel> b')."""
    found = []
    if a.row != b.row:
        found.append("above" if a.row < b.row else "below")
    if a.col != b.col:
        found.append("left of" if a.col < b.col else "right of")
    if abs(a.row - b.row) + abs(a.col - b.col) == 1:
        found.append("next to")
    return found


def relation_phrase(a: Shape, b: Shape, rng: random.Random, *, sizes: bool = False) -> str:
    """One true spatial (or, with ``sizes``, size) relation from ``a`` to ``b``, in words."""
    return RELATION_CHOICE[pick_relation(a, b, rng, sizes=sizes)](rng)


def pick_relation(a: Shape, b: Shape, rng: random.Random, *, sizes: bool = False) -> str:
    """The canonical name of one relation that holds from ``a`` to ``b``."""
    options = relations(a, b)
    if sizes and a.size != b.size:
        options.append("bigger than" if a.size == "large" else "smaller than")
    return rng.choice(options)


def background_phrase(scene: Scene, rng: random.Random) -> str:
    """e.g. 'a dark grey background' (every background is grey; its tone varies)."""
    words = [w for w in (TONE_CHOICE[scene.background](rng), GREY_WORD(rng)) if w]
    return " ".join([article(words[0]), *words, "background"])


def _plural_of_kinds(shapes: Sequence[Shape], rng: random.Random) -> str:
    kinds = {s.kind for s in shapes}
    if len(kinds) == 1 and rng.random() < 0.5:
        return PLURAL[kinds.pop()]
    return GENERIC_PLURAL(rng)


_NUMBER = {1: "one", 2: "two", 3: "three"}


def _one_shape(scene: Scene, rng: random.Random) -> str:
    (s,) = scene.shapes
    np_ = lambda det="a": noun_phrase(s, rng, size_p=0.5, determiner=det)  # noqa: E731
    pos = lambda: position_phrase(s, rng)  # noqa: E731
    template = rng.choices(range(9), weights=(30, 15, 8, 8, 3, 12, 10, 4, 2))[0]
    if template == 0:
        return f"{np_()} {pos()}"
    if template == 1:
        return f"there is {np_()} {pos()}"
    if template == 2:
        return f"{pos()} there is {np_()}"
    if template == 3:
        return f"{np_()} is {pos()}"
    if template == 4:
        return f"{np_()} sits {pos()}"
    if template == 5:
        return f"{IMAGE_INTRO(rng)} {np_()} {pos()}"
    if template == 6:
        return f"{np_()} on {background_phrase(scene, rng)}"
    if template == 7:
        return f"a single {np_('')} {pos()}"
    return f"just one {np_('')} {pos()}"


def _two_shapes(scene: Scene, rng: random.Random) -> str:
    a, b = rng.sample(scene.shapes, 2)
    np_ = lambda s, det="a": noun_phrase(s, rng, size_p=0.4, determiner=det)  # noqa: E731
    template = rng.choices(range(9), weights=(30, 12, 12, 10, 8, 8, 4, 6, 3))[0]
    if template == 0:
        return f"{np_(a)} {relation_phrase(a, b, rng)} {np_(b)}"
    if template == 1:
        return f"there is {np_(a)} {relation_phrase(a, b, rng)} {np_(b)}"
    if template in (2, 7):
        return _is_related(a, b, rng, "a" if template == 2 else "the")
    if template == 3:
        return f"{np_(a)} and {np_(b)}"
    if template == 4:
        return f"{np_(a)} {position_phrase(a, rng)} and {np_(b)} {position_phrase(b, rng)}"
    if template == 5:
        return f"{IMAGE_INTRO(rng)} {np_(a)} {relation_phrase(a, b, rng)} {np_(b)}"
    if template == 6:
        return f"two {_plural_of_kinds(scene.shapes, rng)} on {background_phrase(scene, rng)}"
    if a.row == b.row:
        return f"{np_(a)} and {np_(b)} side by side"
    return f"{np_(a)} {position_phrase(a, rng)} with {np_(b)}"


def _is_related(a: Shape, b: Shape, rng: random.Random, determiner: str) -> str:
    """'a red circle is above a blue square'; a size relation leaves sizes out of the nouns."""
    relation = pick_relation(a, b, rng, sizes=True)
    size_p = 0.0 if relation in ("bigger than", "smaller than") else 0.4
    first = noun_phrase(a, rng, size_p=size_p, determiner=determiner)
    second = noun_phrase(b, rng, size_p=size_p, determiner=determiner)
    return f"{first} is {RELATION_CHOICE[relation](rng)} {second}"


def _three_shapes(scene: Scene, rng: random.Random) -> str:
    a, b, c = rng.sample(scene.shapes, 3)
    np_ = lambda s, det="a": noun_phrase(s, rng, size_p=0.2, determiner=det)  # noqa: E731
    template = rng.choices(range(7), weights=(15, 15, 10, 8, 6, 4, 10))[0]
    if template == 0:
        return f"{np_(a)} {relation_phrase(a, b, rng)} {np_(b)} and {np_(c)}"
    if template == 1:
        return f"{np_(a)} with {np_(b)} and {np_(c)}"
    if template == 2:
        return (f"{np_(a)} {relation_phrase(a, b, rng)} {np_(b)} with {np_(c)} "
                f"{position_phrase(c, rng)}")
    if template == 3:
        return f"three {_plural_of_kinds(scene.shapes, rng)} including {np_(a)}"
    if template == 4:
        return f"there are three shapes and {np_(a, 'the')} is {position_phrase(a, rng)}"
    if template == 5:
        return f"three {_plural_of_kinds(scene.shapes, rng)} on {background_phrase(scene, rng)}"
    return f"{np_(a)} and {np_(b)} {relation_phrase(b, c, rng)} {np_(c)}"


_DESCRIBERS = {1: _one_shape, 2: _two_shapes, 3: _three_shapes}


def describe(scene: Scene, rng: random.Random) -> str:
    """One caption of ``scene`` drawn from the grammar."""
    return _DESCRIBERS[len(scene.shapes)](scene, rng)


def captions_for(scene: Scene, rng: random.Random, count: int = 5) -> list[str]:
    """``count`` captions of one scene, distinct where the grammar allows it (a few retries)."""
    captions: list[str] = []
    for _ in range(count):
        caption = describe(scene, rng)
        for _retry in range(4):
            if caption not in captions:
                break
            caption = describe(scene, rng)
        captions.append(caption)
    return captions
