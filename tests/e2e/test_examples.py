"""The example scripts run as a user would run them."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow  # executes the whole notebook
def test_cs231n_notebook_flow(cs231n_dir):
    result = subprocess.run(
        [sys.executable, "examples/cs231n_notebook.py", str(cs231n_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "train_captions <class 'numpy.ndarray'> (1555, 17) int32" in out
    assert "(Iteration 1 / 100) loss:" in out
    final = float(out.split("final loss ")[1].split()[0])
    assert final < 0.5
    assert out.count("[train]") == 2 and out.count("[val]") == 2


@pytest.mark.slow
def test_the_cs231n_notebook_runs_and_its_plots_show_inline(cs231n_dir, tmp_path, monkeypatch):
    """examples/cs231n_notebook.ipynb executed top to bottom in a kernel: no cell fails, the
    known loss value matches, the small model overfits, and the loss curve is an inline PNG."""
    nbformat = pytest.importorskip("nbformat", reason="the test extra's nbformat is missing")
    nbclient = pytest.importorskip("nbclient", reason="the test extra's nbclient is missing")
    monkeypatch.setenv("CAPX_COCO_DIR", str(cs231n_dir))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    notebook = nbformat.read(REPO_ROOT / "examples" / "cs231n_notebook.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [(cell.source, out) for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])]
    assert not [o for _, o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for _, o in outputs if o.output_type == "stream")
    assert float(text.split("difference: ")[1].split()[0]) < 1e-9
    assert float(text.split("Final loss: ")[1].split()[0]) < 0.5
    assert text.count("[train]") == 2 and text.count("[val]") == 2
    plots = [src for src, o in outputs if "image/png" in o.get("data", {})]
    assert any("loss_history" in src for src in plots)


def test_the_study_script_runs_only_from_a_clean_checkout_of_the_study_commit(tmp_path):
    """examples/study.sh refuses a checkout with changes, a test chunk before the study commit
    is named, a checkout of another commit, and a machine whose arithmetic (NumPy and BLAS)
    differs from the study's, each with a message that says what to do."""
    repo = tmp_path / "checkout"
    (repo / "examples").mkdir(parents=True)
    (repo / "examples" / "study.sh").write_text((REPO_ROOT / "examples" / "study.sh").read_text())

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                       check=True, capture_output=True)

    def study(*args):  # this checkout's capx (python -m capx.tracking.arithmetic) on the path
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        return subprocess.run(["bash", "examples/study.sh", *args], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=60)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                           text=True).stdout.strip()
    missing = study("main")
    assert missing.returncode == 2 and "docs/study/COMMIT is missing" in missing.stderr
    (repo / "docs" / "study").mkdir(parents=True)
    (repo / "docs" / "study" / "COMMIT").write_text(first + "\n")
    git("add", "-A")
    git("commit", "-qm", "the study commit")
    other = study("main")
    assert other.returncode == 2 and f"the study runs at {first}" in other.stderr
    assert "worktree" in other.stderr or "top of this script" in other.stderr
    git("checkout", "-q", first)
    (repo / "docs" / "study").mkdir(parents=True, exist_ok=True)
    (repo / "docs" / "study" / "COMMIT").write_text(first + "\n")  # untracked here: allowed
    assert "unknown chunk nonsense" in study("nonsense").stderr  # past every check
    arithmetic = repo / "docs" / "study" / "ARITHMETIC"
    arithmetic.write_text("numpy 1.0; openblas 0.1 (Prescott kernels, 1 thread)\n")
    elsewhere = study("nonsense")
    assert elsewhere.returncode == 2 and "the study's runs computed with" in elsewhere.stderr
    assert "numpy 1.0; openblas 0.1" in elsewhere.stderr
    here = subprocess.run([sys.executable, "-m", "capx.tracking.arithmetic"], cwd=REPO_ROOT,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
                          capture_output=True, text=True, check=True).stdout
    arithmetic.write_text(here)
    assert "unknown chunk nonsense" in study("nonsense").stderr  # the same arithmetic passes
    (repo / "examples" / "study.sh").write_text(
        (repo / "examples" / "study.sh").read_text() + "\n# edited\n")
    dirty = study("main")
    assert dirty.returncode == 2 and "uncommitted changes" in dirty.stderr
