"""Build hook only (the package metadata is in pyproject.toml): the configs live in the top-level conf/
of the repository and are copied into the built package as dsmexp/conf, so an installed wheel finds
them (dsmexp/config/store.py CONF_DIR)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads conf/ where it is
            target = Path(self.build_lib) / "dsmexp" / "conf"
            shutil.copytree("conf", target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildWithConfigs})
