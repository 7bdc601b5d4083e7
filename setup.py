"""Ship the top-level ``sql/`` views and ``studies/`` files inside the package.

The repository keeps them at the top (where people look for them); a wheel puts copies in
``rnnopt/sql`` and ``rnnopt/studies``, where ``rnnopt.db`` and ``rnnopt.hpo.studyfile`` look first.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"sql": "*.sql", "studies": "*.toml"}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for folder, pattern in SHIPPED.items():
            target = Path(self.build_lib) / "rnnopt" / folder
            target.mkdir(parents=True, exist_ok=True)
            for source in sorted((ROOT / folder).glob(pattern)):
                shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildWithData})
