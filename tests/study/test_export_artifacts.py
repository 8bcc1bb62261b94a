"""The export reads a run's JSON artifacts: absent means none, a failing store is an error."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from capx.study.export import read_artifact_json


class FakeClient:
    """Lists ``files``; downloading fails with ``error`` when one is given."""

    def __init__(self, files: dict[str, object], error: Exception | None = None):
        self.files, self.error = files, error

    def list_artifacts(self, run_id, path=None):
        return [SimpleNamespace(path=name) for name in self.files
                if name.rpartition("/")[0] == (path or "")]

    def download_artifacts(self, run_id, artifact, folder):
        if self.error is not None:
            raise self.error
        target = f"{folder}/{artifact.rpartition('/')[2]}"
        with open(target, "w") as f:
            json.dump(self.files[artifact], f)
        return target


def test_a_run_without_the_artifact_has_none():
    assert read_artifact_json(FakeClient({}), "r1", "evaluation/captions.json") is None


def test_the_artifact_is_read():
    client = FakeClient({"evaluation/captions.json": {"columns": ["caption"], "data": [["a"]]}})
    assert read_artifact_json(client, "r1", "evaluation/captions.json")["data"] == [["a"]]
    assert read_artifact_json(FakeClient({"per_image.json": [1]}), "r1", "per_image.json") == [1]


def test_a_store_that_fails_is_an_error_not_a_run_without_captions():
    client = FakeClient({"evaluation/captions.json": {}}, error=PermissionError("read-only"))
    with pytest.raises(PermissionError):
        read_artifact_json(client, "r1", "evaluation/captions.json")


def test_per_image_scores_are_read_through_the_same_path():
    from capx.study import export
    from capx.tracking import names

    scores = {"bits_per_char": [1.5, 2.0]}
    assert export._per_image(FakeClient({names.PER_IMAGE: scores}), "r1") == scores
    assert export._per_image(FakeClient({}), "r1") is None
