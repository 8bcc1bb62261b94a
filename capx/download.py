"""Fetch the CS231n COCO captioning data (``coco_captioning.zip``) into the data folder.

``capx download coco`` (or ``python -m capx.download coco``) does what the assignment's
``get_datasets.sh`` does, more carefully: it resumes a partial download (HTTP Range on a ``.part``
file), checks the size, extracts into a temporary folder that is renamed into place only once the
layout ``load_coco_data`` reads is complete, and says what to do when something goes wrong.
Only the standard library (urllib, zipfile) and tqdm are used.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Sequence

from tqdm import tqdm

DATA_DIR_ENV = "CAPX_DATA_DIR"
DEFAULT_DATA_DIR = "data"
CHUNK_SIZE = 1 << 20
TIMEOUT_S = 60.0


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
    description="CS231n assignment-3 COCO captions with precomputed VGG16 fc7 features",
)

SOURCES: dict[str, DatasetSource] = {COCO.name: COCO}


class DownloadError(RuntimeError):
    """A download or extraction failed; the message says what happened and what to do."""


# --------------------------------------------------------------------------- layout


def default_data_dir() -> Path:
    """The data folder: ``$CAPX_DATA_DIR`` if set, else ``data/`` under the current folder."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def missing_files(folder: Path, source: DatasetSource = COCO) -> list[str]:
    """The required files of ``source`` that ``folder`` lacks (all of them if it does not exist)."""
    folder = Path(folder)
    return [name for name in source.required_files if not (folder / name).is_file()]


# --------------------------------------------------------------------------- fetching


def fetch(
    url: str,
    part_path: Path,
    *,
    expected_size: int | None = None,
    quiet: bool = False,
    timeout: float = TIMEOUT_S,
) -> int:
    """Download ``url`` into ``part_path``, resuming from its current size; return the final size.

    A partial ``part_path`` is continued with a Range request; a server that ignores Range (200
    instead of 206) makes the download restart from zero. The final size is checked against the
    size the server announced and ``expected_size``.
    """
    part_path = Path(part_path)
    have = part_path.stat().st_size if part_path.exists() else 0
    if expected_size is not None and have > expected_size:
        part_path.unlink()  # longer than the file we want: cannot be a prefix of it
        have = 0
    if expected_size is not None and have == expected_size:
        return have

    response, have = _open(url, have, part_path, timeout)
    if response is None:  # 416: the server says the partial file already holds everything
        return _check_size(part_path, have, expected_size, url)
    with response:
        start, total = _range_of(response, have, url)
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"the server at {url} offers {total} bytes but {expected_size} were expected; "
                f"the URL may point at a different file. Check --url."
            )
        mode = "ab" if start > 0 else "wb"
        with open(part_path, mode) as out, tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part_path.name.removesuffix(".part"),
            disable=quiet or not sys.stderr.isatty(),
            file=sys.stderr,
        ) as bar:
            _copy(response, out, bar, url, part_path)
    return _check_size(part_path, total, expected_size, url)


def _open(url: str, have: int, part_path: Path, timeout: float):
    """Open ``url`` asking for the bytes after ``have``: (response, bytes kept).

    The response is None when the server says (416) that the part already holds the whole file.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "capx-download"})
    if have > 0:
        request.add_header("Range", f"bytes={have}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout), have
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have > 0:
            total = _total_from_content_range(exc.headers.get("Content-Range", ""))
            exc.close()
            if total == have:
                return None, have
            part_path.unlink()  # the part does not match the file on the server: start over
            return _open(url, 0, part_path, timeout)
        raise DownloadError(
            f"the server answered HTTP {exc.code} ({exc.reason}) for {url}. "
            f"{_http_advice(exc.code)}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"could not reach {url}: {reason}. Check your network connection (and proxy "
            f"settings, http_proxy/https_proxy), then run the same command again"
            + (f"; the partial download in {part_path} will be resumed." if have else ".")
        ) from None


def _http_advice(code: int) -> str:
    if code == 404:
        return "The file is not at that address; check the URL or pass another one with --url."
    if code in (401, 403):
        return "Access was refused; the file may have moved. Pass another URL with --url."
    if code >= 500:
        return "The server had a problem; try again later."
    return "Check the URL (--url) and try again."


def _range_of(response, have: int, url: str) -> tuple[int, int | None]:
    """(first byte the response carries, total file size or None) for a 200 or 206 response."""
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != have:
            raise DownloadError(
                f"the server at {url} answered a resume request with an unexpected range "
                f"({response.headers.get('Content-Range')!r}); delete the .part file and run again."
            )
        total = match.group(3)
        return have, int(total) if total.isdigit() else (have + length if length else None)
    return 0, length  # 200: the whole file, whatever was asked


def _total_from_content_range(header: str) -> int | None:
    match = re.match(r"bytes \*/(\d+)", header or "")
    return int(match.group(1)) if match else None


def _copy(response, out, bar: tqdm, url: str, part_path: Path) -> None:
    while True:
        try:
            chunk = response.read(CHUNK_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"the connection to {url} broke during the download ({exc!r}). Run the same "
                f"command again: the {part_path.stat().st_size} bytes already in {part_path} "
                f"will be kept and the rest resumed."
            ) from None
        if not chunk:
            return
        try:
            out.write(chunk)
        except OSError as exc:
            raise DownloadError(
                f"could not write {part_path}: {exc}. Free some disk space (or pick another "
                f"folder with --dest) and run again to resume."
            ) from None
        bar.update(len(chunk))


def _check_size(part_path: Path, total: int | None, expected_size: int | None, url: str) -> int:
    size = part_path.stat().st_size
    want = expected_size if expected_size is not None else total
    if want is None or size == want:
        return size
    if size < want:
        raise DownloadError(
            f"the download from {url} stopped early: {size} of {want} bytes in {part_path}. "
            f"Run the same command again to resume it."
        )
    part_path.unlink()
    raise DownloadError(
        f"the download from {url} is {size} bytes, more than the {want} expected; the partial "
        f"file was deleted. Run again to download from scratch (or check --url)."
    )


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
    """Arguments of ``capx download`` (also used by ``python -m capx.download``)."""
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


def build_parser(prog: str = "python -m capx.download") -> argparse.ArgumentParser:
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
