"""Finished-job detection: fingerprints ignore bookkeeping and paths, exports are searched."""

from __future__ import annotations

import json

from capx.tracking.finished import finished_in_export, fingerprint

BASE = {"seed": 0, "model": {"hidden_dim": 128}, "tracking": {"experiment_name": "a"},
        "progress": "auto", "resume": None, "checkpoint": {"every_epochs": 1},
        "dataset": {"name": "coco_json", "base_dir": "/home/a/shared/data/coco-mini"}}


def test_fingerprint_ignores_tracking_progress_checkpoints_and_data_locations():
    other = json.loads(json.dumps(BASE))
    other["tracking"]["experiment_name"] = "b"
    other["progress"] = False
    other["checkpoint"]["every_epochs"] = 5
    other["dataset"]["base_dir"] = "/elsewhere/coco-mini"
    assert fingerprint(other) == fingerprint(BASE)


def test_fingerprint_changes_with_anything_that_changes_a_result():
    for path, value in ((("seed",), 1), (("model", "hidden_dim"), 64),
                        (("dataset", "name"), "coco")):
        other = json.loads(json.dumps(BASE))
        target = other
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert fingerprint(other) != fingerprint(BASE), path


def test_finished_in_export_finds_the_fingerprint(tmp_path):
    path = tmp_path / "runs.jsonl"
    key = fingerprint(BASE)
    path.write_text(json.dumps({"run_id": "r1", "fingerprint": "other"}) + "\n"
                    + json.dumps({"run_id": "r2", "fingerprint": key}) + "\n")
    assert finished_in_export(path, key) == "r2"
    assert finished_in_export(path, "missing") is None
    assert finished_in_export(tmp_path / "absent.jsonl", key) is None
