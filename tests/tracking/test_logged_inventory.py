"""What a run records does not shrink: its metric keys, tables and artifact paths.

``logged_inventory.txt`` beside this file lists what a tiny tracked run (the smoke preset, two
epochs, the beam comparison on) recorded with the code before jobs were made faster (commit
d3e9ffa). It is derived, not typed: ``python -m tests.tracking.test_logged_inventory --write``
runs the same job and writes the list (run it on that commit to check it). Epoch numbers in paths
are written ``NNN``; the system metrics are left out (how many are sampled depends on time).
The run's model is listed by its files (``model:``), wherever MLflow keeps them. A run now must
record all of it, or more, but for the planned changes in :data:`REPLACED`: the per-epoch
samples tables (``samples/epoch_NNN.json``) became one table of every epoch's samples written at
the end (the test checks that it holds each epoch's rows), and the model is saved from code.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import artifact_paths, read_runs, run_in_process

INVENTORY = Path(__file__).with_name("logged_inventory.txt")
EPOCHS, SAMPLES = 2, 2
OVERRIDES = [f"solver.num_epochs={EPOCHS}", f"evaluation.num_samples={SAMPLES}",
             "evaluation.compare_beam=2", "tracking.system_metrics=false",
             "tracking.experiment_name=inventory"]
#: what the code before recorded, and what holds it now: the per-epoch samples tables became
#: one table; the model is saved from its code instead of pickled (since 7da4894)
REPLACED = {"artifact:samples/epoch_NNN.json": "artifact:samples/epochs_NNN-NNN.json",
            "table:samples/epoch_NNN.json": "table:samples/epochs_NNN-NNN.json",
            "model:python_model.pkl": "model:caption_model_code.py"}


def normalised(path: str) -> str:
    return re.sub(r"\d{3}", "NNN", path) if path.startswith("samples/") else path


def inventory(folder: Path) -> tuple[set[str], object, object]:
    """(the run's metric keys, tables and artifact paths as ``kind:name`` lines; client; run)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    assert run_in_process(folder, f"tracking.uri={uri}", *OVERRIDES) == "FINISHED"
    client, runs = read_runs(folder, "inventory")
    (run,) = runs
    tables = json.loads(run.data.tags.get("mlflow.loggedArtifacts", "[]"))
    lines = {f"metric:{k}" for k in run.data.metrics if not k.startswith("system/")}
    lines |= {f"table:{normalised(t['path'])}" for t in tables if t.get("type") == "table"}
    lines |= {f"artifact:{normalised(p)}" for p in artifact_paths(client, run.info.run_id)
              if not p.startswith("model/")}
    lines |= {f"model:{p}" for p in model_files(client, run)}
    return lines, client, run


def model_files(client, run) -> set[str]:
    """The files of the run's model ``model``: run artifacts under ``model/`` before MLflow 3's
    logged models, the files of the logged model of the run since."""
    old = {p[len("model/"):] for p in artifact_paths(client, run.info.run_id)
           if p.startswith("model/")}
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")
    return old | {p for m in models if m.name == "model"
                  for p in logged_model_paths(client, m.model_id)}


def logged_model_paths(client, model_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_logged_model_artifacts(model_id, path):
        found |= logged_model_paths(client, model_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.slow
def test_a_run_records_everything_it_recorded_before(tmp_path):
    expected = set(INVENTORY.read_text(encoding="utf-8").splitlines())
    found, client, run = inventory(tmp_path)
    missing = {REPLACED.get(line, line) for line in expected} - found
    assert not missing, f"no longer recorded: {sorted(missing)}"
    (table,) = [t["path"] for t in json.loads(run.data.tags["mlflow.loggedArtifacts"])
                if t["path"].startswith("samples/")]
    rows = json.loads(Path(client.download_artifacts(run.info.run_id, table,
                                                     str(tmp_path / "down"))).read_text())
    epochs = [row[rows["columns"].index("epoch")] for row in rows["data"]]
    assert sorted(epochs) == sorted(list(range(1, EPOCHS + 1)) * SAMPLES)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("CAPX_CACHE_DIR", str(Path(scratch) / "cache"))
        lines = sorted(inventory(Path(scratch))[0])
    INVENTORY.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{INVENTORY}: {len(lines)} entries")
