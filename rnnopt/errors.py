"""The exception hierarchy that rnnopt's command lines turn into one-line messages.

Inside the package, code raises and never prints; at the edges (``python -m rnnopt.*``) an
:class:`RnnoptError` becomes one line on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "RnnoptError", "StorageError"]


class RnnoptError(Exception):
    """A user mistake or an environment problem with a message fit to show as one line."""


class ConfigError(RnnoptError, ValueError):
    """A bad option, name or value; the message names the value and what is allowed."""


class DataError(RnnoptError):
    """A missing or corrupt data file; the message names the file (and position)."""


class StorageError(RnnoptError):
    """A bad or unreachable storage URL, or a study that cannot be opened as asked."""
