"""Run names: short, saying what differs (tokenizer, cell, seed, the overrides a sweep varies),
never a path."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from capx.run.run_name import run_name


def _plain(name=None, tokenizer="word", cell="lstm", seed=0):
    """The parts of a typed config a run name reads."""
    return SimpleNamespace(tracking=SimpleNamespace(run_name=name), tokenizer={"name": tokenizer},
                           cell={"name": cell}, seed=seed)


def _context(overrides, sweep_dir: Path | None = None, choices=None):
    return SimpleNamespace(overrides=overrides, multirun=sweep_dir is not None,
                           sweep_dir=sweep_dir, choices=choices or {})


def test_a_single_run_is_named_by_its_overrides_without_paths():
    overrides = ["dataset=coco_mini", "dataset.base_dir=/home/me/data/coco-mini",
                 "solver.num_epochs=2", "tokenizer=word", "progress=false",
                 "dataset.features_file=feats.h5", "+tracking.uri=sqlite:///x.db",
                 "dataset.image_dir=C:\\photos"]
    assert run_name(_plain(), _context(overrides)) == "word-lstm-s0-dataset=coco_mini-num_epochs=2"


def test_a_sweep_job_is_named_by_what_the_sweep_varies(tmp_path):
    sweep = ["tokenizer=char,word", "split.fold=0,1,2", "solver.learning_rate=range(1,3)",
             "solver.num_epochs=2", "dataset.base_dir=/data/coco-mini", "experiment=study"]
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "task": sweep}}}))
    job = ["tokenizer=char", "split.fold=1", "solver.learning_rate=2", "solver.num_epochs=2",
           "dataset.base_dir=/data/coco-mini", "experiment=study"]
    name = run_name(_plain(tokenizer="char", seed=3), _context(job, tmp_path))
    assert name == "char-lstm-s3-fold=1-learning_rate=2"


def test_the_tokenizer_is_named_by_its_group_option():
    """bpe250 and bpe1000 are both the bpe plugin: the option tells their runs apart."""
    name = run_name(_plain(tokenizer="bpe"), _context(["tokenizer=bpe1000"],
                                                      choices={"tokenizer": "bpe1000"}))
    assert name == "bpe1000-lstm-s0"


def test_a_configured_name_is_kept():
    assert run_name(_plain(name="mine"), _context(["solver.num_epochs=2"])) == "mine"
