"""Word vs char vocabulary statistics on real COCO captions, printed side by side.

    python examples/vocab_stats.py [--data-dir ../shared/data] [--word-min-count 1]

For COCO val2017 (25,014 captions) the tokenizers are fitted on a deterministic 90% of the images
and measured on the other 10%; for coco-mini on its own train / val files. The caption JSON is read
directly (``annotations[i]["caption"]``), independently of the dataset plugins.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from capx.tokenizers import CharTokenizer, WordTokenizer
from capx.tokenizers.vocab_stats import format_stats_table, vocab_stats

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_annotations(path: Path) -> list[dict]:
    """The ``annotations`` list of a COCO caption file (each has ``image_id`` and ``caption``)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if "annotations" not in data:
        raise ValueError(f"{path} has no 'annotations' key: is it a COCO caption file?")
    return data["annotations"]


def in_train_part(image_id: int, train_percent: int = 90) -> bool:
    """Deterministic split by image (all captions of an image fall on the same side)."""
    return int(hashlib.md5(str(image_id).encode()).hexdigest(), 16) % 100 < train_percent


def split_by_image(annotations: list[dict],
                   train_percent: int = 90) -> tuple[list[str], list[str]]:
    """(train captions, held-out captions) of one annotation list."""
    train, held_out = [], []
    for ann in annotations:
        side = train if in_train_part(ann["image_id"], train_percent) else held_out
        side.append(ann["caption"])
    return train, held_out


def compare(train: list[str], held_out: list[str], word_min_count: int = 1) -> str:
    """Fit word and char tokenizers on ``train``; their stats on ``held_out``, side by side."""
    tokenizers = {"word": WordTokenizer(min_count=word_min_count), "char": CharTokenizer()}
    stats = {name: vocab_stats(tok.fit(train), held_out) for name, tok in tokenizers.items()}
    return format_stats_table(stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--word-min-count", type=int, default=1)
    args = parser.parse_args()

    val2017 = args.data_dir / "coco-val2017-captions" / "captions_val2017.json"
    train, held_out = split_by_image(load_annotations(val2017))
    print(f"== COCO val2017: fit on {len(train)} captions (90% of images), "
          f"measured on {len(held_out)} ==")
    print(compare(train, held_out, args.word_min_count))

    mini = args.data_dir / "coco-mini"
    train = [a["caption"] for a in load_annotations(mini / "captions_train.json")]
    held_out = [a["caption"] for a in load_annotations(mini / "captions_val.json")]
    print(f"\n== coco-mini: fit on {len(train)} train captions, measured on {len(held_out)} val ==")
    print(compare(train, held_out, args.word_min_count))


if __name__ == "__main__":
    main()
