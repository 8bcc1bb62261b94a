"""capx's import directions hold: the contracts in pyproject.toml's ``[tool.importlinter]`` (the
rooms in layers, the model and data free of the framework, no cycles), checked by import-linter
on this checkout, and shown to catch an upward import planted in a copy of the package. A new
module must be placed in a layer (the rooms contract is exhaustive); one placed with the model
and data must be listed in the framework-free contract too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomli on 3.10")

pytest.importorskip("importlinter", reason="import-linter is not installed: pip install -e '.[test]'")

LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` in ``root`` (a checkout: pyproject.toml beside the capx package)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_hold():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    shutil.copytree(REPO / "capx", tmp_path / "capx", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    layers = tmp_path / "capx" / "layers.py"
    layers.write_text(layers.read_text() + "\nimport capx.tracking.names  # planted\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1
    assert "capx.layers is not allowed to import capx.tracking" in done.stdout
    assert "capx.layers -> capx.tracking.names" in done.stdout


def test_the_framework_free_contract_lists_the_whole_bottom_layer():
    contracts = {c["id"]: c for c in tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["importlinter"]["contracts"]}
    bottom = {f"capx.{name.strip()}" for name in contracts["rooms"]["layers"][-1].split(":")}
    assert set(contracts["model-stands-alone"]["source_modules"]) == bottom
