"""Train and track one captioning experiment (or a sweep with -m).

    python run.py                          # word LSTM on the synthetic shapes dataset
    python run.py model=char cell=rnn      # pick other options per config group (see conf/)
    python run.py -m tokenizer=char,word   # a sweep: one MLflow run per job under a parent run
    mlflow ui --backend-store-uri sqlite:///mlflow.db   # then look at the runs
"""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> int:
    from capx.experiment import main as run_experiment

    code = run_experiment(cfg)
    if code:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
