"""A plugin module in the folder the user launched in is found by ``python /path/to/run.py``
and by ``capx train``, without ``PYTHONPATH=.``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, SMOKE, mlflow_client, run_py, subprocess_env

PLUGIN = '''
from capx.cells.rnn import RNNCell
from capx.registry import CELLS


@CELLS.register("launch_folder_rnn")
class LaunchFolderRNN(RNNCell):
    """The vanilla RNN under another name: a cell that only this folder's module provides."""
'''
ARGS = [*SMOKE, "plugins=[my_cells]", "cell=launch_folder_rnn", "solver.num_epochs=1"]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "my project"
    folder.mkdir()
    (folder / "my_cells.py").write_text(PLUGIN)
    return folder


def _trained_with_the_plugin(folder: Path, done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    client = mlflow_client(folder)
    (run,) = client.search_runs([client.get_experiment_by_name("capx").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["cell.name"] == "launch_folder_rnn"


@pytest.mark.slow  # 4-10 s of end-to-end runs: the default suite's budget is ~3 min
def test_run_py_finds_a_plugin_module_in_the_launch_folder(tmp_path, cache_dir):
    folder = _folder(tmp_path)
    assert str(folder) not in subprocess_env(cache_dir)["PYTHONPATH"]
    _trained_with_the_plugin(folder, run_py(folder, cache_dir, *ARGS))


@pytest.mark.slow
def test_capx_train_finds_a_plugin_module_in_the_launch_folder(tmp_path, cache_dir):
    script = Path(sys.executable).parent / "capx"
    if not script.is_file() or shutil.which("capx", path=str(script.parent)) is None:
        pytest.skip("no capx console script beside this Python (pip install -e . makes it)")
    folder = _folder(tmp_path)
    done = subprocess.run([str(script), "train", *ARGS], cwd=folder, timeout=300, text=True,
                          capture_output=True, env=subprocess_env(cache_dir))
    _trained_with_the_plugin(folder, done)
