"""``report.html``: one self-contained page with the tables, the figures and a gallery of each
setting's captions, checked as written and as a headless Chromium shows it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from capx.study.report import make_report
from tests.support import GALLERY_URL as URL, captioned_record

@pytest.fixture
def report(tmp_path) -> Path:
    import matplotlib.pyplot as plt

    pictures = tmp_path / "photos"
    pictures.mkdir()
    for i in (11, 33):
        plt.imsave(pictures / f"img{i}.png", np.random.default_rng(i).random((16, 16, 3)))
    export = tmp_path / "runs.jsonl"
    export.write_text("".join(json.dumps(captioned_record(t, f, pictures)) + "\n"
                              for t in ("char", "word") for f in range(2)))
    _, written = make_report(tmp_path / "out", source=export)
    assert tmp_path / "out" / "report.html" in written
    return tmp_path / "out" / "report.html"


def test_the_page_holds_tables_figures_and_the_gallery(report):
    page = report.read_text()
    figures = sorted(p.name for p in report.parent.glob("*.png"))
    assert figures and page.count('class="figure" src="data:image/png;base64,') == len(figures)
    assert "<table>" in page and "Headline (test)" in page
    assert page.count('class="gallery-item"') == 3
    assert page.count("data:image/png;base64,") == len(figures) + 2  # the two folder pictures
    assert f'src="{URL}"' in page  # a COCO picture by its URL
    assert "reference 2 of image 33" in page
    assert "char says &lt;b&gt;22&lt;/b&gt;" in page  # caption text is escaped
    assert "P(&lt;UNK&gt;)" in page  # and so is the Markdown's text
    assert re.search(r"src=\"(?!data:|http)", page) is None  # nothing else to fetch


def test_an_export_without_captions_says_how_to_get_the_gallery(tmp_path):
    export = tmp_path / "runs.jsonl"
    records = [captioned_record(t, 0) for t in ("char", "word")]
    for r in records:
        del r["captions"], r["images"]
    export.write_text("".join(json.dumps(r) + "\n" for r in records))
    make_report(tmp_path / "out", source=export)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "re-export the runs to see the gallery" in page and 'class="gallery-item"' not in page


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium on PATH (CI installs it: apt-get install chromium)")
    return found


def test_a_headless_browser_shows_the_tables_figures_and_gallery(report, tmp_path):
    browser = _chromium()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert dom.count("<table>") >= 2  # the headline table and a gallery table at least
    assert dom.count('class="gallery-item"') == 3 and "word says &lt;b&gt;11&lt;/b&gt;" in dom
    screenshot = tmp_path / "page.png"
    subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1200,1600",
                    report.as_uri()], capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    # not a blank page: text, table borders and the figures' colours are drawn
    assert (pixels.std(axis=(0, 1)) > 0.05).all() and (pixels < 0.5).mean() > 0.005
