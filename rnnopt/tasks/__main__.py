"""``python -m rnnopt.tasks``: list the tasks, show one task's sizes, look at its instances.

    python -m rnnopt.tasks list
    python -m rnnopt.tasks info --task ptb [--data-dir D] [--json]
    python -m rnnopt.tasks info --task text --data corpus.txt [-o level=word]
    python -m rnnopt.tasks sample --task arith -n 5 --seed 0 [--split valid] [--jsonl]
    python -m rnnopt.tasks fetch ptb|music|jsb|nottingham|piano-midi|musedata|all [--data-dir D]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from rnnopt import tasks
from rnnopt._cli import add_plugin_option, run_cli
from rnnopt.errors import ConfigError

# Tasks that need no data files; the others are listed without loading their data.
_GENERATED = ("arith", "xml", "memorize")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rnnopt.tasks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every task with its metric and direction")
    info = sub.add_parser("info", help="sizes, vocabulary, metric and splits of one task")
    sample = sub.add_parser("sample", help="readable instances of one task")
    fetch = sub.add_parser("fetch", help="download the paper's data sets, checked, into the "
                           "data directory")
    fetch.add_argument("what", help="ptb, music (the four sets), one music set, or all")
    fetch.add_argument("--data-dir", default=None,
                       help="data directory (default: $RNNOPT_DATA, else ./data)")
    fetch.add_argument("--url-base", default=None,
                       help="a mirror laid out like https://raw.githubusercontent.com "
                       "(default: $RNNOPT_FETCH_URL, else that)")
    for p in (info, sample):
        p.add_argument("--task", required=True, help="task name (see `list`)")
        p.add_argument("--data-dir", default=None,
                       help="data directory (default: $RNNOPT_DATA, else ./data)")
        p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                       help="task option, e.g. -o max_digits=4 (repeatable)")
        p.add_argument("--data", default=None, metavar="FILE",
                       help="your data file for text or series (task option data)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    sample.add_argument("-n", type=int, default=5, help="number of instances (default 5)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the training stream")
    sample.add_argument("--split", default="train", help="train (default), valid or test")
    sample.add_argument("--jsonl", action="store_true",
                        help="one JSON object per line with text and scored positions")
    return add_plugin_option(parser)


def _list() -> None:
    rows = [(name, cls.metric, cls.direction, cls.description)
            for name in tasks.names() for cls in [tasks.task_class(name)]]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    header = ("task", "metric", "direction", "description")
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3])


def _info(task: tasks.Task, as_json: bool) -> None:
    info = task.info()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if isinstance(value, dict) and not value:
            print(f"{key}: none")
        elif isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        elif isinstance(value, list):
            print(f"{key} ({len(value)}): {' '.join(map(str, value))}")
        else:
            print(f"{key}: {value}")


def _sample(task: tasks.Task, n: int, seed: int, split: str, jsonl: bool) -> None:
    if n < 1:
        raise ConfigError(f"-n {n} must be at least 1")
    rows = task.sample(n, seed=seed, split=split)
    for row in rows:
        if jsonl:
            print(json.dumps(row))
            continue
        print(row["text"])
        if task.name in _GENERATED:
            scored = set(row["scored"])
            print("".join("^" if i in scored else " " for i in range(len(row["text"]))).rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        _list()
        return 0
    if args.command == "fetch":
        from rnnopt.tasks._fetch import fetch

        root = fetch(args.what, data_dir=args.data_dir, url_base=args.url_base,
                     say=lambda line: print(line, flush=True))
        print(f"data directory: {root}")
        return 0
    options = dict(map(tasks.parse_option, args.option))
    if args.data is not None:
        options["data"] = args.data
    task = tasks.get(args.task, data_dir=args.data_dir, **options)
    if args.command == "info":
        _info(task, args.json)
    else:
        _sample(task, args.n, args.seed, args.split, args.jsonl)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
