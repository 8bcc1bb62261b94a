"""Fetch the CS231n COCO captioning data (``coco_captioning.zip``) into the data folder.

``capx download coco`` (or ``python -m capx.datasets.download coco``) does what the assignment's
``get_datasets.sh`` does, more carefully: it resumes a partial download (HTTP Range on a ``.part``
file), checks the size, extracts into a temporary folder that is renamed into place only once the
layout ``load_coco_data`` reads is complete, and says what to do when something goes wrong.
Only the standard library (urllib, zipfile) and tqdm are used; the HTTP side (resume, size
checks) is :mod:`capx.datasets.http_fetch`, this module the layout, extraction and command line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from capx.datasets.http_fetch import CHUNK_SIZE, TIMEOUT_S, DownloadError, fetch

__all__ = [
    "CHUNK_SIZE", "COCO", "DATA_DIR_ENV", "DEFAULT_DATA_DIR", "DatasetSource", "DownloadError",
    "SOURCES", "TIMEOUT_S", "add_arguments", "build_parser", "default_data_dir", "download",
    "extract", "fetch", "main", "missing_files",
]

DATA_DIR_ENV = "CAPX_DATA_DIR"
DEFAULT_DATA_DIR = "data"


@dataclass(frozen=True)
class DatasetSource:
    """Where one downloadable dataset comes from and what a complete copy holds."""

    name: str
    url: str
    folder: str
    required_files: tuple[str, ...]
    optional_files: tuple[str, ...] = ()
    expected_size: int | None = None  # bytes of the archive; None: trust Content-Length
    description: str = field(default="", compare=False)

    @property
    def archive_name(self) -> str:
        return PurePosixPath(self.folder).name + ".zip"


COCO = DatasetSource(
    name="coco",
    url="http://cs231n.stanford.edu/coco_captioning.zip",
    folder="coco_captioning",
    required_files=(
        "coco2014_captions.h5",
        "coco2014_vocab.json",
        "train2014_vgg16_fc7_pca.h5",
        "val2014_vgg16_fc7_pca.h5",
        "train2014_urls.txt",
        "val2014_urls.txt",
    ),
    optional_files=("train2014_vgg16_fc7.h5", "val2014_vgg16_fc7.h5"),
    expected_size=1_035_210_391,  # bytes, from the wget log of a complete download
    description="CS231n assignment-3 COCO captions with precomputed VGG16 fc7 features",
)

SOURCES: dict[str, DatasetSource] = {COCO.name: COCO}


# --------------------------------------------------------------------------- layout


def default_data_dir() -> Path:
    """The data folder: ``$CAPX_DATA_DIR`` if set, else ``data/`` under the current folder."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def missing_files(folder: Path, source: DatasetSource = COCO) -> list[str]:
    """The required files of ``source`` that ``folder`` lacks (all of them if it does not exist)."""
    folder = Path(folder)
    return [name for name in source.required_files if not (folder / name).is_file()]


# --------------------------------------------------------------------------- extraction


