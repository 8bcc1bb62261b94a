"""Train and track one captioning experiment (or a sweep with -m).

    python run.py                          # word LSTM on the synthetic shapes dataset
    python run.py model=char cell=rnn      # pick other options per config group (see conf/)
    python run.py -m tokenizer=char,word   # a sweep: one MLflow run per job under a parent run
    mlflow ui                              # then look at the runs (Model training -> Training runs)

Hydra checks the config's types while composing (capx/run/schemas.py); capx then checks ranges and
plugin options. A cell or tokenizer from an installed plugin, or from a module named on the
command line (``plugins=[my_cells] cell=mycell``), is a group option even without a conf/ file.
An installed capx does the same with ``capx train ...`` (see capx/run/train_command.py).
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import capx.run.schemas  # noqa: F401 - the config schemas and the ${capx_uid:} resolver

CONF_DIR = Path(__file__).resolve().parent / "conf"


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int | float:
    from capx.run.train_command import task

    return task(cfg)


if __name__ == "__main__":
    from capx.run.train_command import prepare

    prepare(sys.argv[1:], CONF_DIR)
    main()
