"""The wheel is self-contained: its configs and plugins ship inside it, and ``capx train`` trains
from any folder with no checkout in sight."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import REPO, SMOKE


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "-w", str(out), "-q"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("capx-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_configs_and_plugins(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "capx/conf/config.yaml" in names
    assert "capx/conf/experiment/smoke.yaml" in names and "capx/conf/hydra/job_logging/capx.yaml" in names
    assert "plugins/gru.py" in names and "capx/run/train_command.py" in names
    assert not any(n.startswith(("tests/", "docs/", "conf/")) for n in names)


@pytest.mark.slow
def test_an_installed_wheel_trains_from_another_folder(wheel, tmp_path, cache_dir):
    """Installed (non-editable) into its own folder, the wheel's ``capx train`` runs a tiny job
    and a sweep in a folder far from the checkout; the dependencies come from this env."""
    target = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                             "--target", str(target), str(wheel)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "CAPX_CACHE_DIR": str(cache_dir),
           "OPENBLAS_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    where = subprocess.run([sys.executable, "-c", "import capx, plugins; print(capx.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    command = [sys.executable, "-m", "capx", "train", *SMOKE, "'plugins=[plugins.gru]'",
               "cell=gru"]
    run = subprocess.run(" ".join(command), shell=True, cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "FINISHED after" in run.stdout + run.stderr
    sweep = subprocess.run([sys.executable, "-m", "capx", "train", "-m", *SMOKE, "seed=3,4"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert "2 job(s), FINISHED" in sweep.stdout + sweep.stderr
    assert (work / "mlflow.db").is_file() and list(work.glob("multirun/*/*"))
