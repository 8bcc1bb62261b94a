"""Bad input is a clear error (or a warning where the run can go on) with the real cause and a
hint that fits the case: none of these is silent, a traceback or someone else's advice."""

from __future__ import annotations

import argparse
from dataclasses import asdict

import numpy as np
import pytest

from capx.checkpoint import CheckpointError
from capx.data import DataError
from capx.run.config import ConfigError
from tests.support import SMOKE, run_in_process, smoke_config


def test_an_empty_resume_is_an_error_not_a_new_run():
    with pytest.raises(ConfigError, match="resume: is empty: give a checkpoint file or an MLflow "
                                          "run id"):
        smoke_config("resume=")


def test_a_random_file_given_to_resume_is_named_without_numpys_pickle_advice(workdir):
    junk = workdir / "random.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(CheckpointError) as caught:
        run_in_process(workdir, f"resume={junk}", "tracking.enabled=false")
    message = str(caught.value)
    assert str(junk) in message and "not a capx checkpoint" in message
    assert "allow_pickle" not in message


def test_a_run_id_of_another_store_says_so(workdir):
    run_in_process(workdir, "tracking.enabled=true", "evaluation.final=false", name="any")
    with pytest.raises(CheckpointError, match=r"MLflow run f{32} is not in sqlite:///.*: give "
                                              r"the store that holds it \(tracking.uri="):
        run_in_process(workdir, "resume=" + "f" * 32, name="resumed")


def _caption_args(*argv: str) -> argparse.Namespace:
    from capx.images.caption_command import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_caption_beam_width_zero_is_an_error_before_any_work(tmp_path, capsys):
    from capx.images.caption_command import main

    assert main(_caption_args("--run", "x" * 32, "--beam-width", "0", str(tmp_path))) == 2
    assert "--beam-width must be at least 1" in capsys.readouterr().err


def test_caption_of_a_run_in_another_store_names_the_store(workdir, capsys):
    from capx.images.caption_command import main
    from capx.images.features_file import IMAGE_SUFFIXES

    run_in_process(workdir, "evaluation.final=false", name="any")  # a store, without that run
    picture = workdir / f"a{sorted(IMAGE_SUFFIXES)[0]}"
    picture.write_bytes(b"")
    assert main(_caption_args("--run", "e" * 32, str(picture))) == 2
    err = capsys.readouterr().err
    assert f"MLflow run {'e' * 32} is not in" in err and "--tracking-uri" in err
    assert "no usable checkpoint" not in err


def test_a_directory_named_mlflow_db_is_refused_at_once(tmp_path):
    from capx.tracking.preflight import TrackingError, open_store

    (tmp_path / "mlflow.db").mkdir()
    settings = asdict(smoke_config().tracking)  # what open_store takes
    with pytest.raises(TrackingError, match="mlflow.db is a directory, not a database file"):
        open_store({**settings, "enabled": True, "uri": None}, tmp_path)


def test_an_import_error_opening_the_store_is_not_blamed_on_the_uri(tmp_path, monkeypatch):
    import capx.tracking.preflight as preflight

    def out_of_memory(uri):
        raise ImportError("cannot load libsqlite3: cannot allocate memory")

    monkeypatch.setattr(preflight, "make_client", out_of_memory)
    settings = asdict(smoke_config().tracking)  # what open_store takes
    with pytest.raises(preflight.TrackingError) as caught:
        preflight.open_store({**settings, "enabled": True, "uri": None}, tmp_path)
    assert "ulimit" in str(caught.value) and "check the URI" not in str(caught.value)


def test_a_users_malformed_captions_json_is_to_be_fixed_not_downloaded(tmp_path):
    from capx.images.image_folder import FIX_YOUR_JSON
    from capx.datasets.coco import read_annotations

    broken = tmp_path / "captions.json"
    broken.write_text('{"images": [], "annotations": [')
    with pytest.raises(DataError) as caught:
        read_annotations(broken, FIX_YOUR_JSON)
    assert "fix the JSON there" in str(caught.value)
    assert "download it again" not in str(caught.value)


def test_an_image_pillow_would_only_warn_about_is_refused_by_open_image(tmp_path, monkeypatch):
    pytest.importorskip("PIL", reason="decoding images needs Pillow (the images extra)")
    from PIL import Image

    from capx.encoders.preprocess import ImageReadError, open_image

    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 60_000)  # 90,000: Pillow's warning zone
    with pytest.raises(ImageReadError, match="big.png is too large to decode safely"):
        open_image(tmp_path / "big.png")


def test_a_vocabulary_too_small_for_the_captions_is_said(caplog):
    from capx.run.build import encoding_problems
    from capx.tokenizers import make_tokenizer

    captions = ["the quick brown fox jumps over the lazy dog"] * 5
    tokenizer = make_tokenizer("bpe", vocab_size=5, max_length=10).fit(captions)
    solver_data = {"train_captions": tokenizer.encode(captions),
                   "train_truncated_fraction": tokenizer.last_truncated_fraction}
    section = {"name": "bpe", "vocab_size": 5, "max_length": 10}  # the config's tokenizer
    problems = " ".join(encoding_problems(section, tokenizer, solver_data))
    assert "of the training symbols are <UNK>" in problems and "tokenizer.vocab_size=5" in problems
    assert "of the training captions are cut at tokenizer.max_length=10" in problems
    wide = make_tokenizer("bpe", vocab_size=200, max_length=80).fit(captions)
    fine = {"train_captions": wide.encode(captions), "train_truncated_fraction": 0.0}
    assert encoding_problems(section, wide, fine) == []



@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_a_sweep_hydra_refuses_leaves_no_parent_run_running(tmp_path):
    """A bad option in a sweep (`tokenizer=char,wrd`) is Hydra's error after the sweep's parent
    run was opened: that parent is closed FAILED and, with no job run, deleted, so no RUNNING
    run is left for the next command to reap."""
    from mlflow.entities import ViewType

    from tests.support import mlflow_client, run_py

    done = run_py(tmp_path, None, "-m", "tokenizer=char,wrd", *SMOKE)
    assert "wrd" in done.stderr + done.stdout
    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("capx")
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    assert runs and all(r.info.status == "FAILED" and r.info.lifecycle_stage == "deleted"
                        for r in runs)
