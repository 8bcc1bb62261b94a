"""Plugin registries: duplicate and unknown names, plugin modules that fail, entry-point discovery.

Entry points are tested through the real mechanism: the example package in ``tests/plugin_pkg`` is
"installed" into a temporary folder as its module plus a ``*.dist-info`` with ``entry_points.txt``
(what pip writes), and that folder is put on ``sys.path``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from capx import registry
from capx.captioner import CaptioningRNN
from capx.registry import (
    CELLS, ENTRY_POINT_GROUP, DuplicateNameError, PluginError, Registry, UnknownNameError,
    load_plugins,
)

PLUGIN_PKG = Path(__file__).resolve().parent / "plugin_pkg"
DEMO_MODULE = "capx_demo_plugin"


def install_as_dist_info(site: Path, name: str, version: str, modules: dict[str, str],
                         entry_points: dict[str, str]) -> None:
    """Lay out a distribution in ``site`` the way an installer does: modules + ``.dist-info``."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def install_demo_plugin(site: Path) -> None:
    """Install ``tests/plugin_pkg`` from its pyproject (name, version, entry points) into ``site``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((PLUGIN_PKG / "pyproject.toml").read_text())["project"]
    install_as_dist_info(
        site, project["name"], project["version"],
        modules={DEMO_MODULE: (PLUGIN_PKG / f"{DEMO_MODULE}.py").read_text()},
        entry_points=project["entry-points"][ENTRY_POINT_GROUP],
    )


@pytest.fixture
def fresh_plugins(monkeypatch, tmp_path):
    """A clean slate for plugin loading, undone afterwards; yields a folder on ``sys.path``.

    Entry points are scanned again, the cell registry loads again into a copy of its entries (so
    a test's ``demo`` cell disappears afterwards), and modules imported from the folder are
    forgotten.
    """
    CELLS.names()  # load the built-in cells before taking the copy
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(CELLS, "_builtins_loaded", False)
    monkeypatch.setattr(CELLS, "_entries", dict(CELLS._entries))
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)
    yield site
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(site)):
            del sys.modules[name]


# -- names --------------------------------------------------------------------------------------


def test_duplicate_name_is_an_error():
    widgets = Registry("widget")

    @widgets.register("spinner")
    class Spinner:
        pass

    class OtherSpinner:
        pass

    with pytest.raises(DuplicateNameError, match="widget 'spinner' is already registered") as err:
        widgets.register("spinner")(OtherSpinner)
    assert isinstance(err.value, ValueError)
    assert "Spinner" in str(err.value) and "OtherSpinner" in str(err.value)
    widgets.add("spinner", Spinner)  # the same object again (a module imported twice) is fine
    assert widgets._entries == {"spinner": Spinner}


@pytest.mark.parametrize("bad_name", ["", None, 3])
def test_a_name_must_be_a_non_empty_string(bad_name):
    with pytest.raises(ValueError, match="non-empty string"):
        Registry("widget").add(bad_name, object())


def test_unknown_name_lists_registered_names_and_hints_at_plugins(monkeypatch):
    monkeypatch.setattr(registry, "_entry_points_loaded", True)  # no installed plugins involved
    widgets = Registry("widget")
    widgets.add("spinner", object())
    widgets.add("lever", object())
    with pytest.raises(ValueError) as err:
        widgets.get("knob")
    message = str(err.value)
    assert isinstance(err.value, (UnknownNameError, KeyError))
    assert "unknown widget 'knob'" in message
    assert "lever, spinner" in message
    assert "plugins:" in message and "install the package" in message


def test_unknown_cell_lists_the_built_in_cells():
    with pytest.raises(ValueError, match=r"unknown cell 'no_such_cell'.*lstm.*rnn"):
        CaptioningRNN({"<NULL>": 0}, cell_type="no_such_cell")


# -- plugin modules -----------------------------------------------------------------------------


def test_missing_plugin_module_names_it_and_keeps_the_error():
    with pytest.raises(PluginError, match="'no_such_module'") as err:
        load_plugins(["no_such_module"])
    assert isinstance(err.value, ImportError)
    assert isinstance(err.value.__cause__, ModuleNotFoundError)
    assert err.value.__cause__.name == "no_such_module"


def test_plugin_module_raising_on_import_names_it_and_keeps_the_error(fresh_plugins):
    (fresh_plugins / "capx_exploding_plugin.py").write_text(
        "raise RuntimeError('missing weights file for the exploding cell')\n")
    with pytest.raises(PluginError) as err:
        load_plugins(["capx_exploding_plugin"])
    message = str(err.value)
    assert "'capx_exploding_plugin'" in message
    assert "RuntimeError: missing weights file" in message
    assert isinstance(err.value.__cause__, RuntimeError)
    assert "capx_exploding_plugin" not in sys.modules


def test_plugin_module_registers_on_load(fresh_plugins):
    (fresh_plugins / "capx_local_plugin.py").write_text(
        "from capx.cells.rnn import RNNCell\nfrom capx.registry import CELLS\n"
        "CELLS.add('local', RNNCell)\n")
    assert "local" not in CELLS
    load_plugins(["capx_local_plugin"])
    assert CELLS.get("local").__name__ == "RNNCell"


# -- entry points -------------------------------------------------------------------------------


def test_entry_point_plugin_is_found_by_name(fresh_plugins):
    install_demo_plugin(fresh_plugins)
    found = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert found.get("demo") == DEMO_MODULE
    assert DEMO_MODULE not in sys.modules

    cell_cls = CELLS.get("demo")  # the first lookup imports the installed plugins

    assert cell_cls.__module__ == DEMO_MODULE
    assert "demo" in CELLS.names()
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2, "x": 3}, input_dim=4,
                          wordvec_dim=3, hidden_dim=2, cell_type="demo", seed=0)
    loss, _ = model.loss(np.ones((2, 4)), np.array([[1, 3, 2], [1, 2, 0]]))
    assert np.isfinite(loss)


def test_load_plugins_also_loads_entry_points_once(fresh_plugins):
    install_demo_plugin(fresh_plugins)
    load_plugins([])
    assert DEMO_MODULE in sys.modules
    assert "demo" in CELLS._entries
    # Entry points are read once per process: a plugin installed later is not picked up.
    install_as_dist_info(fresh_plugins, "capx-late-plugin", "1.0",
                         {"capx_late_plugin": "raise RuntimeError('should not be imported')\n"},
                         {"late": "capx_late_plugin"})
    load_plugins([])
    assert "capx_late_plugin" not in sys.modules


def test_broken_entry_point_is_reported_with_its_name(fresh_plugins):
    install_as_dist_info(
        fresh_plugins, "capx-broken-plugin", "0.2",
        modules={"capx_broken_plugin": "import capx_dependency_that_is_not_installed\n"},
        entry_points={"broken": "capx_broken_plugin"},
    )
    with pytest.raises(PluginError) as err:
        CELLS.get("rnn")
    message = str(err.value)
    assert "'broken'" in message and "capx_broken_plugin" in message
    assert ENTRY_POINT_GROUP in message
    assert "capx_dependency_that_is_not_installed" in message
    assert isinstance(err.value.__cause__, ModuleNotFoundError)


@pytest.mark.slow
def test_pip_installed_plugin_package_is_discovered(fresh_plugins, tmp_path):
    """The real thing: pip builds and installs tests/plugin_pkg (offline) into a folder on sys.path."""
    source = tmp_path / "plugin_pkg"
    shutil.copytree(PLUGIN_PKG, source)  # the build writes into the source tree
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(fresh_plugins), str(source)],
        check=True, capture_output=True,
    )
    assert list(fresh_plugins.glob("capx_demo_plugin-*.dist-info/entry_points.txt"))
    assert CELLS.get("demo").__module__ == DEMO_MODULE
