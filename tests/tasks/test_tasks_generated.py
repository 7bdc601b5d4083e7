"""Generated tasks (arith, xml, memorize): correctness of instances, what is scored, batching,
determinism and the held-out / training partition."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import pytest
import torch

from rnnopt import tasks
from rnnopt.errors import ConfigError
from rnnopt.tasks._base import INDEX, PAD_ID, START_ID, VOCAB, Batch, Instance, Task
from rnnopt.tasks._generated import BUCKET_POOL

GENERATED = ["arith", "xml", "memorize"]


def fake_output(targets: torch.Tensor, right: torch.Tensor, vocab: int) -> torch.Tensor:
    """Logits ``[T, B, V]`` whose argmax is the target exactly where ``right`` is True."""
    wrong = (targets + 1) % vocab
    pick = torch.where(right, targets, wrong)
    return torch.nn.functional.one_hot(pick, vocab).float() * 5.0


def decode(column: torch.Tensor) -> str:
    return "".join(VOCAB[i] for i in column.tolist() if i != PAD_ID)


# --- arith ---------------------------------------------------------------------------------

def test_arith_instances_are_correct_equations() -> None:
    task = tasks.get("arith")
    gaps = distractors = 0
    rows = task.sample(2000, seed=3) + task.sample(300, split="valid")
    for row in rows:
        text = row["text"]
        assert text.endswith(".")
        question, answer = text[:-1].split("=")
        assert re.fullmatch(r"-?\d+", answer)
        stripped = re.sub("[a-z]", "", question)
        m = re.fullmatch(r"(-?\d+)([+-])(-?\d+)", stripped)
        assert m, text
        a, op, b = int(m[1]), m[2], int(m[3])
        assert len(m[1].lstrip("-")) <= 8 and len(m[3].lstrip("-")) <= 8
        assert int(answer) == (a + b if op == "+" else a - b), text
        assert not question[0].isalpha()  # distractors only between input characters
        # scored: the answer characters after '=' and the end marker, nothing else
        eq = text.index("=")
        assert row["scored"] == list(range(eq + 1, len(text)))
        assert row["equation"] == f"{stripped}={answer}"
        gaps += len(stripped)  # gaps between successive characters of "<a><op><b>="
        distractors += len(question) - len(stripped)
    assert 0.9 < distractors / gaps < 1.1  # default distractor_rate 1.0


def test_arith_options_change_the_generator() -> None:
    plain = tasks.get("arith", max_digits=3, distractor_rate=0.0, negative_rate=0.0)
    for row in plain.sample(500, seed=0):
        assert re.fullmatch(r"\d{1,3}[+-]\d{1,3}=-?\d+\.", row["text"]), row["text"]
    busy = tasks.get("arith", distractor_rate=5.0)
    letters = sum(len(re.findall("[a-z]", r["text"])) for r in busy.sample(200))
    assert letters > 200 * 5 * 5  # at least 6 gaps per instance, 5 letters each on average


# --- xml -----------------------------------------------------------------------------------

def test_xml_instances_are_well_formed() -> None:
    task = tasks.get("xml")
    for row in task.sample(1000, seed=5) + task.sample(200, split="test"):
        text = row["text"]
        assert text.endswith(".")
        body = text[:-1]
        root = ET.fromstring(body)  # raises on malformed XML or a mismatched closing tag
        for element in root.iter():
            assert re.fullmatch("[a-z]{2,10}", element.tag)
            assert element.text is None and not element.attrib
        stack, opened = [], 0
        closing_positions = []
        for m in re.finditer(r"<(/?)([a-z]+)>", body):
            if m[1]:
                assert stack.pop() == m[2]
                closing_positions.extend(range(m.start(), m.end()))
            else:
                stack.append(m[2])
                opened += 1
        assert not stack and "".join(re.findall(r"</?[a-z]+>", body)) == body
        assert opened <= 50  # tags only close after 50 steps
        assert row["scored"] == list(range(len(text)))
        assert row["closing"] == closing_positions


def test_xml_generator_statistics() -> None:
    """Roughly half the steps close a tag; tag lengths are uniform on 2..10."""
    rows = tasks.get("xml").sample(500, seed=9)
    lengths = [len(t) for r in rows for t in re.findall(r"<([a-z]+)>", r["text"])]
    assert set(lengths) == set(range(2, 11))
    assert 5.5 < sum(lengths) / len(lengths) < 6.5
    depth1 = sum(1 for r in rows if re.fullmatch(r"<([a-z]+)></\1>\.", r["text"]))
    assert 0.4 < depth1 / len(rows) < 0.6  # first step after the root closes with p = 1/2


# --- memorize ------------------------------------------------------------------------------

def test_memorize_instances() -> None:
    task = tasks.get("memorize")
    for row in task.sample(500, seed=1):
        m = re.fullmatch(r"([a-z]{5})=\1\.", row["text"])
        assert m, row["text"]
        assert row["scored"] == [6, 7, 8, 9, 10]
    small = tasks.get("memorize", symbols=3, length=7, valid_size=10, test_size=10)
    assert all(set(r["text"][:7]) <= set("abc") for r in small.sample(100))


# --- batches and what is scored ------------------------------------------------------------

def first_batch(task: Task, *, batch_size: int, unroll: int, seed: int) -> tuple[Batch, list]:
    """The first train batch and the rows (``sample``) of its columns, in column order: the
    stream is bucketed by length, so its columns come from the first pool of instances."""
    batch = next(task.batches("train", batch_size=batch_size, unroll=unroll, seed=seed))
    pool = {r["text"]: r for r in task.sample(batch_size * BUCKET_POOL, seed=seed)}
    rows = [pool[decode(batch.targets[:, b])] for b in range(batch.targets.shape[1])]
    return batch, rows


@pytest.mark.parametrize("name", GENERATED)
def test_train_stream_is_bucketed_by_length(name: str) -> None:
    """Each pool of the stream holds exactly the stream's instances, grouped by length."""
    task = tasks.get(name)
    n = 8 * BUCKET_POOL
    batches = list(itertools.islice(task.batches("train", batch_size=8, unroll=35, seed=3),
                                    BUCKET_POOL))
    texts = sorted(decode(b.targets[:, c]) for b in batches for c in range(8))
    assert texts == sorted(r["text"] for r in task.sample(n, seed=3))
    padding = sum(int((~b.mask).sum()) for b in batches) / sum(b.mask.numel() for b in batches)
    unsorted = [task.collate([task.instance("train", i + j, 3) for j in range(8)])
                for i in range(0, n, 8)]
    padding_unsorted = sum(int((~b.mask).sum()) for b in unsorted) / sum(
        b.mask.numel() for b in unsorted)
    assert padding <= padding_unsorted


