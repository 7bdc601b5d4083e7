"""Trainer throughput against a minimal hand-written PyTorch loop with nn.LSTM.

Both sides train the same model shape (embedding -> nn.LSTM -> linear head, plain SGD, global
norm clipping, truncated BPTT with carried state) on the same batches (the task's train stream
from the same seed), in the same process, in interleaved repeats. The trainer runs the
``nn-lstm`` cell (torch.nn.LSTM inside rnnopt's cell interface); the paper's own ``lstm`` cell is
timed as well for reference. tokens/s counts scored training tokens over training steps only
(evaluation excluded on both sides).

    python benchmarks/trainer.py                      # print the table
    python benchmarks/trainer.py --out                # also append it to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import logging
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from rnnopt import tasks
from rnnopt._cli import run_cli
from rnnopt.errors import ConfigError
from rnnopt.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def hand_written_loop(
    task_name: str, hidden: int, batch_size: int, unroll: int, steps: int, device: str
) -> float:
    """tokens/s of the minimal loop: what one would write by hand for this job."""
    task = tasks.get(task_name)
    torch.manual_seed(0)
    stream = task.batches("train", batch_size=batch_size, unroll=unroll, seed=0)
    emb = nn.Embedding(task.input_size, hidden).to(device)
    lstm = nn.LSTM(hidden, hidden).to(device)
    head = nn.Linear(hidden, task.output_size).to(device)
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    for p in params:
        nn.init.uniform_(p, -(hidden**-0.5), hidden**-0.5)
    opt = torch.optim.SGD(params, lr=1.0)
    state = None
    tokens, total_loss = 0, 0.0
    start = time.perf_counter()
    for batch in itertools.islice(stream, steps):
        batch = batch.to(device)
        if batch.reset or state is None:
            state = None
        else:
            state = tuple(s.detach() for s in state)
        out, state = lstm(emb(batch.inputs), state)
        logits = head(out)
        loss = nn.functional.cross_entropy(logits[batch.mask], batch.targets[batch.mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        total_loss += loss.item()
        tokens += batch.tokens
    return tokens / (time.perf_counter() - start)


def trainer(
    task_name: str, cell: str, hidden: int, batch_size: int, unroll: int, steps: int, device: str
) -> float:
    config = TrainConfig(
        task=task_name,
        cell=cell,
        hidden_size=hidden,
        batch_size=batch_size,
        unroll=unroll,
        max_steps=steps,
        eval_interval=steps,
        eval_batches=1,
        lr=1.0,
        device=device,
    )
    return train(config, progress=False).tokens_per_s


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        cpu = fields.get("Model name", platform.processor()).strip()
        cores = fields.get("CPU(s)", "?").strip()
        desc = f"{cpu}, {cores} CPU(s)"
    except (OSError, subprocess.CalledProcessError):
        desc = platform.processor() or platform.machine()
    if torch.cuda.is_available():
        desc += f"; {torch.cuda.get_device_name(0)}"
    return desc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="ptb", help="a token task (default ptb)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--unroll", type=int, default=35)
    parser.add_argument("--steps", type=int, default=100, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args(argv)
    if tasks.get(args.task).input_kind != "tokens":
        raise ConfigError(f"--task {args.task!r} must be a token task (the loop uses an embedding)")
    torch.set_num_threads(args.threads)
    logging.getLogger("rnnopt").setLevel(logging.WARNING)
    shape = (args.hidden, args.batch_size, args.unroll, args.steps, args.device)
    rows: dict[str, list[float]] = {"hand-written nn.LSTM": [], "trainer nn-lstm": [],
                                    "trainer lstm": []}  # fmt: skip
    trainer(args.task, "nn-lstm", args.hidden, args.batch_size, args.unroll, 10, args.device)
    for _ in range(args.repeats):  # interleaved so that machine load hits every side alike
        rows["hand-written nn.LSTM"].append(hand_written_loop(args.task, *shape))
        rows["trainer nn-lstm"].append(trainer(args.task, "nn-lstm", *shape))
        rows["trainer lstm"].append(trainer(args.task, "lstm", *shape))
    base = statistics.median(rows["hand-written nn.LSTM"])
    lines = [
        f"{args.task}, H={args.hidden}, batch {args.batch_size}, unroll {args.unroll}, "
        f"{args.steps} steps x {args.repeats} interleaved repeats, {args.threads} thread(s), "
        f"device {args.device}; median tokens/s",
        "",
        "| loop | tokens/s (median) | ms/step | runs | overhead vs hand-written |",
        "|---|---|---|---|---|",
    ]
    for name, values in rows.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:,.0f}" for v in values)
        ms = 1000 * args.batch_size * args.unroll / med
        overhead = 100 * (base / med - 1)
        lines.append(f"| {name} | {med:,.0f} | {ms:.1f} | {runs} | {overhead:+.1f}% |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        stamp = datetime.date.today().isoformat()
        command = " ".join(["python benchmarks/trainer.py", *(argv or sys.argv[1:])])
        header = (
            f"\n## Trainer ({stamp})\n\n`{command}`"
            f" on {machine()}, torch {torch.__version__}, Python {platform.python_version()}.\n"
            "Target: the trainer's overhead over the hand-written loop <= 10%.\n\n"
        )
        with RESULTS.open("a") as f:
            f.write(header + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
