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
