"""Pointing a study at data: ``--data`` and ``--task-option``, and the data identity it stores.

    --data FILE                    task option data=FILE of the one task given
    --data TASK=FILE               ... of task TASK (several tasks at once)
    --task-option KEY=VALUE        a task option of every task given (repeatable)
    --task-option TASK.KEY=VALUE   ... of task TASK

Values are read as ``rnnopt.tasks.parse_option`` reads them (JSON where it parses, else text).
A task that reads user files has an ``identity`` (see ``rnnopt.tasks._files``), stored on each
study as the user attribute ``rnnopt.data`` so that resuming with other data is refused.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from rnnopt.errors import ConfigError
from rnnopt.schema import DATA as DATA_ATTR  # noqa: F401 (re-exported)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="[TASK=]FILE",
        help="your data file, e.g. corpus.txt or series=sensors.csv (task option data; "
        "repeatable, one per task); see docs/your-data.md",
    )
    parser.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="[TASK.]KEY=VALUE",
        help="a task option, e.g. level=word or text.level=word (repeatable)",
    )


def task_options(data: Sequence[str], options: Sequence[str], tasks: Sequence[str]) -> dict[
    str, dict[str, Any]
]:
    """Per task, the options ``--data`` and ``--task-option`` give it (ConfigError naming a bad
    flag, a task not in ``tasks``, or an unqualified ``--data`` with several tasks)."""
    from rnnopt.tasks import parse_option

    out: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    for text in options:
        key, value = parse_option(text)
        task, dot, name = key.partition(".")
        targets = [task] if dot else list(tasks)
        if dot and task not in out:
            raise ConfigError(f"--task-option {text!r}: task {task!r} is not among the tasks "
                              f"of this study ({', '.join(tasks)})")
        for t in targets:
            out[t][name if dot else key] = value
    for text in data:
        task, eq, path = text.partition("=")
        if eq and task in out:
            if not path:
                raise ConfigError(f"--data {text!r}: no file after {task}=")
            out[task]["data"] = path
        elif len(tasks) == 1:
            out[tasks[0]]["data"] = text
        else:
            raise ConfigError(f"--data {text!r}: several tasks ({', '.join(tasks)}); say which "
                              f"with --data TASK=FILE")
    return out


def identity(task: Any) -> str | None:
    """The JSON identity of a task's data (files' SHA-256 and shaping options), or None for a
    task that reads no user files."""
    from rnnopt.tasks._files import identity_json

    value = getattr(task, "identity", None)
    return None if value is None else identity_json(value)


def check_resume(name: str, stored: Any, current: str | None, hint: str) -> None:
    """StorageError when study ``name`` was run on other data than ``current`` (``stored``: the
    study's ``rnnopt.data`` attribute, a JSON value or, as older databases hold it, a string)."""
    from rnnopt.attrs import json_value
    from rnnopt.errors import StorageError

    before = json_value(stored)
    now = json.loads(current) if current else {}
    if before is None or before == now:
        return
    files_before, files_now = before.get("files", {}), now.get("files", {})
    changed = sorted(k for k in {*files_before, *files_now}
                     if files_before.get(k) != files_now.get(k))
    opts_before, opts_now = before.get("options", {}), now.get("options", {})
    options = sorted(k for k in {*opts_before, *opts_now}
                     if opts_before.get(k) != opts_now.get(k))
    what = ", ".join([*(f"{k} file" for k in changed), *(f"option {k}" for k in options)])
    raise StorageError(f"study {name!r} was run on other data (changed: {what or 'data'}); "
                       f"resume it with the same files and options, or {hint}")


def data_label(task: str, data: Any, train: Any = None) -> str:
    """How readers name a task studied on the user's data: ``text (corpus.txt, 3fa2b1c9)``.

    ``data``: the study's ``rnnopt.data`` (the identity), ``train``: its ``rnnopt.train`` (whose
    task options name the file). The hash is the first 8 hex digits of the training file's
    SHA-256 (what ``sha256sum corpus.txt`` prints first), then those of given validation and
    test files, then shaping options that differ from the task's defaults (``level=word``), so
    two data sets of one task are two labels. ``task`` itself without an identity.
    """
    from rnnopt.attrs import json_value

    ident = json_value(data)
    if not isinstance(ident, dict):
        return task
    files = ident.get("files") or {}
    parts = []
    options = (json_value(train) or {}).get("task_options") or {}
    if isinstance(options, dict) and isinstance(options.get("data"), str):
        parts.append(options["data"].replace("\\", "/").rsplit("/", 1)[-1])
    parts.append(str(files.get("train", "?"))[:8])
    parts += [f"{role} {str(files[role])[:8]}" for role in ("valid", "test") if role in files]
    defaults = _option_defaults(task)
    parts += [f"{k}={v}" for k, v in sorted((ident.get("options") or {}).items())
              if k in defaults and v != defaults[k]]
    return f"{task} ({', '.join(parts)})"


def _option_defaults(task: str) -> dict[str, Any]:
    """A registered task's option defaults ({} for a task this process does not know)."""
    import rnnopt.tasks

    try:
        return {o.name: o.default for o in rnnopt.tasks.task_class(task).options_spec}
    except ConfigError:
        return {}