def extract(archive: Path, dest: Path, source: DatasetSource = COCO) -> Path:
    """Unpack ``archive`` into ``dest/<source.folder>``, all or nothing; return that folder.

    Members are unpacked into a temporary folder inside ``dest`` (so nothing half-written ever
    carries the final name), the layout is checked, and only then is the folder renamed into
    place, replacing an older copy. Names that would land outside the folder are refused.
    """
    dest = Path(dest)
    target = dest / source.folder
    staging = Path(tempfile.mkdtemp(prefix=f".{source.folder}-extract-", dir=dest))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                _safe_extract_all(zf, staging, archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise DownloadError(
                f"{archive} is not a valid zip archive ({exc}); it was deleted. Run the same "
                f"command again to download it afresh."
            ) from None
        root = staging / source.folder if (staging / source.folder).is_dir() else staging
        missing = missing_files(root, source)
        if missing:
            raise DownloadError(
                f"{archive} does not hold the expected {source.folder}/ layout: missing "
                f"{', '.join(missing)}. The URL may point at a different file; check --url."
            )
        _swap_into_place(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _safe_extract_all(zf: zipfile.ZipFile, staging: Path, archive: Path) -> None:
    base = staging.resolve()
    for member in zf.infolist():
        name = member.filename
        if name.startswith("__MACOSX/"):
            continue
        destination = (base / name).resolve()
        if name.startswith(("/", "\\")) or not destination.is_relative_to(base):
            raise DownloadError(
                f"{archive} contains the entry {name!r}, which would be written outside the data "
                f"folder; refusing to extract it. The archive is not the expected one; check --url."
            )
        zf.extract(member, staging)


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is removed only once ``new`` is in."""
    if not target.exists():
        new.rename(target)
        return
    backup = target.with_name(f".{target.name}-old-{os.getpid()}")
    target.rename(backup)
    try:
        new.rename(target)
    except OSError:
        backup.rename(target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


# --------------------------------------------------------------------------- the whole job


def download(
    source: DatasetSource | str = COCO,
    dest: Path | str | None = None,
    *,
    url: str | None = None,
    force: bool = False,
    quiet: bool = False,
    expected_size: int | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Fetch and unpack ``source`` into ``dest`` (default: :func:`default_data_dir`).

    Returns the dataset folder. A complete folder is left alone unless ``force``; with ``force``
    a partial download is discarded and the archive fetched from scratch. The old folder is only
    replaced once the new one is complete.
    """
    if isinstance(source, str):
        source = _source_named(source)
    dest = Path(dest) if dest is not None else default_data_dir()
    target = dest / source.folder
    say = (lambda message: None) if quiet else (lambda message: print(message, file=sys.stderr))

    missing = missing_files(target, source)
    if not missing and not force:
        say(f"{target} is already complete; pass --force to download it again.")
        return target
    if target.exists() and missing and not force:
        say(f"{target} is incomplete (missing {', '.join(missing)}); downloading it again.")

    url = url or source.url
    expected_size = expected_size if expected_size is not None else (
        source.expected_size if url == source.url else None
    )
    created_dest = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"could not create the data folder {dest}: {exc}") from None
    archive = dest / source.archive_name
    part = archive.with_name(archive.name + ".part")
    try:
        if force:
            for stale in (archive, part):
                stale.unlink(missing_ok=True)
        if not archive.exists():
            if part.exists():
                say(f"resuming {part} ({part.stat().st_size} bytes already there)")
            say(f"downloading {url} -> {archive}")
            fetch(url, part, expected_size=expected_size, quiet=quiet, timeout=timeout)
            part.replace(archive)
        say(f"extracting {archive}")
        try:
            folder = extract(archive, dest, source)
        except DownloadError:
            archive.unlink(missing_ok=True)  # a bad archive must not be reused next time
            raise
        archive.unlink(missing_ok=True)
    finally:
        if created_dest and dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()
    say(f"{source.name} data ready in {folder}")
    absent = [name for name in source.optional_files if not (folder / name).is_file()]
    if absent:
        say(f"(optional files not included: {', '.join(absent)})")
    return folder


def _source_named(name: str) -> DatasetSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise DownloadError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(SOURCES))}"
        ) from None


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``capx download`` (also used by ``python -m capx.datasets.download``)."""
    parser.add_argument(
        "dataset", choices=sorted(SOURCES), help="which dataset to fetch (coco: CS231n captions)"
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"data folder to put it in (default: ${DATA_DIR_ENV} or ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--url", default=None, help="download from this URL instead")
    parser.add_argument(
        "--force", action="store_true", help="download and extract again even if complete"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (no progress bar)"
    )


def build_parser(prog: str = "python -m capx.datasets.download") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the download; ``args`` is a parsed namespace (from ``capx``) or an argv list.

    Returns the process exit status: 0 on success, 1 on a download error, 130 if interrupted.
    """
    if not isinstance(args, argparse.Namespace):
        args = build_parser().parse_args(args)
    try:
        download(args.dataset, args.dest, url=args.url, force=args.force, quiet=args.quiet)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
