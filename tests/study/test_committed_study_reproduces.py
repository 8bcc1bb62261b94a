"""The committed study comes out of the code at this commit: the headline jobs of fold 1 (char
and word LSTM, ~250k parameters, seed 0), re-run here from the study preset, reproduce the test
bits/char of their runs in ``docs/study/coco_mini/runs.jsonl`` to 1e-6.

The fingerprint test (tests/model/test_fingerprint.py) pins a few steps on tiny data; this one
is the claim a reader of the README relies on, checked on the real thing. It fails when a change
moves the study's numbers (then the study must be re-run before its tables are quoted) and when
the study preset's configuration no longer matches any committed run (then the export is not
the study this checkout would run). Like the study, each job runs with one BLAS thread.

Bit for bit means on the same arithmetic: the NumPy and BLAS kernels named in
``docs/study/ARITHMETIC``. Float32 training over tens of epochs amplifies rounding (two BLAS
threads instead of one move the char LSTM's fold 1 by 0.012 bits/char and 6 epochs), so on
other arithmetic the test is skipped, naming both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import REPO, read_runs, run_py

# two real training jobs, about two minutes in all
pytestmark = pytest.mark.slow

EXPORT = REPO / "docs" / "study" / "coco_mini" / "runs.jsonl"
STUDY_ARITHMETIC = REPO / "docs" / "study" / "ARITHMETIC"
TOLERANCE = 1e-6
EXACT = ("test/epochs_trained", "test/selected_epoch", "params/total")
CLOSE = ("test/bits_per_char", "test/bits_per_char_closed")


def exported_run(fingerprint: str) -> dict | None:
    with EXPORT.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("fingerprint") == fingerprint:
                return record
    return None


def arithmetic_of_a_study_job() -> str:
    """This machine's arithmetic as a study job sees it (one BLAS thread), from a child."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "capx.tracking.arithmetic"], env=env,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def same_arithmetic() -> str:
    study, here = STUDY_ARITHMETIC.read_text().strip(), arithmetic_of_a_study_job()
    if here != study:
        pytest.skip(f"the committed study computed with '{study}' and this machine computes "
                    f"with '{here}': float32 training reproduces bit for bit only on the same "
                    "arithmetic")
    return study


@pytest.mark.parametrize("tokenizer", ["char", "word"])
def test_the_committed_studys_fold_1_lstm_run_reproduces_at_this_commit(
        tokenizer, coco_mini, tmp_path, same_arithmetic):
    done = run_py(tmp_path, None, "experiment=study_coco_mini", f"tokenizer={tokenizer}",
                  "cell=lstm", "split.fold=1", f"dataset.base_dir={coco_mini}",
                  "tracking.export=null", "progress=false", timeout=1200,
                  OPENBLAS_NUM_THREADS="1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, found = read_runs(tmp_path, "study_coco_mini")
    (run,) = found
    assert run.data.tags["capx.arithmetic"] == same_arithmetic
    key = run.data.tags["capx.fingerprint"]
    committed = exported_run(key)
    assert committed is not None, (
        f"no run in {EXPORT.relative_to(REPO)} has this job's configuration (fingerprint {key}): "
        "the study preset changed since the study ran; re-run the study at this commit")
    here = run.data.metrics
    for name in EXACT:
        assert here[name] == committed["metrics"][name], name
    moved = {name: (committed["metrics"][name], here[name]) for name in CLOSE
             if abs(here[name] - committed["metrics"][name]) > TOLERANCE}
    assert not moved, (
        f"the study's numbers moved since commit {committed['commit'][:12]} "
        f"(committed, now): {moved}. Re-run the study (examples/study.sh) before quoting it")
