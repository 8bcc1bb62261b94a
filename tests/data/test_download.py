"""`capx download coco`: fetch, resume, size checks, safe extraction and the command line.

Every test talks to a small HTTP server on 127.0.0.1 that serves a tiny zip in the CS231n
``coco_captioning/`` layout built in ``tmp_path``; nothing reaches the internet.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest

from capx import cli
from capx.datasets.download import COCO, DownloadError, download, missing_files

REPO_ROOT = Path(__file__).resolve().parents[2]
ZIP_PATH = "/coco_captioning.zip"

# --------------------------------------------------------------------------- fixtures


def make_coco_zip(
    workdir: Path,
    *,
    marker: str = "v1",
    omit: tuple[str, ...] = (),
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """A zip holding a tiny ``coco_captioning/`` folder; ``marker`` tags the vocab file."""
    folder = workdir / f"src-{marker}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with h5py.File(folder / "coco2014_captions.h5", "w") as f:
        f["train_captions"] = np.array([[1, 4, 2, 0], [1, 5, 4, 2]], dtype=np.int32)
        f["train_image_idxes"] = np.array([0, 1], dtype=np.int32)
        f["val_captions"] = np.array([[1, 5, 2, 0]], dtype=np.int32)
        f["val_image_idxes"] = np.array([0], dtype=np.int32)
    for split, rows in (("train", 2), ("val", 1)):
        with h5py.File(folder / f"{split}2014_vgg16_fc7_pca.h5", "w") as f:
            f["features"] = rng.standard_normal((rows, 8)).astype(np.float32)
        urls = "".join(f"http://example.org/{split}/{i}.jpg\n" for i in range(rows))
        (folder / f"{split}2014_urls.txt").write_text(urls)
    words = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "dog"]
    vocab = {"idx_to_word": words, "word_to_idx": {w: i for i, w in enumerate(words)}}
    (folder / "coco2014_vocab.json").write_text(json.dumps({**vocab, "marker": marker}))

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("coco_captioning/", b"")
        for path in sorted(folder.iterdir()):
            if path.name not in omit:
                zf.write(path, f"coco_captioning/{path.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


@dataclass
class FileServer:
    """What the test server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    send_at_most: int | None = None  # announce the full length but send only this many bytes
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    bytes_sent: list[int] = field(default_factory=list)
    base_url: str = ""

    def url(self, path: str = ZIP_PATH) -> str:
        return self.base_url + path


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state: FileServer = self.server.state  # type: ignore[attr-defined]
        range_header = self.headers.get("Range")
        state.requests.append((self.path, range_header))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if range_header and state.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.send_at_most is not None:
            payload = payload[: state.send_at_most]
        self.wfile.write(payload)
        state.bytes_sent.append(len(payload))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure requests to 127.0.0.1 never go through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.delenv("CAPX_DATA_DIR", raising=False)


@pytest.fixture
def server():
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state  # type: ignore[attr-defined]
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def payload(tmp_path: Path) -> bytes:
    return make_coco_zip(tmp_path / "build")


def leftovers(dest: Path) -> list[str]:
    """Everything in ``dest`` other than the finished dataset folder."""
    return sorted(p.name for p in dest.iterdir() if p.name != COCO.folder) if dest.exists() else []


def vocab_marker(folder: Path) -> str:
    return json.loads((folder / "coco2014_vocab.json").read_text())["marker"]


# --------------------------------------------------------------------------- download + extraction


def test_full_download_extracts_the_layout(tmp_path: Path, server: FileServer, payload: bytes):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"

    folder = download("coco", dest, url=server.url(), quiet=True)

    assert folder == dest / "coco_captioning"
    assert missing_files(folder) == []
    with h5py.File(folder / "coco2014_captions.h5") as f:
        assert f["train_captions"].shape == (2, 4)
    with h5py.File(folder / "val2014_vgg16_fc7_pca.h5") as f:
        assert f["features"].shape == (1, 8)
    assert (folder / "train2014_urls.txt").read_text().splitlines()[1].endswith("/1.jpg")
    assert vocab_marker(folder) == "v1"
    assert leftovers(dest) == []  # archive, .part and staging folder are gone
    assert server.requests == [(ZIP_PATH, None)]


def test_resume_asks_only_for_the_remaining_bytes(
    tmp_path: Path, server: FileServer, payload: bytes
):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"
    dest.mkdir()
    have = len(payload) // 3
    (dest / "coco_captioning.zip.part").write_bytes(payload[:have])

    folder = download("coco", dest, url=server.url(), quiet=True)

    assert server.requests == [(ZIP_PATH, f"bytes={have}-")]
    assert server.bytes_sent == [len(payload) - have]
    assert missing_files(folder) == []
    assert leftovers(dest) == []


