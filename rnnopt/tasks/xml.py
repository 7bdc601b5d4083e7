"""XML modelling: next-character prediction over the paper's synthetic XML.

Generator: open a root tag, then at each step close the most recently opened tag with
probability 1/2, or always once ``force_close_after`` (50) steps have passed, else open a new
tag; stop when no tag is open. Tag names have 2-10 random lowercase letters. No whitespace
(layout unconfirmed). The text ends with the end marker ``.``, e.g.
``<pegshmnaj><zbhbmg></zbhbmg><zfqjk></zfqjk></pegshmnaj>.``

Scored: every character (including the end marker). Metrics: ``accuracy`` (primary, over all
characters) and ``closing_accuracy`` (over the characters of closing tags ``</name>``, the
part that needs memory).
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from rnnopt.errors import ConfigError
from rnnopt.tasks._base import END, Instance, Option
from rnnopt.tasks._generated import HELDOUT_OPTIONS, STREAM_OPTION, GeneratedTask
from rnnopt.tasks._registry import register

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@register
class Xml(GeneratedTask):
    name: ClassVar[str] = "xml"
    description: ClassVar[str] = (
        "synthetic nested XML tags; next-character accuracy (closing tags need memory)"
    )
    metric: ClassVar[str] = "accuracy"
    direction: ClassVar[str] = "maximize"
    options_spec: ClassVar[tuple[Option, ...]] = (
        Option("min_tag", 2, int, 1, 20, "fewest letters in a tag name"),
        Option("max_tag", 10, int, 1, 20, "most letters in a tag name"),
        Option("close_prob", 0.5, float, 0.01, 1.0, "probability of closing at each step"),
        Option("force_close_after", 50, int, 1, 1000, "steps after which tags only close"),
        *HELDOUT_OPTIONS,
        STREAM_OPTION,
    )
    extra_metrics: ClassVar[dict[str, tuple[str, str]]] = {
        "closing_accuracy": ("closing_correct", "closing_count"),
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["min_tag"] > self.options["max_tag"]:
            raise ConfigError(
                f"xml: option min_tag={self.options['min_tag']} is larger than "
                f"max_tag={self.options['max_tag']}; allowed: min_tag <= max_tag"
            )

    def generate(self, rng: random.Random) -> Instance:
        lo, hi = self.options["min_tag"], self.options["max_tag"]
        close_prob, force = self.options["close_prob"], self.options["force_close_after"]
        parts: list[str] = []
        closing: list[int] = []
        length = 0
        stack: list[str] = []
        step = 0
        while True:
            if stack and (step >= force or rng.random() < close_prob):
                tag = f"</{stack.pop()}>"
                closing.extend(range(length, length + len(tag)))
            elif not stack and step > 0:
                break
            else:
                name = "".join(rng.choices(LETTERS, k=rng.randint(lo, hi)))
                stack.append(name)
                tag = f"<{name}>"
            parts.append(tag)
            length += len(tag)
            step += 1
        text = "".join(parts) + END
        return Instance(text=text, scored=tuple(range(len(text))), key=text,
                        extra={"closing": tuple(closing)})

