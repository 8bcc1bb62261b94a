"""A word list held out from training, to tell a model's invented words that are real words
from non-words (:func:`capx.metrics.failure_modes.invented_word_kinds`).

A list is read as the canonical words (:mod:`capx.metrics.text`) of a file: a COCO caption json
(``.json``: every annotation's caption, e.g. the COCO val2017 captions) or a text file (every
line). Words also in the training text are never invented, so "minus the training words" needs
no extra step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from capx.metrics.text import vocabulary


class WordListError(ValueError):
    """The word list file is missing or not a COCO caption json / text file."""


def load_word_list(path: str | os.PathLike) -> set[str]:
    """Every canonical word of the captions (``.json``) or lines (any other file) of ``path``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WordListError(f"evaluation.real_words_file: {str(path)!r} does not exist; give a "
                            f"COCO caption json or a text file of words, or null (off)")
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".json":
        return vocabulary(text.splitlines())
    try:
        annotations = json.loads(text)["annotations"]
        return vocabulary(str(a["caption"]) for a in annotations)
    except (ValueError, KeyError, TypeError) as exc:
        raise WordListError(f"evaluation.real_words_file: {str(path)!r} is not a COCO caption "
                            f"json (an 'annotations' list of {{'caption': ...}}): {exc}") from exc
