"""The names in rnnopt.schema are the ones the SQL views spell and the readers use."""

from __future__ import annotations

import pytest

from rnnopt import schema
from rnnopt.storage.views import sql_path


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_sql_views_select_studies_by_the_schemas_modes(dialect: str) -> None:
    text = sql_path(dialect).read_text()
    for key in (schema.TASK, schema.CELL, schema.MODE, schema.METRIC, schema.DIRECTION,
                schema.DATA):
        assert f"'{key}'" in text, key
    modes = ", ".join(f"'\"{m}\"'" for m in schema.CELL_STUDY_MODES)
    assert f"IN ({modes})" in text


def test_which_studies_are_cell_studies() -> None:
    assert schema.is_cell_study({schema.TASK: "xml", schema.MODE: "compare"})
    assert schema.is_cell_study({schema.TASK: "xml"})  # stored before modes
    assert not schema.is_cell_study({schema.TASK: "memorize,arith", schema.MODE: "evolve"})
    assert not schema.is_cell_study({})
    assert schema.is_evolve_study({schema.MODE: "evolve"})
