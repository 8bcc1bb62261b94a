"""How closely capx's own features reproduce coco-mini's ``features_effl0.h5``.

coco-mini ships features, not images; its README names the public repositories the JPEGs came
from. Given a folder of those JPEGs (file names ``<12-digit COCO id>.jpg``), this encodes them
with capx's EfficientNet-Lite0 and compares each row with the stored float16 one:

    python -m benchmarks.coco_mini_agreement path/to/jpegs [--coco-mini ../shared/data/coco-mini]

It prints the relative L2 difference per image (median and max) and the share of feature values
that are identical once capx's float32 value is rounded to float16 as the file stores it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

from capx.datasets.coco import image_id_from_url
from capx.images.features_file import list_images
from capx.encoders.preprocess import open_image
from capx.registry import ENCODERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", help="folder of coco-mini's JPEGs (<COCO id>.jpg)")
    parser.add_argument("--coco-mini", default="../shared/data/coco-mini")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    with h5py.File(Path(args.coco_mini) / "features_effl0.h5", "r") as h5:
        row_of = {int(i): r for r, i in enumerate(h5["image_ids"][()])}
        stored = h5["features"][()]
    items = [it for it in list_images([args.images]) if image_id_from_url(it.name) in row_of]
    if not items:
        print(f"no image in {args.images} has a coco-mini id", file=sys.stderr)
        return 1
    encoder = ENCODERS.get("efficientnet_lite0")()
    relative, identical, total = [], 0, 0
    for start in range(0, len(items), args.batch_size):
        batch = items[start:start + args.batch_size]
        ours = encoder.encode(np.stack([encoder.preprocess(open_image(it.path)) for it in batch]))
        theirs = stored[[row_of[image_id_from_url(it.name)] for it in batch]]
        ref = theirs.astype(np.float32)
        relative.extend(np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1))
        identical += int((ours.astype(np.float16) == theirs).sum())
        total += theirs.size
    rel = np.asarray(relative)
    print(f"{len(items)} images of coco-mini: relative L2 difference median {np.median(rel):.2e}, "
          f"max {rel.max():.2e}; {100 * identical / total:.2f}% of the values identical after "
          f"rounding to float16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