@pytest.mark.parametrize("name", GENERATED)
def test_batch_layout(name: str) -> None:
    task = tasks.get(name)
    assert task.input_kind == "tokens" and not task.stateful
    assert task.input_size == task.output_size == len(VOCAB)
    batch, rows = first_batch(task, batch_size=16, unroll=7, seed=4)
    T, B = batch.inputs.shape
    assert B == 16 and T == max(len(r["text"]) for r in rows)  # unroll is ignored
    assert batch.inputs.dtype == batch.targets.dtype == torch.int64
    assert batch.mask.dtype == torch.bool and batch.reset
    assert batch.tokens == int(batch.mask.sum()) == sum(len(r["scored"]) for r in rows)
    for b, row in enumerate(rows):
        text, n = row["text"], len(row["text"])
        assert decode(batch.targets[:, b]) == text
        assert batch.inputs[0, b] == START_ID
        assert batch.inputs[1:n, b].tolist() == [INDEX[c] for c in text[:-1]]
        assert (batch.inputs[n:, b] == PAD_ID).all() and (batch.targets[n:, b] == PAD_ID).all()
        assert batch.mask[:, b].nonzero().flatten().tolist() == row["scored"]


@pytest.mark.parametrize("name", GENERATED)
def test_scored_is_exactly_what_the_metric_counts(name: str) -> None:
    """A fake model right at a random set of positions (scored or not): the metric equals the
    fraction of the `scored` positions that are right."""
    task = tasks.get(name)
    batch, rows = first_batch(task, batch_size=12, unroll=35, seed=7)
    gen = torch.Generator().manual_seed(0)
    right = torch.rand(batch.targets.shape, generator=gen) < 0.6
    out = fake_output(batch.targets, right, task.output_size)
    metrics = task.summarize(task.batch_stats(out, batch))
    hits = sum(bool(right[p, b]) for b, r in enumerate(rows) for p in r["scored"])
    assert metrics["accuracy"] == pytest.approx(hits / sum(len(r["scored"]) for r in rows))
    assert task.metric in metrics
    if name == "xml":
        hits = sum(bool(right[p, b]) for b, r in enumerate(rows) for p in r["closing"])
        total = sum(len(r["closing"]) for r in rows)
        assert metrics["closing_accuracy"] == pytest.approx(hits / total)
    if name in ("arith", "memorize"):
        exact = sum(all(bool(right[p, b]) for p in r["scored"]) for b, r in enumerate(rows))
        assert metrics["exact_match"] == pytest.approx(exact / len(rows))
    # outputs at unscored positions change neither the loss nor the metrics
    noisy = out.clone()
    noisy[~batch.mask] = torch.randn(int((~batch.mask).sum()), task.output_size, generator=gen)
    assert task.loss(noisy, batch) == pytest.approx(float(task.loss(out, batch)))
    assert task.summarize(task.batch_stats(noisy, batch)) == metrics


