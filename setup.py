"""Packages for setuptools (the rest of the metadata is in pyproject.toml).

``conf/`` (the Hydra configs) ships inside the package as ``capx.conf`` and ``plugins/`` as the
``plugins`` package, so an installed capx trains without a checkout (``capx train ...``).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["capx", "capx.*", "plugins", "plugins.*"]), "capx.conf"],
    package_dir={"capx.conf": "conf"},
    package_data={"capx.conf": ["*.yaml", "**/*.yaml"]},
)
