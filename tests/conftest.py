"""Shared fixtures: the real data beside the checkout, skipped with a reason when absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

if str(REPO_ROOT) not in sys.path:  # plugins/ and examples/ import from the repository root
    sys.path.insert(0, str(REPO_ROOT))

import capx.run.schemas  # noqa: E402,F401 - stores base_config, which conf/config.yaml starts from


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Generated datasets (shapes) are cached in a temporary folder, not in the user's home."""
    import os

    previous = os.environ.get("CAPX_CACHE_DIR")
    os.environ["CAPX_CACHE_DIR"] = str(tmp_path_factory.mktemp("capx-cache"))
    yield
    if previous is None:
        os.environ.pop("CAPX_CACHE_DIR", None)
    else:
        os.environ["CAPX_CACHE_DIR"] = previous


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (it sits beside the checkout in CI)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture
def coco_mini() -> Path:
    return _require(SHARED_DATA / "coco-mini")


@pytest.fixture
def cs231n_dir() -> Path:
    """coco-mini in the CS231n ``coco_captioning/`` layout."""
    return _require(SHARED_DATA / "coco-mini" / "coco_captioning")


@pytest.fixture
def val2017_captions() -> Path:
    return _require(SHARED_DATA / "coco-val2017-captions" / "captions_val2017.json")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """Generated shapes data shared by one module's jobs (in-process and run.py children)."""
    return tmp_path_factory.mktemp("shapes-cache")


@pytest.fixture
def workdir(tmp_path, cache_dir, monkeypatch) -> Path:
    """A fresh launch folder: the job runs there, with no outside tracking URI."""
    monkeypatch.setenv("CAPX_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
