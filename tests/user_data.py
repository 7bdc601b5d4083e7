"""Writers of small user data files for the ``text`` and ``series`` tasks (deterministic)."""

from __future__ import annotations

import math
import random
from pathlib import Path

WORDS = "the cat sat on a mat and the dog ran to it while birds sang".split()


def write_corpus(path: Path, lines: int = 400, seed: int = 0) -> Path:
    """A text file of short sentences over a 15-word vocabulary, one per line."""
    rng = random.Random(seed)
    text = "\n".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 11))) for _ in range(lines)
    )
    path.write_text(text + "\n", encoding="utf-8")
    return path


def write_sensors(path: Path, series: int = 12, steps: int = 250, seed: int = 0) -> Path:
    """A CSV of ``series`` noisy periodic series (columns sensor, temp, humid, kind): temp is a
    sine, humid a cosine of another period, kind a label (hi/lo) that sets temp's amplitude."""
    rng = random.Random(seed)
    rows = ["sensor,temp,humid,kind"]
    for s in range(series):
        phase, amp = rng.uniform(0, 6), 2.0 if s % 2 else 1.0
        for i in range(steps):
            temp = amp * math.sin(i / 8 + phase) + 0.1 * rng.gauss(0, 1)
            humid = math.cos(i / 5 + phase) + 0.1 * rng.gauss(0, 1)
            rows.append(f"s{s},{temp:.4f},{humid:.4f},{'hi' if s % 2 else 'lo'}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
