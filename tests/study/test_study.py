"""The study machinery end to end on tiny settings: a study preset sweeps k-fold jobs with early
stopping, a re-run skips what FINISHED, the export rebuilds the report without the store, and the
learning-rate preset never scores the test images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, run_py

# end-to-end sweeps in subprocesses, about a minute in all: outside the default suite's budget
pytestmark = pytest.mark.slow

TINY = ["dataset=shapes", "dataset.num_train=50", "dataset.num_val=10", "progress=false",
        "split.folds=3", "model.param_budget=12000", "model.wordvec_dim=8",
        "solver.num_epochs=3", "solver.patience=1", "solver.batch_size=25",
        "evaluation.compare_beam=2", "tokenizer.max_length=60",
        "evaluation.real_words_file=null"]  # the preset's word list sits beside the checkout


def runs(folder: Path, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([found.experiment_id])
            if "capx.sweep_id" not in r.data.tags]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    done = run_py(folder, None, '-m', 'experiment=study_coco_mini', *TINY, 'tokenizer=char,word', 'cell=rnn', 'split.fold=0,1', 'hydra.sweep.dir=sweep1', 'tracking.export=null', timeout=600, OPENBLAS_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-4000:]
    return folder


def test_study_jobs_finish_with_test_scores_per_image_and_selection(study):
    found = runs(study, "study_coco_mini")
    assert len(found) == 4 and {r.info.status for r in found} == {"FINISHED"}
    for run in found:
        m = run.data.metrics
        assert run.data.tags["capx.test_split"] == "test" and run.data.tags["split"] == "kfold3"
        assert m["test/bits_per_char"] >= m["test/bits_per_char_closed"] - 1e-9
        assert 1 <= m["test/selected_epoch"] <= m["test/epochs_trained"] <= 3
        assert "test/shuffled_bits_per_char" in m and "test/beam_cider" in m
        assert abs(m["test/total"] - 12000) < 0.1 * 12000
    tokens = {r.data.tags["tokenizer"] for r in found}
    assert tokens == {"char", "word"}


def test_each_job_records_its_wall_time_from_its_process_start(study):
    """time/job_wall_seconds covers the run's own duration and what came before it; in one
    sweep process, each job counts from the end of the one before, so the times do not overlap."""
    found = sorted(runs(study, "study_coco_mini"), key=lambda r: r.info.start_time)
    ends, starts = [], []
    for run in found:
        wall = run.data.metrics["time/job_wall_seconds"]
        duration = (run.info.end_time - run.info.start_time) / 1000
        assert wall >= duration - 0.5  # the metric is logged just before the run is closed
        ends.append(run.info.end_time / 1000)
        starts.append(ends[-1] - wall)
    for before, start in zip(ends, starts[1:]):
        assert start >= before - 0.5


def test_rerunning_the_sweep_skips_finished_jobs_and_runs_only_new_ones(study):
    done = run_py(study, None, '-m', 'experiment=study_coco_mini', *TINY, 'tokenizer=char,word', 'cell=rnn', 'split.fold=0,1,2', 'hydra.sweep.dir=sweep2', 'tracking.export=null', timeout=600, OPENBLAS_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-4000:]
    assert (done.stdout + done.stderr).count("already FINISHED with this configuration") == 4
    found = runs(study, "study_coco_mini")
    assert len(found) == 6  # only fold 2's two jobs were new


def test_export_rebuilds_the_report_without_the_store_and_feeds_skipping(study, tmp_path):
    from capx.cli import main as cli

    export = tmp_path / "runs.jsonl"
    uri = f"sqlite:///{study / 'mlflow.db'}"
    assert cli(["export", "--experiment", "study_coco_mini", "--out", str(export),
                "--tracking-uri", uri]) == 0
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(records) == 6 and all(r["per_image"]["nll_open"] for r in records)
    assert all(r["metrics"]["time/job_wall_seconds"] > 0 for r in records)
    from capx.tracking.locations import git_commit

    assert {r["commit"] for r in records} == {git_commit(REPO)}  # the code that ran them
    if git_commit(REPO):
        assert {r["clean"] for r in records} <= {True, False}
    # each run's caption of each test image; each image's references and url once in the file
    for r in records:
        assert r["captions"]["image_id"] == r["per_image"]["image_id"]
        assert all(isinstance(c, str) for c in r["captions"]["caption"])
    images = [i for r in records for i in r["images"]]
    tested = {str(i) for r in records for i in r["per_image"]["image_id"]}
    assert sorted(images) == sorted(tested)  # once each
    first = records[0]["images"][images[0]]
    assert first["references"] and "url" in first  # shapes has no pictures to point to
    assert cli(["export", "--experiment", "study_coco_mini", "--out", str(export),
                "--tracking-uri", uri]) == 0  # merging again adds nothing
    assert len(export.read_text().splitlines()) == 6
    out = tmp_path / "report"
    assert cli(["report", "--from", str(export), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "char rnn ~12k params − word" in text and "3 (3 folds x 1 seeds)" in text
    assert (out / "bits_per_char_vs_params.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert page.count('class="gallery-item"') == min(8, len(tested))
    # a fresh folder with only the export: the sweep skips every exported job
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = run_py(fresh, None, '-m', 'experiment=study_coco_mini', *TINY, 'tokenizer=char,word', 'cell=rnn', 'split.fold=0,1,2', f'tracking.export={export}', timeout=600, OPENBLAS_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-4000:]
    assert (done.stdout + done.stderr).count("already FINISHED with this configuration") == 6


def test_learning_rate_preset_scores_dev_only(tmp_path):
    done = run_py(tmp_path, None, '-m', 'experiment=study_coco_mini_lr', *TINY, 'tokenizer=word', 'cell=rnn', 'solver.learning_rate=1e-2,2e-2', 'tracking.export=null', timeout=600, OPENBLAS_NUM_THREADS="1")
    assert done.returncode == 0, done.stderr[-4000:]
    found = runs(tmp_path, "study_coco_mini_lr")
    assert len(found) == 2
    for run in found:
        assert "val/bits_per_char" in run.data.metrics
        assert not [k for k in run.data.metrics if k.startswith("test/")]
