"""``capx train [overrides]``: what ``python run.py [overrides]`` does, for an installed capx.

The configs ship inside the package (``capx.conf``: ``conf/`` of the checkout), so a
non-editable install trains from any folder; ``-m`` sweeps and every Hydra flag work the same.
:func:`task` is the body both entry points share.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig

from capx.registry import PluginError
from capx.run.main import main as run_experiment
from capx.run.schemas import prepare_plugin_options  # also: the schemas and ${capx_uid:}
from capx.tracking.preflight import check_start_folder

CONFIG_PACKAGE = "capx.conf"


def conf_dir() -> Path:
    """The folder of the packaged configs (``conf/`` of the checkout in an editable install)."""
    return Path(str(resources.files(CONFIG_PACKAGE)))


def task(cfg: DictConfig) -> int | float:
    """A single run exits with its code; a sweep's job returns its objective to the sweeper."""
    result = run_experiment(cfg)
    if isinstance(result, int) and result:
        sys.exit(result)
    return result


def launch_folder_on_path(folder: Path) -> None:
    """Let plugin modules named on the command line (``plugins=[my_cells]``) resolve from the
    folder the user launched in, as ``python -m`` would find them, also for ``capx train`` and
    ``python /path/to/run.py``. Appended: a module there never shadows an installed package."""
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.append(entry)


def prepare(argv: Sequence[str], conf: Path) -> None:
    """Before Hydra composes: put the launch folder on the module path, register plugin options,
    and refuse a read-only start folder."""
    launch_folder_on_path(Path.cwd())
    try:
        prepare_plugin_options(argv, conf)
    except PluginError as exc:
        print(f"error: invalid config:\n  - plugins: {exc}", file=sys.stderr)
        sys.exit(2)
    problem = check_start_folder(Path.cwd(), list(argv))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)


def hydra_names(argv: Sequence[str]) -> list[str]:
    """Name the job ``run`` (its log ``run.log``, as ``python run.py`` names it) and the help
    ``capx train``, unless the command line names them: Hydra would take the name of the
    module that defines :func:`task`."""
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    names = {"hydra.job.name": "run", "hydra.help.app_name": "'capx train'"}
    return [f"{key}={value}" for key, value in names.items() if key not in given]


def main(argv: Sequence[str]) -> int:
    """Run Hydra on ``argv`` (overrides and flags, as ``run.py`` takes them)."""
    import hydra

    prepare(argv, conf_dir())
    hydra_main = hydra.main(config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config",
                            version_base="1.3")(task)
    sys.argv = ["capx train", *argv, *hydra_names(argv)]
    hydra_main()
    return 0
