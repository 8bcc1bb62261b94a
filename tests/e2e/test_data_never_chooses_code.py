"""A checkpoint is data: the ``plugins:`` list in its config says what it needs and never causes
an import. A crafted checkpoint names a module on the path that writes a file when imported;
through every way capx loads a checkpoint (``resume=<file>``, ``capx caption --run``,
``Captioner.from_checkpoint``, the pyfunc model) the file is never written, and the error names
the module and how to enable it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from capx.checkpoint import load_checkpoint, save_checkpoint
from capx.inference import Captioner
from capx.registry import PluginNotEnabledError
from tests.support import run_in_process, run_py, subprocess_env

PROBE = "capx_probe_written_on_import"


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> dict[str, Path]:
    """A trained checkpoint whose config names :data:`PROBE`, the probe module's folder and the
    file the probe would write."""
    folder = tmp_path_factory.mktemp("crafted")
    assert run_in_process(folder, "tracking.enabled=false") == "FINISHED"
    clean = next(folder.rglob("best.npz"))
    checkpoint = load_checkpoint(clean)
    config = yaml.safe_load(checkpoint.config_yaml)
    config["plugins"] = [PROBE]
    crafted = folder / "crafted.npz"
    save_checkpoint(crafted, checkpoint.state, checkpoint.tokenizer, yaml.safe_dump(config),
                    checkpoint.meta)
    modules = folder / "modules"
    modules.mkdir()
    marker = folder / "imported.txt"
    (modules / f"{PROBE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n")
    return {"checkpoint": crafted, "clean": clean, "modules": modules, "marker": marker}


@pytest.fixture
def probe_on_path(crafted, monkeypatch):
    """The probe importable here; after the test, forgotten again (module and marker)."""
    monkeypatch.syspath_prepend(str(crafted["modules"]))
    yield crafted
    sys.modules.pop(PROBE, None)
    crafted["marker"].unlink(missing_ok=True)


def test_resume_of_a_crafted_checkpoint_imports_nothing_and_names_the_plugin(crafted, tmp_path):
    done = run_py(tmp_path, None, "experiment=smoke", "progress=false", "tracking.enabled=false",
                  f"resume={crafted['checkpoint']}", pythonpath=str(crafted["modules"]))
    assert done.returncode != 0
    assert not crafted["marker"].exists()
    assert PROBE in done.stderr and f"plugins=[{PROBE}]" in done.stderr
    assert "Traceback" not in done.stderr


def test_capx_caption_of_a_crafted_checkpoint_imports_nothing(crafted, tmp_path):
    image = tmp_path / "one.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(image)
    done = subprocess.run([sys.executable, "-m", "capx", "caption", "--run",
                           str(crafted["checkpoint"]), str(image)], cwd=tmp_path,
                          env=subprocess_env(None, str(crafted["modules"])),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert not crafted["marker"].exists()
    assert f"--plugins {PROBE}" in done.stderr and "Traceback" not in done.stderr


def test_from_checkpoint_imports_nothing_and_an_explicit_plugin_is_the_users_choice(
        probe_on_path):
    with pytest.raises(PluginNotEnabledError, match=PROBE) as caught:
        Captioner.from_checkpoint(probe_on_path["checkpoint"])
    assert caught.value.modules == [PROBE]
    assert "plugins=[" in str(caught.value)
    assert not probe_on_path["marker"].exists() and PROBE not in sys.modules

    # Enabled by the caller, it is imported (the caller's decision) and the model loads.
    captioner = Captioner.from_checkpoint(probe_on_path["checkpoint"], plugins=[PROBE])
    assert probe_on_path["marker"].exists()
    features = np.zeros((1, captioner.feature_dim))
    assert len(captioner.caption(features)) == 1


def test_the_pyfunc_model_of_a_crafted_checkpoint_imports_nothing(probe_on_path, tmp_path):
    import mlflow

    from capx.tracking.logged_model import save_model

    clean = load_checkpoint(probe_on_path["clean"])
    dim = int(np.shape(clean.state["params"]["W_proj"])[0])
    save_model(probe_on_path["clean"], np.zeros((2, dim)), tmp_path / "model")
    # The model folder's checkpoint replaced by the crafted one (a received model artifact).
    logged = next((tmp_path / "model" / "artifacts").rglob("*.npz"))
    logged.write_bytes(probe_on_path["checkpoint"].read_bytes())
    with pytest.raises(Exception, match=PROBE) as caught:
        mlflow.pyfunc.load_model(str(tmp_path / "model"))
    assert "model_config" in str(caught.value)
    assert not probe_on_path["marker"].exists() and PROBE not in sys.modules

    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"), model_config={"plugins": [PROBE]})
    assert probe_on_path["marker"].exists()
    assert len(loaded.predict(np.zeros((1, dim)))) == 1


def test_a_non_list_plugins_entry_in_a_checkpoint_is_refused(crafted, tmp_path):
    checkpoint = load_checkpoint(crafted["clean"])
    config = yaml.safe_load(checkpoint.config_yaml)
    config["plugins"] = {"os": "system"}
    odd = tmp_path / "odd.npz"
    save_checkpoint(odd, checkpoint.state, checkpoint.tokenizer, yaml.safe_dump(config))
    with pytest.raises(ImportError, match="list of module names"):
        Captioner.from_checkpoint(odd)

