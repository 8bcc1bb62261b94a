"""``capx caption --run <MLflow run id or checkpoint> IMAGE...``: a caption for each image.

The checkpoint (a file, or the best checkpoint of an MLflow run) gives the model, tokenizer and
decoder (:class:`capx.inference.Captioner`); its config says which image features it was trained
on: the ``image_folder`` dataset's encoder settings, or, for a model of coco-mini's features,
EfficientNet-Lite0 (1280-d, ``coco_json``) or its 512-d projection (``coco``). ``--html`` also
writes a page of the pictures with their captions; ``--save-model DIR`` an MLflow pyfunc model
that captions image bytes (:mod:`capx.images.bytes_model`).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from capx.checkpoint import CheckpointError, load_checkpoint
from capx.encoders.preprocess import ImageReadError, open_image
from capx.images.features_file import feature_settings, list_images
from capx.inference import Captioner
from capx.tracking.locations import tracking_uri
from capx.tracking.store_setup import make_client

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
BEST_CHECKPOINT = "checkpoints/best.npz"
LAST_CHECKPOINT = "checkpoints/last.npz"
BATCH = 32  # images decoded, encoded and captioned together


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", help="image files and/or folders")
    parser.add_argument("--run", required=True,
                        help="a checkpoint .npz, or an MLflow run id (its best checkpoint)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store of --run (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.add_argument("--decoding", choices=("greedy", "beam", "sample"), default=None,
                        help="decoder (default: the run's own, as in its config)")
    parser.add_argument("--beam-width", type=int, default=3, help="beam search width")
    parser.add_argument("--centre-from", default=None,
                        help="coco-mini folder, for a model of its 512-d features "
                             "(default: the run's dataset folder)")
    parser.add_argument("--weights", default=None, help="encoder weights (.pth or .npz)")
    parser.add_argument("--html", default=None, help="also write a page of images and captions")
    parser.add_argument("--save-model", default=None, metavar="DIR",
                        help="write an MLflow pyfunc model that captions image bytes")
    parser.add_argument("--plugins", nargs="*", default=[], metavar="MODULE",
                        help="plugin modules the checkpoint needs (a checkpoint never imports "
                             "them itself)")


def load_run_checkpoint(target: str, store_uri: str | None, download_dir: Path) -> Any:
    """The checkpoint at path ``target``, or the best (else last) one of MLflow run ``target``."""
    path = Path(target).expanduser()
    if path.is_file():
        return load_checkpoint(path)
    if not RUN_ID.match(target):
        raise CheckpointError(f"--run {target!r} is neither a checkpoint file (looked at "
                              f"{path.resolve()}) nor an MLflow run id (32 hex digits)")

    uri = tracking_uri(store_uri, Path.cwd())
    client = make_client(uri)
    try:
        client.get_run(target)
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own error types
        raise CheckpointError(f"MLflow run {target} is not in {uri} ({str(exc)[:200]}); give "
                              f"the store that holds it (--tracking-uri URI or "
                              f"MLFLOW_TRACKING_URI), or the checkpoint file itself") from exc
    errors = []
    for artifact in (BEST_CHECKPOINT, LAST_CHECKPOINT):
        try:
            return load_checkpoint(client.download_artifacts(target, artifact, str(download_dir)))
        except Exception as exc:  # noqa: BLE001 - try the next checkpoint, then report both
            errors.append(f"{artifact}: {exc}")
    raise CheckpointError(f"MLflow run {target} in {uri} has no usable checkpoint ("
                          + "; ".join(errors) + ")")


def features_for(config: dict[str, Any], feature_dim: int, weights: str | None,
                 centre_from: str | None) -> Any:
    """The :class:`~capx.images.features_file.FeatureSettings` that made the model's training features."""
    dataset = dict(config.get("dataset") or {})
    if dataset.get("name") == "image_folder":
        settings = feature_settings(dataset.get("encoder", "efficientnet_lite0"),
                                    weights or dataset.get("weights"),
                                    bool(dataset.get("project_512")),
                                    centre_from or dataset.get("centre_from"))
    elif feature_dim == 1280:
        settings = feature_settings("efficientnet_lite0", weights)
    elif feature_dim == 512:
        base = dataset.get("base_dir")
        default = str(Path(base).parent) if dataset.get("name") == "coco" and base else None
        settings = feature_settings("efficientnet_lite0", weights, True, centre_from or default)
    else:
        raise ValueError(f"this model takes {feature_dim}-d image features (dataset "
                         f"{dataset.get('name')!r}), which no image encoder makes; caption "
                         f"images with a model trained on image_folder or coco-mini features")
    if settings.feature_dim != feature_dim:
        raise ValueError(f"the encoder makes {settings.feature_dim}-d features but the model "
                         f"takes {feature_dim}-d")
    return settings


