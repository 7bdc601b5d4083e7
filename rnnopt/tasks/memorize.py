"""Memorisation: read ``length`` (5) symbols out of ``symbols`` (26, the letters a-z), then
reproduce them. The architecture search's first filter.

Text: ``<symbols>=<symbols>.``, e.g. ``qwxkb=qwxkb.``. Scored: the reproduced symbols after
``=`` (not the end marker, which always follows after ``length`` symbols). Metric:
``accuracy`` over the scored characters (primary); also ``exact_match``.
"""

from __future__ import annotations

import random
from typing import ClassVar

from rnnopt.tasks._base import END, Instance, Option
from rnnopt.tasks._generated import HELDOUT_OPTIONS, GeneratedTask
from rnnopt.tasks._registry import register

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@register
class Memorize(GeneratedTask):
    name: ClassVar[str] = "memorize"
    description: ClassVar[str] = "read 5 symbols of 26, then reproduce them; accuracy on the copy"
    metric: ClassVar[str] = "accuracy"
    direction: ClassVar[str] = "maximize"
    options_spec: ClassVar[tuple[Option, ...]] = (
        Option("length", 5, int, 1, 50, "symbols to memorise"),
        Option("symbols", 26, int, 2, 26, "alphabet size (the first letters a..z)"),
        *HELDOUT_OPTIONS,
    )
    extra_metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "exact_match": ("exact", "instances"),
    }

    def space_size(self) -> float:
        return float(self.options["symbols"]) ** self.options["length"]

    def generate(self, rng: random.Random) -> Instance:
        n = self.options["length"]
        seq = "".join(rng.choices(LETTERS[: self.options["symbols"]], k=n))
        text = f"{seq}={seq}{END}"
        return Instance(text=text, scored=tuple(range(n + 1, 2 * n + 1)), key=seq)