def test_metrics_by_hand() -> None:
    arith = tasks.get("arith")
    insts = [
        Instance("1+2=3.", scored=(4, 5), key="1+2"),
        Instance("a9-10=-1.", scored=(6, 7, 8), key="9-10"),
    ]
    batch = arith.collate(insts)
    right = torch.zeros(batch.targets.shape, dtype=torch.bool)
    right[4, 0] = right[5, 0] = True  # first answer all right
    right[6, 1] = True  # second: '-' right, '1' and '.' wrong
    right[0, 1] = True  # unscored, must not count
    out = fake_output(batch.targets, right, arith.output_size)
    metrics = arith.summarize(arith.batch_stats(out, batch))
    assert metrics == {"accuracy": pytest.approx(3 / 5), "exact_match": pytest.approx(1 / 2)}
    # loss: mean cross-entropy over the 5 scored positions, by hand
    logits = torch.zeros_like(out)
    logits[4, 0, INDEX["3"]] = 2.0
    expected = (-torch.log_softmax(torch.tensor([2.0] + [0.0] * 44), 0)[0]
                + 4 * torch.log(torch.tensor(45.0))) / 5
    assert float(arith.loss(logits, batch)) == pytest.approx(float(expected), rel=1e-5)

    xml = tasks.get("xml")
    inst = Instance("<ab></ab>.", scored=tuple(range(10)), key="x",
                    extra={"closing": (4, 5, 6, 7, 8)})
    batch = xml.collate([inst])
    right = torch.zeros(batch.targets.shape, dtype=torch.bool)
    right[[0, 1, 4, 9], 0] = True
    out = fake_output(batch.targets, right, xml.output_size)
    metrics = xml.summarize(xml.batch_stats(out, batch))
    assert metrics == {"accuracy": pytest.approx(0.4), "closing_accuracy": pytest.approx(0.2)}


# --- determinism and held-out sets ---------------------------------------------------------

@pytest.mark.parametrize("name", GENERATED)
def test_determinism(name: str) -> None:
    def first(split: str, seed: int, n: int = 3) -> list[torch.Tensor]:
        it = tasks.get(name).batches(split, batch_size=8, unroll=35, seed=seed)
        return [next(it).targets for _ in range(n)]

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True))

    assert same(first("train", 1), first("train", 1))
    assert not same(first("train", 1), first("train", 2))
    assert same(first("valid", 1), first("valid", 2))  # held-out sets ignore the trial seed
    assert not same(first("valid", 0), first("test", 0))
    task = tasks.get(name)
    assert task.instance("train", 11, seed=5) == task.instance("train", 11, seed=5)
    valid = list(task.batches("valid", batch_size=300, unroll=35))
    assert sorted(b.inputs.shape[1] for b in valid) == [100, 300, 300, 300]


@pytest.mark.parametrize(
    ("name", "options"),
    [("arith", {}), ("xml", {}), ("memorize", {}),
     # a small space, where many training draws hit held-out problems and must be redrawn
     ("memorize", {"symbols": 4, "length": 6, "valid_size": 150, "test_size": 150})],
)
def test_no_heldout_instance_in_100k_training_instances(name: str, options: dict) -> None:
    task = tasks.get(name, **options)
    held = task.heldout()
    valid_keys = {i.key for i in held["valid"]}
    test_keys = {i.key for i in held["test"]}
    assert len(held["valid"]) == task.options["valid_size"]
    assert not valid_keys & test_keys
    train_keys = {task.instance("train", i, seed=0).key for i in range(100_000)}
    assert not train_keys & (valid_keys | test_keys)
    if options:
        first_draws = {task._draw("train", 0, i, 0).key for i in range(2000)}
        assert first_draws & (valid_keys | test_keys)  # the rejection really happened


