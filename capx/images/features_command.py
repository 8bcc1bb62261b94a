"""``capx features IMAGES_OR_FOLDER --out feats.h5``: image features in coco-mini's h5 layout.

Resumable (images already in the file are skipped), with a progress bar on a terminal; an
unreadable image is reported at the end and the others are still written.
"""

from __future__ import annotations

import argparse
import sys

from capx.images.features_file import FeatureFile, encode_into, feature_settings, list_images
from capx.registry import load_plugins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("--out", required=True, help="h5 file to write or add to")
    parser.add_argument("--encoder", default="efficientnet_lite0", help="image encoder plugin")
    parser.add_argument("--weights", default=None,
                        help="encoder weights (.pth or .npz); default: the images extra's package")
    parser.add_argument("--project-512", action="store_true",
                        help="project to coco-mini's 512-d coco_captioning/ features")
    parser.add_argument("--centre-from", default=None,
                        help="coco-mini folder whose train mean centres the 512-d projection")
    parser.add_argument("--plugins", nargs="*", default=[], metavar="MODULE",
                        help="modules to import first (an encoder plugin, say)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--progress", choices=("auto", "true", "false"), default="auto",
                        help="progress bar (auto: only on a terminal)")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.batch_size < 1:
        print(f"capx features: --batch-size must be >= 1, got {args.batch_size}", file=sys.stderr)
        return 2

    try:
        load_plugins(args.plugins)
        items = list_images(args.images)
        if not items:
            print(f"capx features: no images in {' '.join(args.images) or '(nothing named)'}; "
                  f"name image files (JPEG, PNG, ...) or folders that hold them",
                  file=sys.stderr)
            return 2
        settings = feature_settings(args.encoder, args.weights, args.project_512,
                                    args.centre_from)
        out = FeatureFile(args.out, settings.feature_dim, settings.dtype, settings.attributes)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"capx features: {exc}", file=sys.stderr)
        return 2
    with out:
        pending = [item for item in items if item.name not in set(out.names)]
        print(f"{len(items)} images, {len(items) - len(pending)} already in {out.path}, "
              f"{len(pending)} to encode with {args.encoder}")
        disable = {"auto": None, "true": False, "false": True}[args.progress]
        try:
            with tqdm(total=len(pending), unit="img", disable=disable) as bar:
                failures = encode_into(settings.encoder, pending, out, settings.transform,
                                       args.batch_size, bar)
        except KeyboardInterrupt:
            print(f"\ninterrupted: {out.path} keeps its {len(out.names)} rows; run the same "
                  f"command again to continue", file=sys.stderr)
            return 130
        print(f"wrote {len(pending) - len(failures)} rows; {out.path} holds {len(out.names)}")
    for item, error in failures:
        print(f"unreadable, skipped: {error}", file=sys.stderr)
    if failures:
        print(f"capx features: {len(failures)} of {len(pending)} images could not be read "
              f"(listed above); fix or remove them and run again to add them", file=sys.stderr)
        return 1
    return 0
