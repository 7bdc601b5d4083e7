"""The report over a database with known contents: tables, files and warnings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from rnnopt import paper, report
from rnnopt._cli import run_cli


def test_report_tables_and_warnings_on_a_known_database(filled_sqlite: str) -> None:
    rep = report.build_report(filled_sqlite, min_trials=10)
    assert rep.tasks == ["arith", "xml", "ptb"]  # the paper's column order
    assert rep.cells == ["lstm", "lstm-b", "gru"]  # the paper's row order
    header, rows = report.table1_rows(rep)
    assert header == ["cell", "Arith", "XML", "PTB"]
    assert rows == [
        ["lstm", "0.7 (paper 0.892)", "0.41 (paper 0.425)", "95 (paper 0.0891)"],
        ["lstm-b", "– (paper 0.902)", "0.45 (paper 0.444)", "– (paper 0.0895)"],
        ["gru", "0.8 (paper 0.896)", "0.46 (paper 0.46)", "– (paper 0.0907)"],
    ]
    assert rep.warnings == [
        "arith/gru: only 1 completed trial (< 10): too few to compare",
        "arith/lstm: only 2 completed trials (< 10): too few to compare",
        "ptb/lstm: only 5 completed trials (< 10): too few to compare",
        "xml/gru: only 3 completed trials (< 10): too few to compare",
        "xml/lstm: best trial #11: clip_norm=20 sits at the upper edge of the grid "
        "{1, 2.5, 5, 10, 20}; widen the range",
        "xml/lstm: best trial #11: layers=4 sits at the upper edge of [1, 4]; widen the range",
        "xml/lstm-b: only 2 completed trials (< 10): too few to compare",
    ]
    # Importance only where there are enough completed trials; normalised over the 5 params.
    assert list(rep.importance) == [("xml", "lstm")]
    imp = rep.importance[("xml", "lstm")]
    assert set(imp) == {"lr", "clip_norm", "init_scale", "layers", "hidden_size"}
    assert sum(imp.values()) == pytest.approx(1.0)
    ablation = {(r["task"], r["cell"], r["factor"]): r for r in rep.ablation}
    cell_row = ablation[("xml", "lstm-b", "cell vs lstm")]
    assert cell_row["delta"] == pytest.approx(0.04) and cell_row["effect"] == "better"
    gate_row = ablation[("arith", "lstm", "input_gate")]
    assert (gate_row["best_a"], gate_row["best_b"], gate_row["effect"]) == (0.5, 0.7, "better")
    board = {(r["task"], r["cell"]): r for r in rep.leaderboard()}
    assert board[("xml", "lstm")]["median_top10"] == pytest.approx(0.405)
    assert board[("ptb", "lstm")]["best_test"] == pytest.approx(95 * 0.99)


def test_report_files(filled_sqlite: str, tmp_path: Path) -> None:
    rep = report.build_report(filled_sqlite, tasks=["xml"], importance="ped-anova")
    assert rep.tasks == ["xml"]
    html_files = report.write_report(rep, tmp_path / "html", fmt="html")
    names = sorted(p.name for p in html_files)
    assert names == [
        "compute_xml.png", "curves_xml_gru.png", "curves_xml_lstm-b.png", "curves_xml_lstm.png",
        "importance_xml_lstm.png", "index.html",
    ]
    page = (tmp_path / "html" / "index.html").read_text()
    for png in [p for p in html_files if p.suffix == ".png"]:
        assert f"src='plots/{png.name}'" in page
        with Image.open(png) as im:
            assert im.size[0] >= 300 and len(im.getcolors(1 << 16) or range(1000)) > 20
    assert "0.45 (paper 0.444)" in page and "widen the range" in page
    md = report.write_report(rep, tmp_path / "md", fmt="md", plots=False)
    text = md[0].read_text()
    assert md == [tmp_path / "md" / "report.md"]
    assert "| lstm | 0.41 (paper 0.425) |" in text and "## Warnings" in text
    csv_files = report.write_report(rep, tmp_path / "csv", fmt="csv", plots=False)
    with (tmp_path / "csv" / "table1.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert {(r["cell"], r["ours"], r["paper"]) for r in table} == {
        ("lstm", "0.41", "0.425"), ("lstm-b", "0.45", "0.444"), ("gru", "0.46", "0.46"),
    }
    assert {p.name for p in csv_files} >= {"leaderboard.csv", "importance.csv", "ablation.csv"}


def test_report_cli(filled_sqlite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    code = run_cli(report.main, ["--storage", filled_sqlite, "--task", "ptb", "--out", str(out),
                                 "--format", "md", "--no-plots"])
    assert code == 0
    assert "| lstm | 95 (paper 0.0891) |" in capsys.readouterr().out
    assert (out / "report.md").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage", "nonsense"], "error: bad storage URL 'nonsense'; expected "
                                    "sqlite:///PATH, postgresql://USER@HOST/DB or "
                                    "mysql://USER@HOST/DB"),
        (["--task", "music"], "error: unknown task 'music': this storage has studies for arith, "
                              "ptb, xml"),
        (["--format", "md", "--min-trials", "1"], "error: min_trials must be at least 2, got 1"),
    ],
)
def test_report_cli_errors(
    filled_sqlite: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = args if "--storage" in args else ["--storage", filled_sqlite, *args]
    assert run_cli(report.main, argv) == 2
    assert capsys.readouterr().err == message + "\n"


def test_no_rnnopt_studies_is_an_error(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import optuna

    optuna.create_study(storage=sqlite_url, study_name="not-rnnopt")
    assert run_cli(report.main, ["--storage", sqlite_url]) == 2
    assert "no rnnopt studies" in capsys.readouterr().err


def test_paper_numbers() -> None:
    assert set(paper.TABLE1) == set(paper.CELL_ORDER)
    assert paper.paper_value("MUT1", "xml") == 0.475
    assert paper.paper_value("lstm", "music") is None
    assert min(paper.PTB_DROPOUT_TEST_PERPLEXITY, key=paper.PTB_DROPOUT_TEST_PERPLEXITY.get) == (
        "lstm-b"
    )