# --- options -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "options", "words"),
    [
        ("arith", {"max_digits": 0}, ["max_digits=0", "[1, 18]"]),
        ("arith", {"distractor_rate": -0.5}, ["distractor_rate=-0.5", "[0, 20]"]),
        ("arith", {"max_digits": 2.5}, ["max_digits=2.5", "integer"]),
        ("arith", {"max_digits": "8"}, ["max_digits='8'"]),
        ("arith", {"digits": 3}, ["'digits'", "max_digits"]),
        ("arith", {"max_digits": 1}, ["too few"]),
        ("xml", {"min_tag": 5, "max_tag": 3}, ["min_tag=5", "max_tag=3"]),
        ("xml", {"close_prob": 0}, ["close_prob=0"]),
        ("memorize", {"symbols": 27}, ["symbols=27", "[2, 26]"]),
        ("memorize", {"valid_size": 0}, ["valid_size=0"]),
    ],
)
def test_bad_options(name: str, options: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        tasks.get(name, **options)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_registry() -> None:
    assert tasks.names() == sorted(
        ["arith", "xml", "memorize", "ptb", "nottingham", "piano-midi", "musedata", "jsb",
         "text", "series"]
    )
    with pytest.raises(ConfigError, match=r"unknown task 'lm'.*arith.*xml"):
        tasks.get("lm")
    for name in tasks.names():
        cls = tasks.task_class(name)
        assert cls.direction in ("maximize", "minimize") and cls.metric and cls.description
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        next(tasks.get("arith").batches("dev", batch_size=2, unroll=5))
    with pytest.raises(ConfigError, match="batch_size=0"):
        next(tasks.get("arith").batches("train", batch_size=0, unroll=5))


@pytest.mark.parametrize("name", GENERATED)
def test_heldout_batches_are_bucketed_but_not_in_length_order(name: str) -> None:
    """Held-out batches group similar lengths, but their order is shuffled once, so an
    evaluation over the first few batches is not an evaluation over the shortest instances."""
    task = tasks.get(name)
    batches = list(task.batches("valid", batch_size=20, unroll=35))
    texts = sorted(decode(b.targets[:, c]) for b in batches for c in range(b.targets.shape[1]))
    assert texts == sorted(r["text"] for r in task.sample(1000, split="valid"))
    lengths = [b.inputs.shape[0] for b in batches]
    assert len(set(lengths)) == 1 or lengths != sorted(lengths)  # memorize: one length
    assert list(task.batches("valid", batch_size=20, unroll=35)) == batches  # fixed order


# --- xml as a stream (stream = true) -------------------------------------------------------

def _unstream(batches: list[Batch], column: int) -> tuple[list[int], list[int], list[bool],
                                                          list[bool]]:
    """One column of a run of stream windows, joined: inputs, targets, mask, closing."""
    inputs, targets, mask, closing = [], [], [], []
    for batch in batches:
        keep = batch.targets[:, column] != PAD_ID
        inputs += batch.inputs[:, column][keep].tolist()
        targets += batch.targets[:, column][keep].tolist()
        mask += batch.mask[:, column][keep].tolist()
        closing += batch.extra["closing"][:, column][keep].tolist()
    return inputs, targets, mask, closing


def test_xml_stream_train_columns_read_instances_back_to_back() -> None:
    """Column b reads training instances b, b+B, ... as one text, windows of `unroll`, the
    state carried (reset only first); the instances are those of the unstreamed task."""
    task = tasks.get("xml", stream=True)
    plain = tasks.get("xml")
    assert task.stateful and not plain.stateful
    B, unroll, seed = 4, 13, 3
    it = task.batches("train", batch_size=B, unroll=unroll, seed=seed)
    batches = [next(it) for _ in range(60)]
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    assert all(b.inputs.shape == (unroll, B) for b in batches)
    for column in range(B):
        inputs, targets, mask, closing = _unstream(batches, column)
        assert len(targets) == 60 * unroll
        insts = [plain.instance("train", i, seed) for i in range(column, 400 * B, B)]
        text = "".join(inst.text for inst in insts)
        assert "".join(VOCAB[i] for i in targets) == text[: len(targets)]
        assert inputs == [START_ID, *targets[:-1]]
        assert all(mask)  # xml scores every character
        want = [False] * len(text)
        offset = 0
        for inst in insts:
            for p in inst.extra["closing"]:
                want[offset + p] = True
            offset += len(inst.text)
        assert closing == want[: len(targets)]


def test_xml_stream_heldout_covers_each_instance_once() -> None:
    task = tasks.get("xml", stream=True, valid_size=103)
    valid = task.heldout()["valid"]
    assert [i.text for i in valid] == [i.text for i in tasks.get("xml", valid_size=103)
                                       .heldout()["valid"]]
    batches = list(task.batches("valid", batch_size=5, unroll=35))
    assert batches[0].reset and not any(b.reset for b in batches[1:])
    joined = "".join(
        "".join(VOCAB[i] for i in _unstream(batches, c)[1]) for c in range(5)
    )
    assert joined == "".join(i.text for i in valid)
    assert sum(b.tokens for b in batches) == sum(len(i.text) for i in valid)
    # read once: a second pass gives the same windows
    again = list(task.batches("valid", batch_size=5, unroll=35))
    assert all(torch.equal(a.targets, b.targets) for a, b in zip(batches, again, strict=True))


def test_xml_stream_metrics_match_the_instance_layout() -> None:
    """A model that is right exactly on the closing characters scores the same closing and
    overall accuracy whichever layout the held-out set is read in."""
    results = []
    for stream in (False, True):
        task = tasks.get("xml", stream=stream, valid_size=50)
        stats: dict[str, float] = {}
        for batch in task.batches("valid", batch_size=4, unroll=20):
            right = batch.extra["closing"]
            out = fake_output(batch.targets, right, task.output_size)
            for k, v in task.batch_stats(out, batch).items():
                stats[k] = stats.get(k, 0.0) + v
        results.append(task.summarize(stats))
    assert results[0] == pytest.approx(results[1])
    assert results[0]["closing_accuracy"] == 1.0


def test_arith_stream_scores_only_the_answers_read_back_to_back() -> None:
    """arith with stream = true: column b reads problems b, b+B, ... back to back, only the
    answer characters scored; accuracy equals the instance layout's for the same predictions,
    and exact_match (undefined across windows) is not reported."""
    task, plain = tasks.get("arith", stream=True), tasks.get("arith")
    assert task.stateful and not plain.stateful
    B, unroll, seed = 3, 11, 5
    it = task.batches("train", batch_size=B, unroll=unroll, seed=seed)
    batches = [next(it) for _ in range(40)]
    for column in range(B):
        targets = torch.cat([b.targets[:, column] for b in batches]).tolist()
        mask = torch.cat([b.mask[:, column] for b in batches]).tolist()
        insts = [plain.instance("train", i, seed) for i in range(column, 200 * B, B)]
        text = "".join(inst.text for inst in insts)
        assert "".join(VOCAB[i] for i in targets) == text[: len(targets)]
        want, offset = [False] * len(text), 0
        for inst in insts:
            for p in inst.scored:
                want[offset + p] = True
            offset += len(inst.text)
        assert mask == want[: len(mask)]
    results = []
    for layout in (plain, task):
        layout = tasks.get("arith", stream=layout.stateful, valid_size=40)
        stats: dict[str, float] = {}
        for batch in layout.batches("valid", batch_size=4, unroll=20):
            right = batch.targets % 2 == 0  # by character: the same in both layouts
            out = fake_output(batch.targets, right, layout.output_size)
            for k, v in layout.batch_stats(out, batch).items():
                stats[k] = stats.get(k, 0.0) + v
        results.append(layout.summarize(stats))
    assert "exact_match" in results[0] and "exact_match" not in results[1]
    assert 0 < results[1]["accuracy"] < 1
    assert results[1]["accuracy"] == pytest.approx(results[0]["accuracy"])


def test_xml_stream_option_is_checked() -> None:
    with pytest.raises(ConfigError, match="stream=1 must be true or false"):
        tasks.get("xml", stream=1)