def test_part_holding_the_whole_file_is_not_fetched_again(
    tmp_path: Path, server: FileServer, payload: bytes
):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "coco_captioning.zip.part").write_bytes(payload)

    folder = download("coco", dest, url=server.url(), quiet=True)

    assert server.requests == [(ZIP_PATH, f"bytes={len(payload)}-")]  # answered 416
    assert server.bytes_sent == []
    assert missing_files(folder) == []


def test_server_ignoring_range_restarts_cleanly(
    tmp_path: Path, server: FileServer, payload: bytes
):
    server.files[ZIP_PATH] = payload
    server.honour_range = False
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "coco_captioning.zip.part").write_bytes(b"garbage that is not the start" * 10)

    folder = download("coco", dest, url=server.url(), quiet=True)

    assert server.requests[0][1] is not None  # it did ask for a range...
    assert server.bytes_sent == [len(payload)]  # ...got the whole file, and used only that
    assert missing_files(folder) == []
    assert leftovers(dest) == []


def test_http_404_is_a_clear_error_and_leaves_nothing(tmp_path: Path, server: FileServer):
    dest = tmp_path / "data"

    with pytest.raises(DownloadError, match=r"HTTP 404.*--url"):
        download("coco", dest, url=server.url("/missing.zip"), quiet=True)

    assert not dest.exists()  # the folder it created is removed again


def test_unreachable_server_is_a_clear_error(tmp_path: Path):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(DownloadError, match=r"could not reach .*network"):
        download("coco", tmp_path / "data", url=f"http://127.0.0.1:{port}/x.zip", quiet=True)


def test_truncated_transfer_keeps_the_part_and_the_next_run_resumes(
    tmp_path: Path, server: FileServer, payload: bytes
):
    server.files[ZIP_PATH] = payload
    server.send_at_most = len(payload) // 2
    dest = tmp_path / "data"

    with pytest.raises(DownloadError, match=r"stopped early.*resume"):
        download("coco", dest, url=server.url(), quiet=True)
    part = dest / "coco_captioning.zip.part"
    assert part.stat().st_size == len(payload) // 2
    assert not (dest / "coco_captioning").exists()

    server.send_at_most = None
    folder = download("coco", dest, url=server.url(), quiet=True)
    assert server.requests[-1] == (ZIP_PATH, f"bytes={len(payload) // 2}-")
    assert missing_files(folder) == []
    assert leftovers(dest) == []


def test_size_other_than_expected_is_refused(tmp_path: Path, server: FileServer, payload: bytes):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"

    with pytest.raises(DownloadError, match=rf"offers {len(payload)} bytes but 123 were expected"):
        download("coco", dest, url=server.url(), quiet=True, expected_size=123)

    assert not dest.exists()  # refused on the headers: no .part written, folder removed again


def test_the_coco_archive_is_pinned_to_its_real_size(tmp_path: Path, server: FileServer,
                                                      payload: bytes, monkeypatch):
    """From its own URL (here served locally), the CS231n archive must be 1,035,210,391 bytes:
    a short or different file is refused on the headers, whatever Content-Length says."""
    import dataclasses

    import capx.datasets.download

    assert COCO.expected_size == 1_035_210_391
    local = dataclasses.replace(COCO, url=server.url())
    monkeypatch.setitem(capx.datasets.download.SOURCES, "coco", local)
    server.files[ZIP_PATH] = payload
    with pytest.raises(DownloadError, match=rf"offers {len(payload)} bytes but 1035210391 were"):
        download("coco", tmp_path / "data", quiet=True)
    assert not (tmp_path / "data").exists()


def _existing_folder(dest: Path) -> Path:
    folder = dest / "coco_captioning"
    folder.mkdir(parents=True)
    for name in COCO.required_files:
        (folder / name).write_text(f"old {name}")
    return folder


def test_corrupt_zip_leaves_existing_data_untouched(tmp_path: Path, server: FileServer):
    dest = tmp_path / "data"
    folder = _existing_folder(dest)
    before = {p.name: p.read_text() for p in folder.iterdir()}
    server.files[ZIP_PATH] = b"PK\x03\x04 this is not really a zip archive" * 50

    with pytest.raises(DownloadError, match=r"not a valid zip.*again"):
        download("coco", dest, url=server.url(), force=True, quiet=True)

    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert leftovers(dest) == []  # the bad archive is not kept for reuse


