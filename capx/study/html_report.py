"""``report.html``: the report as one self-contained page to open in a browser.

The page is the Markdown report rendered (its tables with intervals, its notes), the figures
embedded as base64 PNGs, and a gallery: for a sample of test images, the picture (a COCO URL is
linked as is; a file of an image folder is embedded), its reference captions, and each setting's
caption of it with that caption's open-vocabulary bits/char, side by side. Nothing is fetched
but the pictures given by URL, so the page works offline apart from those.
"""

from __future__ import annotations

import base64
import html
import math
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from markdown_it import MarkdownIt

GALLERY_IMAGES = 8   # test images shown
GALLERY_SETTINGS = 12  # settings (rows) shown per image, in the report's order
LN2 = math.log(2)

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1280px; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img.figure { max-width: 100%; display: block; margin: 1em 0; }
.gallery-item { display: grid; grid-template-columns: 300px 1fr; gap: 1em; margin: 1.5em 0;
                border-top: 1px solid #ddd; padding-top: 1em; }
.gallery-item img { max-width: 300px; max-height: 300px; }
.missing { color: #888; font-style: italic; }
.references { color: #555; margin: 0.3em 0 0.6em; padding-left: 1.2em; }
"""


@dataclass
class GalleryImage:
    """One test image: where its picture is, its references, and (setting, caption, bits/char)."""

    image_id: str
    picture: str  # a URL, a data: URI, or "" when the data does not give it
    references: list[str]
    captions: list[tuple[str, str, float]] = field(default_factory=list)


def report_html(markdown: str, figures: Sequence[Path], gallery: Sequence[GalleryImage],
                gallery_note: str = "") -> str:
    """The page: ``markdown`` rendered with ``figures`` embedded, then the gallery."""
    # html off: text such as P(<UNK>) in the Markdown is shown, not taken for a tag
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    for path in figures:
        body = body.replace(f'src="{html.escape(path.name)}"',
                            f'class="figure" src="{data_uri(path)}"')
    title = markdown.splitlines()[0].lstrip("# ") if markdown else "capx report"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        body, gallery_section(gallery, gallery_note), "</body></html>", ""])


def gallery_section(gallery: Sequence[GalleryImage], note: str = "") -> str:
    parts = ['<h2 id="gallery">Gallery: test images and each setting\'s caption</h2>']
    if note:
        parts.append(f'<p class="missing">{html.escape(note)}</p>')
    for item in gallery:
        picture = (f'<img src="{html.escape(item.picture)}" alt="test image {item.image_id}" '
                   'loading="lazy">' if item.picture
                   else '<p class="missing">no picture in the data</p>')
        references = "".join(f"<li>{html.escape(r)}</li>" for r in item.references)
        rows = "".join(f"<tr><td>{html.escape(setting)}</td><td>{html.escape(caption)}</td>"
                       f"<td>{'–' if bpc != bpc else f'{bpc:.3f}'}</td></tr>"
                       for setting, caption, bpc in item.captions)
        parts.append(
            f'<div class="gallery-item" data-image-id="{html.escape(item.image_id)}">'
            f"<div>{picture}<div>{_image_label(item)}</div></div><div>"
            f'<div>references</div><ul class="references">{references}</ul>'
            "<table><tr><th>setting</th><th>caption</th><th>bits/char</th></tr>"
            f"{rows}</table></div></div>")
    return "\n".join(parts)


def _image_label(item: GalleryImage) -> str:
    label = f"image {html.escape(item.image_id)}"
    if item.picture.startswith(("http://", "https://")):
        return f'<a href="{html.escape(item.picture)}">{label}</a>'
    return label


def data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def make_gallery(rows: Sequence[Any], images: dict[str, dict[str, Any]],
                 count: int = GALLERY_IMAGES) -> tuple[list[GalleryImage], str]:
    """A sample of test images that every shown setting captioned, and a note on what is
    missing (no captions in the export, settings left out)."""
    shown = [row for row in rows if any(r.get("captions") for r in row.records)]
    note = []
    if not shown:
        return [], ("The runs hold no per-image captions (an export made before capx kept "
                    "them): re-export the runs to see the gallery.")
    if len(shown) > GALLERY_SETTINGS:
        note.append(f"the first {GALLERY_SETTINGS} of {len(shown)} settings with captions")
        shown = shown[:GALLERY_SETTINGS]
    by_row = [_captions_by_image(row) for row in shown]
    common = sorted(set.intersection(*(set(found) for found in by_row)), key=_id_order)
    step = max(1, len(common) // count)
    sample = common[::step][:count]
    gallery = []
    for image_id in sample:
        image = images.get(image_id, {})
        item = GalleryImage(image_id, _picture(image.get("url", ""), shown),
                            list(image.get("references", [])))
        for row, found in zip(shown, by_row):
            item.captions.append((row.label, *found[image_id]))
        gallery.append(item)
    return gallery, "; ".join(note)


def _captions_by_image(row: Any) -> dict[str, tuple[str, float]]:
    """image id -> (caption, bits/char) from the first run of ``row`` that scored it."""
    found: dict[str, tuple[str, float]] = {}
    for record in row.records:
        captions = record.get("captions") or {}
        per_image = record.get("per_image") or {}
        bpc = {}
        for n, image_id in enumerate(per_image.get("image_id") or []):
            nll, chars = per_image["nll_open"][n], per_image["chars"][n]
            bpc[str(image_id)] = nll / chars / LN2 if nll is not None and chars else math.nan
        for image_id, caption in zip(captions.get("image_id", []), captions.get("caption", [])):
            found.setdefault(str(image_id), (caption, bpc.get(str(image_id), math.nan)))
    return found


def _id_order(image_id: str) -> tuple[int, str]:
    return (int(image_id), "") if image_id.isdigit() else (0, image_id)


def _picture(url: str, rows: Sequence[Any]) -> str:
    """A URL as is; a file name of an image folder (``dataset.image_dir``) as a data: URI."""
    if not url or url.startswith(("http://", "https://", "data:")):
        return url
    for row in rows:
        folder = row.records[0].get("params", {}).get("dataset.image_dir")
        path = Path(folder) / url if folder and folder != "null" else Path(url)
        if path.is_file():
            return data_uri(path)
    return ""
