"""The user-data tasks: ``text`` (char and word level) and ``series`` (CSV, .npy, .npz), their
split and vocabulary rules, normalisation, batches, metrics, cache, and every bad-data case."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from user_data import write_corpus, write_sensors

from rnnopt import tasks
from rnnopt.errors import DataError
from rnnopt.tasks import _data, text


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_data, "_memory", {})


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- text ------------------------------------------------------------------------------------


def test_text_char_level_splits_by_lines_and_orders_the_vocabulary(tmp_path: Path) -> None:
    lines = ["ab" * (i % 3 + 1) + "c" for i in range(20)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    task = tasks.get("text", data=str(tmp_path / "c.txt"))
    assert (task.metric, task.direction, task.input_kind, task.stateful) == (
        "bpc", "minimize", "tokens", True)
    counts = {}
    for line in lines[:16]:  # 20 lines: 16 train, 2 valid, 2 test
        for ch in [*line, "\n"]:
            counts[ch] = counts.get(ch, 0) + 1
    assert task.vocab == [*sorted(counts, key=lambda s: (-counts[s], s)), "<unk>"]
    info = task.info()
    assert [info["splits"][s]["lines"] for s in ("train", "valid", "test")] == [16, 2, 2]
    decoded = "".join(task.vocab[i] for i in task.stream("valid").tolist())
    assert decoded == "\n".join(lines[16:18]) + "\n"
    assert task.input_size == task.output_size == len(task.vocab)


def test_text_word_level_with_held_out_files_and_unknown_words(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("a b a\nb a c\n")
    (tmp_path / "v.txt").write_text("a zebra\n")
    (tmp_path / "s.txt").write_text("c a\r\nb\r\n")  # CRLF line ends
    task = tasks.get("text", data=str(tmp_path / "t.txt"), valid=str(tmp_path / "v.txt"),
                     test=str(tmp_path / "s.txt"), level="word")
    assert task.metric == "perplexity"
    assert task.vocab == ["a", "<eos>", "b", "c", "<unk>"]  # ties: "<" before "b"
    words = lambda split: [task.vocab[i] for i in task.stream(split).tolist()]  # noqa: E731
    assert words("valid") == ["a", "<unk>", "<eos>"]
    assert words("test") == ["c", "a", "<eos>", "b", "<eos>"]
    assert task.info()["splits"]["valid"]["unknown"] == 1


def test_text_cap_and_min_count_map_rare_symbols_to_unk(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a a a b b c\n" * 10)
    capped = tasks.get("text", data=str(path), level="word", max_vocab=3)
    assert capped.vocab == ["a", "b", "<unk>"]  # <eos> (10) ties... below a (30) and b (20)
    assert capped.info()["splits"]["train"]["unknown"] == 8 * 2  # c and <eos> of 8 lines
    rare = tasks.get("text", data=str(path), level="word", min_count=15)
    assert rare.vocab == ["a", "b", "<unk>"]


def test_text_metrics_bits_per_character_and_perplexity(tmp_path: Path) -> None:
    task = tasks.get("text", data=str(write_corpus(tmp_path / "c.txt")))
    nll, count = 1000.0, 800.0
    out = task.summarize({"nll": nll, "correct": 200.0, "count": count})
    assert out["bpc"] == pytest.approx(nll / count / math.log(2))
    assert out["perplexity"] == pytest.approx(math.exp(nll / count))
    assert out["accuracy"] == 0.25


@pytest.mark.parametrize("masked", [0, 3])
def test_stream_batch_stats_count_only_the_mask(tmp_path: Path, masked: int) -> None:
    """Full windows take the no-copy path, a stream's padded last window the masked one; both
    give the summed negative log-likelihood of the scored positions."""
    task = tasks.get("text", data=str(write_corpus(tmp_path / "c.txt")))
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, task.output_size, generator=g)
    targets = torch.randint(task.output_size, (5, 4), generator=g)
    mask = torch.ones(5, 4, dtype=torch.bool)
    if masked:
        mask[-1, :masked] = False
        targets[-1, :masked] = 0
    stats = task.batch_stats(logits, tasks.Batch(logits.argmax(-1), targets, mask))
    logp = torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    assert stats["nll"] == pytest.approx(float(-logp[mask].sum()), rel=1e-5)
    assert stats["count"] == 20 - masked
    assert stats["correct"] == float((logits.argmax(-1) == targets)[mask].sum())


def test_text_batches_are_contiguous_windows_with_state_carried(tmp_path: Path) -> None:
    task = tasks.get("text", data=str(write_corpus(tmp_path / "c.txt")))
    batches = list(task.batches("valid", batch_size=4, unroll=10))
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    assert batches[0].inputs.dtype == torch.int64 and batches[0].inputs.shape == (10, 4)
    assert torch.equal(batches[0].targets[:-1], batches[0].inputs[1:])
    assert torch.equal(batches[1].inputs[0], batches[0].targets[-1])


def test_text_second_load_comes_from_the_disk_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_corpus(tmp_path / "c.txt")
    first = tasks.get("text", data=str(path), level="word")
    monkeypatch.setattr(_data, "_memory", {})

    def no_parse(*args: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(text, "_parse", no_parse)
    second = tasks.get("text", data=str(path), level="word")
    assert second.vocab == first.vocab
    assert torch.equal(second.stream("test"), first.stream("test"))
    with pytest.raises(AssertionError, match="parsed again"):  # other options: another entry
        tasks.get("text", data=str(path), level="word", min_count=2)


def test_text_identity_is_content_and_options_not_the_file_name(tmp_path: Path) -> None:
    a = write_corpus(tmp_path / "a.txt")
    b = tmp_path / "b.txt"
    b.write_bytes(a.read_bytes())
    assert tasks.get("text", data=str(a)).identity == tasks.get("text", data=str(b)).identity
    assert tasks.get("text", data=str(a)).identity != tasks.get(
        "text", data=str(a), level="word").identity
    b.write_text(a.read_text() + "one more line\n")
    assert tasks.get("text", data=str(a)).identity != tasks.get("text", data=str(b)).identity


# --- series ----------------------------------------------------------------------------------


def test_series_csv_regression_splits_in_time_and_normalises_from_training(
    tmp_path: Path,
) -> None:
    path = write_sensors(tmp_path / "s.csv", series=3, steps=100)
    task = tasks.get("series", data=str(path), series="sensor", target="temp")
    assert (task.metric, task.direction, task.input_kind) == ("mse", "minimize", "real")
    assert (task.input_size, task.output_size) == (2, 1)  # temp, humid in; temp out
    info = task.info()
    assert info["channels"] == ["temp", "humid"] and info["targets"] == ["temp"]
    assert {s: info["splits"][s]["steps"] for s in info["splits"]} == {
        "train": 240, "valid": 30, "test": 30}
    train = torch.cat(task.data["train"])
    assert train.mean(0).abs().max() < 1e-5
    assert (train.std(0, unbiased=False) - 1).abs().max() < 1e-4
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2))
    first_valid = (raw[80] - task.data["mean"].numpy()) / task.data["std"].numpy()
    assert np.allclose(task.data["valid"][0][0].numpy(), first_valid, atol=1e-5)


def test_series_regression_batches(tmp_path: Path) -> None:
    task = tasks.get("series", data=str(write_sensors(tmp_path / "s.csv", series=3, steps=200)),
                     series="sensor", target="humid")
    b = next(task.batches("train", batch_size=5, unroll=8, seed=1))
    assert b.inputs.shape == (8, 5, 2) and b.targets.shape == (8, 5, 1) and b.reset
    assert torch.equal(b.targets[:-1, :, 0], b.inputs[1:, :, 1])
    again = next(task.batches("train", batch_size=5, unroll=8, seed=1))
    other = next(task.batches("train", batch_size=5, unroll=8, seed=2))
    assert torch.equal(b.inputs, again.inputs) and not torch.equal(b.inputs, other.inputs)
    valid = list(task.batches("valid", batch_size=2, unroll=8))  # 3 series x 20 steps
    assert sum(v.inputs.shape[1] for v in valid) == 3 * 2  # windows at 0 and 8 of each
    out = torch.zeros_like(b.targets)
    stats = task.batch_stats(out, b)
    assert task.summarize(stats)["mse"] == pytest.approx(float((b.targets**2).mean()))
    assert task.summarize(stats)["mae"] == pytest.approx(float(b.targets.abs().mean()))


def test_series_csv_classification_by_label_column(tmp_path: Path) -> None:
    path = write_sensors(tmp_path / "s.csv", series=20, steps=30)
    task = tasks.get("series", data=str(path), series="sensor", label="kind",
                     channels="temp,humid")
    assert (task.metric, task.direction, task.output_size) == ("accuracy", "maximize", 2)
    assert task.data["valid_keys"] == ["s8", "s18"] and task.data["test_keys"] == ["s9", "s19"]
    (b,) = list(task.batches("valid", batch_size=4, unroll=5))
    assert b.inputs.shape == (30, 2, 2) and b.mask.sum() == 2 and b.mask[-1].all()
    assert b.targets[-1].tolist() == [task.data["classes"].index("lo")] * 2


def test_series_numpy_shapes_and_npz_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "one.npy", np.sin(np.arange(200) / 5))
    assert tasks.get("series", data=str(tmp_path / "one.npy")).input_size == 1
    np.save(tmp_path / "two.npy", rng.normal(size=(200, 3)))
    task = tasks.get("series", data=str(tmp_path / "two.npy"), target="2")
    assert (task.input_size, task.output_size) == (3, 1)
    x = rng.normal(size=(30, 12, 2)).astype(np.float32)
    np.savez(tmp_path / "many.npz", x=x, y=np.arange(30) % 3)
    task = tasks.get("series", data=str(tmp_path / "many.npz"), label="y")
    assert task.data["classes"] == ["0", "1", "2"] and len(task.data["train"]) == 24
    regression = tasks.get("series", data=str(tmp_path / "many.npz"))
    assert len(regression.data["train"]) == 30 and regression.data["train"][0].shape == (10, 2)


# --- bad data: one line naming the file (and line where it makes sense) ----------------------


def _text(tmp_path: Path, content: bytes | str, **options: object) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    tasks.get("text", data=str(path), **options)


def _csv(tmp_path: Path, content: str, **options: object) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    tasks.get("series", data=str(path), **options).check_data(batch_size=2, unroll=5)


ROWS = [f"{i},{math.sin(i):.3f}\n" for i in range(40)]
GOOD_ROWS = "".join(ROWS)


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: tasks.get("text", data=str(p / "nope.txt")), ["nope.txt", "not found"]),
        (lambda p: _text(p, ""), ["bad.txt", "is empty"]),
        (lambda p: _text(p, "one\ntwo\nthree\n"), ["valid split is empty", "at least 10"]),
        (lambda p: _text(p, b"ok\n" * 5 + b"caf\xe9\n" + b"ok\n" * 9),
         ["bad.txt: line 6, column 4", "not UTF-8"]),
        (lambda p: _text(p, "a b c d\n" * 20, level="word", max_vocab=3, unk=""),
         ["5 symbols, over max_vocab=3", "unk"]),
        (lambda p: _text(p, "c\n" + "a b\n" * 20, level="word", min_count=2, unk=""),
         ["'c' occurs 1 times", "min_count=2"]),
        (lambda p: tasks.get("series", data=str(p / "nope.csv")), ["nope.csv", "not found"]),
        (lambda p: _csv(p, "t,v\n" + "".join(ROWS[:6]) + "1,2,3\n" + GOOD_ROWS),
         ["bad.csv: line 8 has 3 fields", "header has 2"]),
        (lambda p: _csv(p, "t,v\n" + GOOD_ROWS + "40,nan\n"),
         ["bad.csv: line 42, column v", "not a finite number"]),
        (lambda p: _csv(p, "t,v\n" + GOOD_ROWS + "40,inf\n"), ["line 42, column v", "finite"]),
        (lambda p: _csv(p, "t,v\n" + GOOD_ROWS + "40,warm\n"), ["line 42", "'warm' is not"]),
        (lambda p: _csv(p, "t,v\n" + GOOD_ROWS, target="temp"),
         ["unknown target column 'temp'", "channels: t, v"]),
        (lambda p: _csv(p, "t,v\n" + "".join(ROWS[:20])),  # 20 steps: 2 in valid
         ["has 2 steps in the valid split", "unroll + 1 = 6"]),
        (lambda p: _csv(p, "id,v,k\n" + "".join(f"{i // 5},{i},x\n" for i in range(100)),
                        series="id", label="k"),
         ["label 'k' has one class", "at least two"]),
        (lambda p: _csv(p, "t,v\n"), ["no data rows"]),
        (lambda p: (p / "bad.csv").write_bytes(b"t,v\n1,2\n3,\xb04\n") and tasks.get(
            "series", data=str(p / "bad.csv")), ["bad.csv: line 3, column 3: not UTF-8"]),
        (lambda p: _csv(p, "t,v\n" + "".join(ROWS[:3])),
         ["valid split", "is empty", "at least 10 steps"]),
    ],
    ids=["text-missing", "text-empty", "text-empty-split", "text-not-utf8", "vocab-over-cap",
         "vocab-min-count", "csv-missing", "csv-ragged", "csv-nan", "csv-inf", "csv-text",
         "csv-unknown-target", "csv-shorter-than-unroll", "csv-one-class", "csv-no-rows",
         "csv-not-utf8",
         "csv-empty-split"],
)
def test_bad_data_is_one_data_error_naming_the_problem(make, needles, tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        make(tmp_path)
    message = one_line(exc)
    for needle in needles:
        assert needle in message, message


def test_unseen_held_out_symbol_without_unk_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("a b\n")
    (tmp_path / "v.txt").write_text("a\nb z\n")
    with pytest.raises(DataError) as exc:
        tasks.get("text", data=str(tmp_path / "t.txt"), valid=str(tmp_path / "v.txt"),
                  test=str(tmp_path / "t.txt"), level="word", unk="")
    assert "v.txt: line 2: 'z' is not in the training vocabulary" in one_line(exc)


def test_numpy_non_finite_and_bad_shapes(tmp_path: Path) -> None:
    x = np.zeros((3, 50, 2))
    x[1, 7, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"x.npy: .*non-finite value \(nan\) at series 1, step 7"):
        tasks.get("series", data=str(tmp_path / "x.npy"))
    np.save(tmp_path / "y.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(DataError, match=r"shape \(2, 2, 2, 2\); expected"):
        tasks.get("series", data=str(tmp_path / "y.npy"))
    (tmp_path / "z.npy").write_text("not numpy")
    with pytest.raises(DataError, match=r"z\.npy: not a NumPy"):
        tasks.get("series", data=str(tmp_path / "z.npy"))


def test_options_are_checked(tmp_path: Path) -> None:
    path = write_corpus(tmp_path / "c.txt")
    with pytest.raises(Exception, match="level='byte' is not allowed; allowed: char, word"):
        tasks.get("text", data=str(path), level="byte")
    with pytest.raises(DataError, match="both valid and test"):
        tasks.get("text", data=str(path), valid=str(path))
    with pytest.raises(DataError, match="no data file; give one with --data"):
        tasks.get("text")
    with pytest.raises(DataError, match=r"unknown data format '\.txt'"):
        tasks.get("series", data=str(path))


def test_tasks_command_takes_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rnnopt._cli import run_cli
    from rnnopt.tasks.__main__ import main

    path = write_corpus(tmp_path / "c.txt")
    assert run_cli(main, ["info", "--task", "text", "--data", str(path), "-o", "level=word",
                          "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metric"] == "perplexity"
    assert info["vocabulary_size"] == 16  # 14 words, <eos>, <unk>
    assert run_cli(main, ["info", "--task", "text"]) == 2
    assert capsys.readouterr().err == (
        "error: text: no data file; give one with --data FILE (task option data)\n")
