"""The one normalise/mask/scrub of storage URLs, and readers that never create a database."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from rnnopt import dashboard
from rnnopt._cli import run_cli
from rnnopt.errors import ConfigError, StorageError
from rnnopt.report.__main__ import main as report_main
from rnnopt.storage import (
    DEFAULT_URL,
    add_storage_arguments,
    mask_url,
    normalize_url,
    open_existing,
    scrub,
    storage_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgres://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("mysql://root@h/d", "mysql+pymysql://root@h/d"),
        ("mariadb://root@h/d", "mysql+pymysql://root@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        # an unencoded '@' in the password: the host starts after the last '@'
        ("postgresql://u:p@ss@h/d", "postgresql+psycopg://u:p%40ss@h/d"),
    ],
)
def test_one_normalisation_for_every_command(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_default_and_bad_urls() -> None:
    assert normalize_url(None) == normalize_url(DEFAULT_URL)
    assert normalize_url(None).endswith("/rnnopt.db") and normalize_url(None).startswith(
        "sqlite:////"
    )
    with pytest.raises(StorageError, match="unsupported storage URL scheme 'oracle'"):
        normalize_url("oracle://u@h/d")
    with pytest.raises(StorageError, match="bad storage URL 'nonsense'"):
        normalize_url("nonsense")
    with pytest.raises(StorageError, match="names no database file"):
        normalize_url("sqlite://")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:Sekr3t-pw@h:5432/d",
        "postgresql://alice:Sek@r3t-pw@h:5432/d",
        "postgresql://alice@h/d?password=Sekr3t-pw",
        "postgresql://alice@h/d?sslmode=require&PASSWORD=Sekr3t-pw",
        "mysql+pymysql://root:Sekr3t-pw@h/d?charset=utf8mb4",
    ],
)
def test_mask_hides_every_password_form(url: str) -> None:
    for text in (url, normalize_url(url), f"--storage={url}", f"see {url} now"):
        masked = mask_url(text)
        assert "r3t-pw" not in masked and "***" in masked, masked


def test_scrub_removes_a_seen_password_from_any_text() -> None:
    normalize_url("postgresql://bob:Hidden%2Fpw@h/d")  # seen once: remembered
    message = "FATAL: password authentication failed (tried 'Hidden/pw', Hidden%2Fpw)"
    assert "Hidden" not in scrub(message)
    assert "authentication failed" in scrub(message)


def test_log_records_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    normalize_url("postgresql://carol:Log-Secret-9@h/d")
    with caplog.at_level(logging.INFO):
        logging.getLogger("anything").warning("driver said %s", "bad Log-Secret-9 here")
    assert "Log-Secret-9" not in caplog.text and "driver said bad *** here" in caplog.text


def test_storage_env_reads_the_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    add_storage_arguments(parser)
    monkeypatch.setenv("MY_DB", "postgresql://u:pw@h/d")
    assert storage_url(parser.parse_args(["--storage-env", "MY_DB"])) == "postgresql://u:pw@h/d"
    with pytest.raises(ConfigError, match="--storage-env NOPE: environment variable NOPE is not"):
        storage_url(parser.parse_args(["--storage-env", "NOPE"]))
    assert storage_url(parser.parse_args([])) is None  # the default, DEFAULT_URL
    with_env = argparse.ArgumentParser()
    add_storage_arguments(with_env, default="sqlite:///x.db", env_default="MY_DB")
    assert storage_url(with_env.parse_args([])) == "postgresql://u:pw@h/d"
    monkeypatch.delenv("MY_DB")
    assert storage_url(with_env.parse_args([])) == "sqlite:///x.db"
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args(["--storage", "x", "--storage-env", "MY_DB"])


def test_readers_never_create_a_database(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "missing.db"
    url = f"sqlite:///{db}"
    assert run_cli(report_main, ["--storage", url, "--out", str(tmp_path / "r")]) == 2
    assert f"error: no SQLite database at {db}" in capsys.readouterr().err
    assert run_cli(dashboard.main, ["--storage", url, "--artifacts", str(tmp_path / "nope")]) == 2
    assert run_cli(dashboard.main, ["--storage", url]) == 2
    assert capsys.readouterr().err.count(f"error: no SQLite database at {db}") == 2
    assert not db.exists() and not (tmp_path / "r").exists()
    db.write_bytes(b"")  # an empty file is not an Optuna database, and stays empty
    with pytest.raises(StorageError, match="is not an Optuna database"):
        open_existing(url)
    assert db.read_bytes() == b""
