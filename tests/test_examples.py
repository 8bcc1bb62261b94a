"""The example scripts run as a user would run them."""

import subprocess
import sys

from conftest import REPO_ROOT


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
