"""Arithmetic: add or subtract two integers of up to 8 digits, read through distractor letters.

Text: ``<a><op><b>=<answer>.`` with random lowercase distractor letters inserted between
successive input characters (up to and including the gap before ``=``), e.g.
``3e36d9-h1h39f94eeh43keg3c=-13991064.`` (3369 - 13994433). The number of distractors in each
gap is geometric with mean ``distractor_rate`` (default 1.0: the paper's example has 12 in 13
gaps; the paper's exact rate is unconfirmed). Scored: the answer characters after ``=``,
including the end marker ``.`` (predicting where the answer stops is part of the answer).
Metrics: ``accuracy`` (primary: next-character accuracy over the scored characters, teacher
forcing) and ``exact_match`` (fraction of instances whose scored characters are all right).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from rnnopt.tasks._base import END, Instance, Option
from rnnopt.tasks._generated import HELDOUT_OPTIONS, STREAM_OPTION, GeneratedTask
from rnnopt.tasks._registry import register

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@register
class Arith(GeneratedTask):
    name: ClassVar[str] = "arith"
    description: ClassVar[str] = (
        "a +/- b with distractor letters, up to 8 digits each; accuracy on the answer"
    )
    metric: ClassVar[str] = "accuracy"
    direction: ClassVar[str] = "maximize"
    options_spec: ClassVar[tuple[Option, ...]] = (
        Option("max_digits", 8, int, 1, 18, "most digits per operand (length uniform 1..max)"),
        Option("distractor_rate", 1.0, float, 0.0, 20.0,
               "expected distractor letters between two input characters (unconfirmed)"),
        Option("negative_rate", 0.5, float, 0.0, 1.0,
               "probability that an operand is negative (unconfirmed)"),
        *HELDOUT_OPTIONS,
        STREAM_OPTION,
    )
    extra_metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "exact_match": ("exact", "instances"),
    }

    def space_size(self) -> float:
        values = 10 ** self.options["max_digits"]
        signed = values * (2 if self.options["negative_rate"] > 0 else 1) - 1
        return float(signed * signed * 2)

    def _operand(self, rng: random.Random) -> int:
        digits = rng.randint(1, self.options["max_digits"])
        value = rng.randint(0, 9) if digits == 1 else rng.randint(10 ** (digits - 1),
                                                                  10**digits - 1)
        if rng.random() < self.options["negative_rate"]:
            value = -value
        return value

    def generate(self, rng: random.Random) -> Instance:
        a, b = self._operand(rng), self._operand(rng)
        op = rng.choice("+-")
        answer = a + b if op == "+" else a - b
        question = f"{a}{op}{b}="
        rate = self.options["distractor_rate"]
        keep = rate / (1.0 + rate)  # geometric count with mean `rate`
        parts = [question[0]]
        for ch in question[1:]:
            while rate > 0 and rng.random() < keep:
                parts.append(rng.choice(LETTERS))
            parts.append(ch)
        text = "".join(parts) + f"{answer}{END}"
        start = len(text) - len(str(answer)) - 1
        return Instance(text=text, scored=tuple(range(start, len(text))), key=f"{a}{op}{b}")

    def describe(self, inst: Instance) -> dict[str, Any]:
        row = super().describe(inst)
        row["equation"] = f"{inst.key}={inst.text[inst.scored[0]:-1]}"
        return row


__all__ = ["Arith"]