def write_html(path: Path, rows: list[tuple[Path, str]]) -> None:
    """A self-contained page: each picture (a JPEG thumbnail, inline) above its caption."""
    from PIL import Image

    cells = []
    for image_path, caption in rows:
        with Image.open(image_path) as image:
            thumb = image.convert("RGB")
            thumb.thumbnail((320, 320))
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=85)
        data = base64.b64encode(buffer.getvalue()).decode()
        cells.append(f'<figure><img src="data:image/jpeg;base64,{data}" alt="">'
                     f"<figcaption><b>{html.escape(image_path.name)}</b><br>"
                     f"{html.escape(caption)}</figcaption></figure>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!doctype html><meta charset='utf-8'><title>capx captions</title>"
                    "<style>figure{display:inline-block;width:330px;vertical-align:top;"
                    "font-family:sans-serif}</style>\n" + "\n".join(cells) + "\n",
                    encoding="utf-8")


def main(args: argparse.Namespace) -> int:
    if not args.images and not args.save_model:
        print("capx caption: name images to caption (or --save-model DIR)", file=sys.stderr)
        return 2
    if args.beam_width < 1:
        print(f"capx caption: --beam-width must be at least 1 (1 is greedy decoding); got "
              f"{args.beam_width}", file=sys.stderr)
        return 2
    if args.save_model and Path(args.save_model).exists():
        print(f"capx caption: --save-model {args.save_model} already exists; choose a new folder",
              file=sys.stderr)
        return 2
    try:
        items = list_images(args.images, unique_names=False)
        if args.images and not items:
            raise FileNotFoundError(f"no images in {' '.join(args.images)}; name image files "
                                    f"(JPEG, PNG, ...) or folders that hold them")
        with tempfile.TemporaryDirectory(prefix="capx-caption-") as tmp:
            checkpoint = load_run_checkpoint(args.run, args.tracking_uri, Path(tmp))
            captioner = Captioner.from_checkpoint(
                checkpoint, args.plugins, "enable them with --plugins {spaced}")
            config = yaml.safe_load(checkpoint.config_yaml) or {}
            settings = features_for(config, captioner.feature_dim, args.weights,
                                    args.centre_from)
            if args.save_model:
                # deferred on purpose: it imports MLflow (seconds), needed only with --save-model
                from capx.images.bytes_model import save_image_model

                save_image_model(checkpoint.path, settings, args.save_model)
                print(f"wrote the image captioning model to {args.save_model}",
                      file=sys.stderr)
    except (FileNotFoundError, ValueError, ImportError, CheckpointError, OSError) as exc:
        print(f"capx caption: {exc}", file=sys.stderr)
        return 2
    options = {"beam_width": args.beam_width} if args.decoding == "beam" else {}
    rows: list[tuple[Path, str]] = []
    failures: list[str] = []
    for start in range(0, len(items), BATCH):  # a batch at a time: memory stays flat
        pixels, readable = [], []
        for item in items[start:start + BATCH]:
            try:
                pixels.append(settings.encoder.preprocess(open_image(item.path)))
                readable.append(item)
            except ImageReadError as exc:
                failures.append(str(exc))
        if not readable:
            continue
        features = settings.encoder.encode(np.stack(pixels))
        if settings.transform is not None:
            features = settings.transform(features)
        for item, caption in zip(readable, captioner.caption(features, args.decoding, **options)):
            print(f"{item.path}\t{caption}", flush=True)
            rows.append((item.path, caption))
    if args.html:
        write_html(Path(args.html), rows)
        print(f"wrote {args.html}", file=sys.stderr)
    for error in failures:
        print(f"unreadable, skipped: {error}", file=sys.stderr)
    return 1 if failures else 0
