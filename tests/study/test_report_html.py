"""``report.html``: one self-contained page with the tables, the figures and a gallery of each
setting's captions, checked as written and as a headless Chromium shows it."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from capx.study.report import make_report

IMAGE_IDS = [11, 22, 33]
URL = "http://images.cocodataset.org/val2017/000000000022.jpg"


def captioned_record(tokenizer: str, fold: int, picture_dir: Path | None = None) -> dict:
    """An export record of 3 test images with their captions (images 11 and 33 are files of an
    image folder, 22 a COCO URL), as ``capx export`` writes them."""
    rng = np.random.default_rng([fold, len(tokenizer)])
    chars = np.full(3, 20.0)
    nll = 20 * (1.5 + rng.random(3))
    images = {str(i): {"references": [f"reference {k} of image {i}" for k in (1, 2)],
                       "url": URL if i == 22 else f"img{i}.png"} for i in IMAGE_IDS}
    return {"run_id": f"{tokenizer}-{fold}", "name": "r",
            "labels": {"tokenizer": tokenizer, "cell": "lstm", "fold": str(fold), "seed": "0"},
            "params": {"model.param_budget": "250000", "split.fold": str(fold), "seed": "0",
                       "dataset.image_dir": str(picture_dir) if picture_dir else "null"},
            "metrics": {"test/bits_per_char": float(nll.sum() / chars.sum() / math.log(2)),
                        "test/total": 250000.0},
            "curves": {"val/bits_per_char": [[1, 3.0], [2, 2.5]]},
            "per_image": {"image_id": IMAGE_IDS, "nll_open": nll.tolist(),
                          "nll_closed": nll.tolist(), "chars": chars.tolist(),
                          "cider": rng.random(3).tolist()},
            "captions": {"image_id": IMAGE_IDS,
                         "caption": [f"{tokenizer} says <b>{i}</b>" for i in IMAGE_IDS]},
            "images": images if tokenizer == "char" and fold == 0 else {}}


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
