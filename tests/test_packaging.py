"""A wheel carries the SQL views and the study files, and an installed copy finds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_sql_and_studies_and_uses_them(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("rnnopt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in (("sql", "*.sql"), ("studies", "*.toml")):
        for source in (REPO / folder).glob(pattern):
            assert f"rnnopt/{folder}/{source.name}" in names
    # The console script `rnnopt` (rnnopt study|report|dashboard|db|tasks|evolve).
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[console_scripts]\nrnnopt = rnnopt.__main__:main" in scripts
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # The installed copy, run away from any checkout, reads its own files.
    probe = (
        "import json; from rnnopt.db import sql_path, view_statements;"
        "from rnnopt.hpo.studyfile import load_study_file, resolve_study_path;"
        "load_study_file('paper_table1');"
        "print(json.dumps([str(sql_path('postgresql')), len(view_statements('sqlite')),"
        " str(resolve_study_path('paper_table1'))]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    sql, statements, study = json.loads(run.stdout)
    assert Path(sql).is_relative_to(site) and Path(study).is_relative_to(site)
    assert statements > 3
