"""Study attributes are stored as JSON values; databases that hold JSON strings still resume."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from study_helpers import tiny_study

from rnnopt.attrs import json_value
from rnnopt.errors import StorageError
from rnnopt.hpo.plan import Plan, make_plan
from rnnopt.hpo.runner import prepare_studies
from rnnopt.study import build_parser


def _plan(tmp_path: Path, url: str, max_steps: int = 30) -> Plan:
    args = build_parser().parse_args([
        "--task", "xml", "--cells", "gru", "--storage", url, "--workers", "1",
        "--study-file", str(tiny_study(tmp_path, max_steps=max_steps)),
    ])  # fmt: skip
    return make_plan(args, [])


def test_json_value_reads_values_and_old_strings() -> None:
    assert json_value({"a": 1}) == {"a": 1}
    assert json_value('{"a": 1}') == {"a": 1}
    assert json_value("[1, 2]") == [1, 2]
    assert json_value("gru") == "gru" and json_value("{not json") == "{not json"
    assert json_value(3) == 3 and json_value(None) is None


def test_attributes_are_json_values_and_old_string_databases_resume(
    tmp_path: Path, sqlite_url: str
) -> None:
    plan = _plan(tmp_path, sqlite_url)
    prepare_studies(plan)
    study = optuna.load_study(study_name="xml/gru", storage=sqlite_url)
    attrs = study.user_attrs
    for key in ("rnnopt.space", "rnnopt.budget", "rnnopt.train"):
        assert isinstance(attrs[key], dict), key
    assert attrs["rnnopt.budget"] == {"n_trials": 2, "max_steps": 30}

    # A database written by an older rnnopt: the same attributes as JSON strings.
    for key in ("rnnopt.space", "rnnopt.budget", "rnnopt.train"):
        study.set_user_attr(key, json.dumps(attrs[key]))
    prepare_studies(plan)  # same space and budget: resumes
    assert isinstance(study.user_attrs["rnnopt.space"], dict)  # rewritten as values
    for key in ("rnnopt.space", "rnnopt.budget"):
        study.set_user_attr(key, json.dumps(attrs[key]))
    with pytest.raises(StorageError, match="--max-steps 30"):
        prepare_studies(_plan(tmp_path, sqlite_url, max_steps=40))
