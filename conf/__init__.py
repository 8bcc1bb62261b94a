"""The Hydra configs, shipped inside the package as ``capx.conf`` (see setup.py and capx/run/train_command.py)."""
