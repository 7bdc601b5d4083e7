"""``rnnopt COMMAND ...`` (the console script) and ``python -m rnnopt COMMAND ...``: one way in
to every command; ``rnnopt study ...`` is ``python -m rnnopt.study ...`` and so on."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from rnnopt._cli import EXIT_USAGE, run_cli

# command -> (module with main(argv), one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "study": ("rnnopt.study", "compare cells (or search over them) as Optuna studies"),
    "report": ("rnnopt.report.__main__", "Table 1 beside the paper, intervals, importance, plots"),
    "dashboard": ("rnnopt.dashboard", "optuna-dashboard on 127.0.0.1 with rnnopt's notes"),
    "db": ("rnnopt.db", "install or drop the read-only SQL views (db views)"),
    "tasks": ("rnnopt.tasks.__main__", "list, describe and sample the tasks"),
    "evolve": ("rnnopt.evolve.__main__", "the paper's architecture search"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: rnnopt COMMAND [ARGS ...]   (rnnopt COMMAND --help for its options)", ""]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else EXIT_USAGE
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; allowed: {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv[0] = f"rnnopt {name}"
    return run_cli(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
