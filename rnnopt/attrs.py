"""Study and trial user attributes are JSON values; databases written before 0.2 hold some of
them (``rnnopt.space``, ``rnnopt.budget``, ``rnnopt.train``, ``rnnopt.evolve``) as JSON strings.
Readers go through :func:`json_value` so that both read the same."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_value"]


def json_value(value: Any) -> Any:
    """``value`` itself, or the object a JSON-encoded object/array string stands for."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
