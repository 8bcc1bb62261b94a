"""Train and track one captioning experiment (or a sweep with -m).

    python run.py                          # word LSTM on the synthetic shapes dataset
    python run.py model=char cell=rnn      # pick other options per config group (see conf/)
    python run.py -m tokenizer=char,word   # a sweep: one MLflow run per job under a parent run
    mlflow ui --backend-store-uri sqlite:///mlflow.db   # then look at the runs

Hydra checks the config's types while composing (capx/schemas.py); capx then checks ranges and
plugin options. A cell or tokenizer from an installed plugin, or from a module named on the
command line (``plugins=[my_cells] cell=mycell``), is a group option even without a conf/ file.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from capx.schemas import prepare_plugin_options

CONF_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int | float:
    """A single run exits with its code; a sweep's job returns its objective to the sweeper."""
    from capx.experiment import main as run_experiment

    result = run_experiment(cfg)
    if isinstance(result, int) and result:
        sys.exit(result)
    return result


def _prepare() -> None:
    """Register the plugins' cells and tokenizers as group options before Hydra composes."""
    from capx.registry import PluginError

    try:
        prepare_plugin_options(sys.argv[1:], CONF_DIR)
    except PluginError as exc:
        print(f"error: invalid config:\n  - plugins: {exc}", file=sys.stderr)
        sys.exit(2)


def _check_start_folder() -> None:
    """Hydra writes its output folder under the start folder: say so if that is read-only."""
    from capx.preflight import check_start_folder

    problem = check_start_folder(Path.cwd(), sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _prepare()
    _check_start_folder()
    main()
