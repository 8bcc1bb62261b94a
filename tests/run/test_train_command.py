"""``capx train``: named like ``python run.py`` (job ``run``), its help titled ``capx train``."""

import subprocess
import sys

from capx.run.train_command import hydra_names
from tests.support import REPO


def test_the_job_is_named_run_and_the_help_capx_train_unless_the_command_line_says_otherwise():
    assert hydra_names(["cell=rnn"]) == ["hydra.job.name=run", "hydra.help.app_name='capx train'"]
    assert hydra_names(["hydra.job.name=mine", "+hydra.help.app_name=x"]) == []


def test_capx_train_help_names_the_command():
    done = subprocess.run([sys.executable, "-c", "from capx.cli import main; main(['train', '--help'])"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("capx train is powered by Hydra."), done.stdout[:200]
