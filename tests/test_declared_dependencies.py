"""Every third-party module capx imports (at the top of a module or deferred inside a function)
comes from a distribution pyproject.toml declares, in [project] dependencies or an extra: an
undeclared one works in a developer's environment and breaks a fresh ``pip install .``."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

from tests.support import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import pytest

    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs tomli on 3.10")

#: import names whose distribution is named otherwise, for when it is not installed here
KNOWN_DISTRIBUTIONS = {"PIL": "pillow", "yaml": "pyyaml", "hydra": "hydra-core",
                       "markdown_it": "markdown-it-py"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {_normalized(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def imported_top_level_modules() -> dict[str, str]:
    """{third-party top-level module: a file of capx/ that imports it}."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "capx").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "capx" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_of_capx_is_declared_in_pyproject():
    declared = declared_distributions()
    installed = packages_distributions()
    undeclared = []
    for module, where in imported_top_level_modules().items():
        candidates = {_normalized(d) for d in installed.get(module, [])}
        candidates |= {_normalized(KNOWN_DISTRIBUTIONS.get(module, module))}
        if not candidates & declared:
            undeclared.append(f"{module} (imported in {where}; from {sorted(candidates)})")
    assert not undeclared, ("third-party imports no dependency or extra of pyproject.toml "
                            "provides: " + "; ".join(undeclared))


def test_the_check_sees_deferred_and_top_level_imports():
    modules = imported_top_level_modules()
    assert {"numpy", "mlflow", "scipy"} <= modules.keys()  # imported at module level
    assert {"PIL", "psutil"} <= modules.keys()  # imported inside functions (optional extras)
