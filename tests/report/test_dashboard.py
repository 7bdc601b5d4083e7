"""optuna-dashboard over a database made by a real tiny study: API, notes, a rendered plot."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from rnnopt import dashboard, report

REPO = Path(__file__).resolve().parents[2]

TINY_STUDY = """
[study]
tasks = ["xml"]
cells = ["lstm", "gru"]
mode = "search"
sampler = "paper"
pruner = "none"
n_trials = 4
max_steps = 6

[train]
batch_size = 4
unroll = 10
eval_interval = 2
eval_batches = 2

[space]
hidden_size = 16
layers = 1
lr = [0.5, 1, 2]
init_scale = [0.7, 1, 1.4]
gates = ["input_gate"]
"""


def test_note_markdown_names_task_cell_space_budget_and_command() -> None:
    attrs = {"rnnopt.task": "xml", "rnnopt.cell": "lstm-b", "rnnopt.mode": "compare",
             "rnnopt.space": json.dumps({"lr": [0.1, 1]}), "rnnopt.metric": "accuracy",
             "rnnopt.budget": json.dumps({"n_trials": 20, "max_steps": 2000}),
             "rnnopt.direction": "maximize", "rnnopt.command": "python -m rnnopt.study --task xml"}
    text = dashboard.note_markdown("xml/lstm-b", attrs)
    assert text.startswith("# xml/lstm-b\n")
    for piece in ("| task | `xml` |", "| cell | `lstm-b` |", '"max_steps": 2000',
                  '"lr": [\n    0.1,', "```sh\npython -m rnnopt.study --task xml\n```",
                  "validation accuracy (maximize)"):
        assert piece in text, piece


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    # optuna-dashboard's static bundle answers 500 to a request without Accept-Encoding.
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
        return gzip.decompress(body) if resp.headers.get("Content-Encoding") == "gzip" else body


def _plot_pixels(png: Path) -> int:
    """Strongly coloured pixels in the history chart area (the grid and text are grey)."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        chart = np.asarray(im.convert("RGB").crop((420, 160, 1320, 620)), dtype=np.int16)
    return int(((chart.max(axis=2) - chart.min(axis=2)) > 80).sum())


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_real_study_views_report_and_dashboard(tmp_path: Path) -> None:
    study_file = tmp_path / "tiny.toml"
    study_file.write_text(TINY_STUDY)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "rnnopt.study", "--study-file", str(study_file), "--storage", url,
         "--seed", "0"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]

    # The study layer installed the views; they agree with Optuna's own API.
    study = optuna.load_study(study_name="xml/search", storage=url)
    trials = study.get_trials()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(
            "SELECT trial_number, cell, value, params, steps FROM rnnopt_trials "
            "ORDER BY trial_number"))]
        board = {r.cell: r for r in conn.execute(sa.text("SELECT * FROM rnnopt_leaderboard"))}
    engine.dispose()
    assert len(rows) == len(trials) == 4
    for row, trial in zip(rows, trials, strict=True):
        assert row["cell"] == trial.params["cell"]
        assert json.loads(row["params"]) == trial.params
        assert row["value"] == pytest.approx(trial.value)
        assert row["steps"] == trial.user_attrs["steps"]
    for cell, row in board.items():
        values = [t.value for t in trials if t.params["cell"] == cell]
        assert row.best_value == pytest.approx(max(values))
        assert row.n_complete == len(values)

    rep = report.build_report(url, min_trials=3)
    files = report.write_report(rep, tmp_path / "report", fmt="html")
    assert {p.name for p in files} >= {"index.html", "compute_xml.png", "curves_xml.png",
                                        "history_xml.png", "edf_xml.png"}

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rnnopt.dashboard", "--storage", url, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                summaries = json.loads(_get(f"http://127.0.0.1:{port}/api/studies"))
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not start"
                time.sleep(0.5)
        names = {s["study_name"]: s["study_id"] for s in summaries["study_summaries"]}
        assert list(names) == ["xml/search"]
        sid = names["xml/search"]
        detail = json.loads(_get(f"http://127.0.0.1:{port}/api/studies/{sid}"))
        assert "| task | `xml` |" in detail["note"]["body"]  # written by the dashboard CLI
        assert len(detail["trials"]) == 4 and detail["trials"][0]["intermediate_values"]
        assert detail["objective_names"] == ["accuracy"]  # not "Objective 0"
        # Every listed artifact downloads (the dashboard found the study's default artifact
        # directory by itself): one checkpoint per trial, the latest, under a stable id.
        artifacts = [(t["trial_id"], a) for t in detail["trials"] for a in t["artifacts"]]
        assert len(artifacts) == 4, artifacts
        for trial_id, meta in artifacts:
            blob = _get(f"http://127.0.0.1:{port}/artifacts/{sid}/{trial_id}/"
                        f"{meta['artifact_id']}")  # an HTTP error raises here
            assert blob == (tmp_path / "study-artifacts" / meta["artifact_id"]).read_bytes()
        # ... and no file without its record either.
        assert sorted(p.name for p in (tmp_path / "study-artifacts").iterdir()) == sorted(
            a["artifact_id"] for _, a in artifacts)

        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("chromium not installed (apt-get install -y chromium)")
        png = tmp_path / "study.png"
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
             "--virtual-time-budget=10000", "--window-size=1400,1000", f"--screenshot={png}",
             f"http://127.0.0.1:{port}/dashboard/studies/{sid}"],
            capture_output=True, timeout=120, check=True,
        )
        # The history plot draws its markers and line in colour; an empty page has none there.
        assert _plot_pixels(png) > 300
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
             "--virtual-time-budget=10000", "--window-size=1400,1000", "--dump-dom",
             f"http://127.0.0.1:{port}/dashboard/studies/{sid}"],
            capture_output=True, timeout=120, check=True, text=True,
        ).stdout
        # The plots' axes name the task's metric, not "Objective 0" / "Objective Value".
        assert ">accuracy<" in dom and "Objective 0" not in dom
    finally:
        server.terminate()
        server.wait(timeout=10)
