"""HTTP download with resume and size checks, for ``capx download``.

:func:`fetch` writes a URL into a ``.part`` file, continuing a partial one with an HTTP Range
request, and checks the final size against what the server announced and what was expected.
Every failure is a :class:`DownloadError` whose message says what to do next.
"""

from __future__ import annotations

import http.client
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK_SIZE = 1 << 20
TIMEOUT_S = 60.0


class DownloadError(RuntimeError):
    """A download or extraction failed; the message says what happened and what to do."""



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