def test_archive_missing_files_lists_them_and_keeps_old_data(tmp_path: Path, server: FileServer):
    dest = tmp_path / "data"
    folder = _existing_folder(dest)
    server.files[ZIP_PATH] = make_coco_zip(
        tmp_path / "build", omit=("coco2014_vocab.json", "val2014_urls.txt")
    )

    with pytest.raises(DownloadError, match=r"missing coco2014_vocab.json, val2014_urls.txt"):
        download("coco", dest, url=server.url(), force=True, quiet=True)

    assert (folder / "coco2014_vocab.json").read_text() == "old coco2014_vocab.json"
    assert leftovers(dest) == []


def test_path_traversal_in_the_archive_is_refused(tmp_path: Path, server: FileServer):
    dest = tmp_path / "data"
    server.files[ZIP_PATH] = make_coco_zip(
        tmp_path / "build", extra={"coco_captioning/../../evil.txt": b"owned"}
    )

    with pytest.raises(DownloadError, match=r"evil\.txt.*outside"):
        download("coco", dest, url=server.url(), quiet=True)

    assert not (tmp_path / "evil.txt").exists()
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (dest / "coco_captioning").exists()
    assert leftovers(dest) == []


def test_complete_folder_is_not_downloaded_again(
    tmp_path: Path, server: FileServer, payload: bytes, capsys: pytest.CaptureFixture[str]
):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"
    download("coco", dest, url=server.url(), quiet=True)

    download("coco", dest, url=server.url())

    assert len(server.requests) == 1
    assert "already complete" in capsys.readouterr().err


def test_force_downloads_again_and_replaces(tmp_path: Path, server: FileServer):
    dest = tmp_path / "data"
    server.files[ZIP_PATH] = make_coco_zip(tmp_path / "build", marker="v1")
    download("coco", dest, url=server.url(), quiet=True)
    server.files[ZIP_PATH] = make_coco_zip(tmp_path / "build", marker="v2")

    folder = download("coco", dest, url=server.url(), force=True, quiet=True)

    assert len(server.requests) == 2
    assert vocab_marker(folder) == "v2"
    assert leftovers(dest) == []  # the old copy was removed after the swap


def test_incomplete_folder_is_fetched_again(tmp_path: Path, server: FileServer, payload: bytes):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"
    partial = dest / "coco_captioning"
    partial.mkdir(parents=True)
    (partial / "coco2014_vocab.json").write_text("{}")

    folder = download("coco", dest, url=server.url(), quiet=True)

    assert len(server.requests) == 1
    assert missing_files(folder) == []
    assert vocab_marker(folder) == "v1"


# --------------------------------------------------------------------------- command line


def test_cli_download(tmp_path: Path, server: FileServer, payload: bytes, capsys):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"

    status = cli.main(["download", "coco", "--dest", str(dest), "--url", server.url(), "--quiet"])

    assert status == 0
    assert missing_files(dest / "coco_captioning") == []
    assert capsys.readouterr().err == ""  # --quiet prints nothing on success


def test_cli_reports_errors_with_exit_status(tmp_path: Path, server: FileServer, capsys):
    status = cli.main(
        ["download", "coco", "--dest", str(tmp_path / "d"), "--url", server.url("/nope.zip")]
    )

    assert status == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_cli_uses_the_data_dir_from_the_environment(
    tmp_path: Path, server: FileServer, payload: bytes, monkeypatch: pytest.MonkeyPatch
):
    server.files[ZIP_PATH] = payload
    monkeypatch.setenv("CAPX_DATA_DIR", str(tmp_path / "envdata"))

    assert cli.main(["download", "coco", "--url", server.url(), "--quiet"]) == 0
    assert missing_files(tmp_path / "envdata" / "coco_captioning") == []


def test_cli_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "download" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_python_m_capx_download(tmp_path: Path, server: FileServer, payload: bytes):
    server.files[ZIP_PATH] = payload
    dest = tmp_path / "data"
    env = {**os.environ, "no_proxy": "*", "NO_PROXY": "*"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))

    result = subprocess.run(
        [sys.executable, "-m", "capx.datasets.download", "coco", "--dest", str(dest), "--url", server.url()],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "data ready" in result.stderr
    assert "optional files not included: train2014_vgg16_fc7.h5" in result.stderr
    assert missing_files(dest / "coco_captioning") == []
