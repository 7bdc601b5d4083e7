"""Loading and encoding the user's data: a ~100 MB text corpus (character and word level) and
a 1M-row CSV of 8 channels, the first time (empty cache) and again from the disk cache.

    python benchmarks/user_data.py [--dir DIR] [--mb 100] [--rows 1000000]

Each load runs in a fresh process (so the in-memory cache does not help the second one) and
reports wall time and memory: the peak resident set (VmHWM) minus the resident set after the
imports (torch, numpy), i.e. what the load itself added at its peak. Targets (issue 13): under
60 s the first time, under 5 s cached, that peak at most 3x the file size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from rnnopt import tasks

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
base = rss("VmRSS:")
start = time.perf_counter()
task = tasks.get(sys.argv[2], **json.loads(sys.argv[3]))
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "peak_added": rss("VmHWM:") - base, "base": base,
                  "info": {k: task.info()[k] for k in ("input_size", "splits")}}))
"""


def write_corpus(path: Path, mb: float) -> None:
    """Lines of 4-14 words drawn (Zipf-like) from 20,000 made-up words, some non-ASCII."""
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyzéüß"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))
             for _ in range(20_000)]
    weights = [1 / (i + 1) for i in range(len(words))]
    target = int(mb * 1e6)
    with path.open("w", encoding="utf-8") as fh:
        written = 0
        while written < target:
            chunk = rng.choices(words, weights, k=200_000)
            lines, i = [], 0
            while i < len(chunk):
                n = rng.randint(4, 14)
                lines.append(" ".join(chunk[i : i + n]))
                i += n
            text = "\n".join(lines) + "\n"
            fh.write(text)
            written += len(text.encode("utf-8"))


def write_csv(path: Path, rows: int) -> None:
    """``rows`` rows of 8 noisy periodic channels and a time column."""
    rng = random.Random(0)
    with path.open("w") as fh:
        fh.write("t," + ",".join(f"c{j}" for j in range(8)) + "\n")
        for i in range(rows):
            fh.write(f"{i}," + ",".join(
                f"{math.sin(i / (5 + 3 * j)) + 0.1 * rng.random():.5f}" for j in range(8)) + "\n")


def load(task: str, options: dict[str, str], cache: Path) -> dict[str, object]:
    env = {**os.environ, "RNNOPT_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(REPO), task, json.dumps(options)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", help="where to write the files (default: a temporary directory)")
    p.add_argument("--mb", type=float, default=100.0, help="size of the text corpus in MB")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the CSV")
    args = p.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="rnnopt-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    corpus, table = root / "corpus.txt", root / "sensors.csv"
    if not corpus.exists():
        write_corpus(corpus, args.mb)
    if not table.exists():
        write_csv(table, args.rows)
    cases = [
        ("text", {"data": str(corpus)}, corpus),
        ("text", {"data": str(corpus), "level": "word"}, corpus),
        ("series", {"data": str(table), "target": "c0"}, table),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print("| data | options | file MB | first load s | cached s | first peak added MB "
          "(x file) | cached peak added MB |")
    print("|---|---|---|---|---|---|---|")
    for task, options, path in cases:
        cache = root / f"cache-{task}-{options.get('level', '')}"
        for f in cache.glob("*"):
            f.unlink()
        first = load(task, options, cache)
        again = load(task, options, cache)
        size = path.stat().st_size
        shown = {k: v for k, v in options.items() if k != "data"}
        print(f"| {path.name} ({task}) | {shown or '-'} | {size / 1e6:.1f} | "
              f"{first['wall_s']:.1f} | {again['wall_s']:.2f} | "
              f"{first['peak_added'] / 1e6:.0f} ({first['peak_added'] / size:.2f}x) | "
              f"{again['peak_added'] / 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"total {time.time() - start:.0f} s", file=sys.stderr)
