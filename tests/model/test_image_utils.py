"""``capx.image_utils.image_from_url`` against a local HTTP server: an image comes back as its
pixels; a missing, unreachable or undecodable one prints why and gives None."""

from __future__ import annotations

import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from capx.image_utils import image_from_url


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 17, 3), dtype=np.uint8)


@pytest.fixture
def server(pixels):
    files = {"/a.png": _png(pixels), "/gray.png": _png(pixels[..., 0]),
             "/junk.jpg": b"not an image at all"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_image_comes_back_as_its_pixels(server, pixels):
    image = image_from_url(f"{server}/a.png")
    assert image.dtype == np.uint8 and image.shape == (12, 17, 3)
    np.testing.assert_array_equal(image, pixels)


def test_a_grayscale_image_comes_back_as_rgb(server, pixels):
    image = image_from_url(f"{server}/gray.png")
    assert image.shape == (12, 17, 3)
    np.testing.assert_array_equal(image[..., 1], pixels[..., 0])


@pytest.mark.parametrize("path,message", [("/missing.png", "HTTP Error:  404"),
                                          ("/junk.jpg", "Image Error:")])
def test_a_bad_url_prints_why_and_gives_none(server, capsys, path, message):
    assert image_from_url(f"{server}{path}") is None
    assert message in capsys.readouterr().out


def test_an_unreachable_server_prints_why_and_gives_none(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert image_from_url(f"http://127.0.0.1:{port}/a.png", timeout=5) is None
    assert "URL Error:" in capsys.readouterr().out
