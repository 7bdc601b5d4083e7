"""``python -m rnnopt.evolve``: run (or resume, or join) an architecture search; ``report``;
``confirm`` (more settings for the best genomes)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rnnopt import schema, userdata
from rnnopt._cli import add_plugin_option, run_cli, setup_logging
from rnnopt.attrs import json_value
from rnnopt.cells import MAX_LAYERS
from rnnopt.errors import ConfigError
from rnnopt.evolve.config import Confirm, SearchConfig
from rnnopt.evolve.search import Evolution, run_worker
from rnnopt.storage import DEFAULT_URL, add_storage_arguments, mask_url, storage_url
from rnnopt.tasks import parse_option
from rnnopt.workers import EXIT_WORKER_FAILED, describe_failures, run_pool

logger = logging.getLogger("rnnopt.evolve")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _task_option(text: str) -> tuple[str, str, Any]:
    """``TASK.KEY=VALUE`` -> (task, key, value), the value parsed as the tasks CLI does."""
    task, dot, pair = text.partition(".")
    if not dot or not task:
        raise ConfigError(
            f"bad task option {text!r}; allowed: TASK.KEY=VALUE, e.g. xml.stream=true"
        )
    key, value = parse_option(pair)
    return task.strip(), key.strip(), value


def _task_steps(text: str) -> tuple[tuple[str, int], ...]:
    """``TASK=N,TASK=N`` -> ((task, n), ...)."""
    out = []
    for part in _csv(text):
        task, eq, n = part.partition("=")
        if not eq or not task.strip() or not n.strip().isdigit():
            raise ConfigError(
                f"bad --task-steps entry {part!r}; allowed: TASK=STEPS, e.g. memorize=1500"
            )
        out.append((task.strip(), int(n)))
    return tuple(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnopt.evolve",
        description="Evolve recurrent cells (Jozefowicz et al. 2015) with every genome and "
        "evaluation stored in Optuna storage. Rerun the same command to resume; run it on more "
        "machines with the same --storage and --run to cooperate. "
        "'python -m rnnopt.evolve report' prints the best genomes; "
        "'python -m rnnopt.evolve confirm' re-evaluates them on more settings.",
    )
    p.add_argument(
        "--tasks",
        default="memorize,arith,xml",
        help="comma-separated tasks, in filter order (default: memorize,arith,xml); a task "
        "scored by a metric other than accuracy is compared with the GRU by that metric",
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="[TASK=]FILE",
        help="your data file, e.g. corpus.txt or text=corpus.txt (task option data; "
        "repeatable, one per task); see docs/your-data.md",
    )
    add_storage_arguments(p, default=DEFAULT_URL, env_default="RNNOPT_STORAGE")
    p.add_argument("--run", default="default", help="run name (studies evolve/<run>/...)")
    p.add_argument(
        "--generations",
        type=int,
        default=100,
        help="search steps (mutations and re-evaluations) after the seeds",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument(
        "--settings",
        type=int,
        default=20,
        help="random hyperparameter settings per genome and task (paper: 20)",
    )
    p.add_argument("--max-steps", type=int, default=2000, help="training steps per evaluation")
    p.add_argument(
        "--task-steps",
        default="",
        metavar="TASK=N,...",
        help="training steps for some tasks instead of --max-steps, e.g. memorize=1500",
    )
    p.add_argument(
        "--eval-batches",
        type=int,
        default=None,
        help="validation batches per evaluation (default: the whole split)",
    )
    p.add_argument("--hidden", type=int, default=64, help="hidden units of every cell")
    p.add_argument("--layers", default="1", help="layer counts to sample from (paper: 1,2,3,4)")
    p.add_argument("--population", type=int, default=100, help="population size (paper: 100)")
    p.add_argument(
        "--seeds",
        default=",".join(SearchConfig.seeds),
        help="known cells the population starts from (paper: lstm,gru; gru is required, "
        "every score is relative to it)",
    )
    p.add_argument(
        "--references",
        default=None,
        help="known cells evaluated beside the seeds for the report, not in the population "
        "(default: those of mut1,mut2,mut3 that are not seeds; 'none': skip)",
    )
    p.add_argument(
        "--parents",
        default="all",
        help="members a step draws its parent from: all (the paper's) or passing (score at "
        "least the filters' 0.9; not part of the run's identity)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--heartbeat",
        type=int,
        default=30,
        help="heartbeat seconds; a worker silent for 4x this is taken as crashed",
    )
    p.add_argument(
        "--optimizer",
        default="sgd",
        help="sgd (the paper's, lr grid 0.1..5) or adam (lr grid 0.001..0.01)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=1,
        help="evaluations without improvement before the learning rate is halved",
    )
    p.add_argument(
        "-o",
        "--task-option",
        action="append",
        default=[],
        metavar="TASK.KEY=VALUE",
        help="a task option, e.g. xml.stream=true (repeatable)",
    )
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--unroll", type=int, default=35)
    p.add_argument("-v", "--verbose", action="store_true")
    return add_plugin_option(p)


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnopt.evolve report",
        description="Best genomes of a search beside LSTM, GRU, MUT1-3.",
    )
    add_storage_arguments(p, default=DEFAULT_URL, env_default="RNNOPT_STORAGE")
    p.add_argument("--run", default=None, help="one run (default: every run in the storage)")
    p.add_argument("--top", type=int, default=5, help="found genomes to show per run")
    return add_plugin_option(p)


def confirm_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnopt.evolve confirm",
        description="Re-evaluate the best genomes of a search run (and any cells named) on new "
        "settings, the GRU on the same ones, until each has --rounds confirmation rounds. The "
        "run's own options apply; rerun the same command to resume.",
    )
    add_storage_arguments(p, default=DEFAULT_URL, env_default="RNNOPT_STORAGE")
    p.add_argument("--run", default="default", help="the search run")
    p.add_argument("--top", type=int, default=3, help="best found genomes to confirm (0: none)")
    p.add_argument(
        "--cell",
        action="append",
        default=[],
        help="also confirm this known cell (lstm, mut1, mut2, mut3) or genome text (repeatable)",
    )
    p.add_argument("--rounds", type=int, default=2, help="confirmation rounds per genome")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--device", default="cpu")
    p.add_argument("--heartbeat", type=int, default=30)
    p.add_argument("-v", "--verbose", action="store_true")
    return add_plugin_option(p)


def _check_workers(args: argparse.Namespace) -> None:
    if args.workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {args.workers}")
    if args.heartbeat < 1:
        raise ConfigError(f"--heartbeat must be a positive integer, got {args.heartbeat}")


def _targets(storage: str, run: str, top: int, cells: list[str]) -> tuple[str, ...]:
    """Genome texts to confirm: the ``top`` best found members, then ``cells`` (names or text)."""
    from rnnopt.evolve.genome import parse
    from rnnopt.evolve.known import KNOWN_TEXTS, known
    from rnnopt.evolve.report import scores

    if top < 0:
        raise ConfigError(f"--top must be 0 or more, got {top}")
    _, rows = scores(storage, run)
    out = [x.genome for x in rows if x.label == "found" and x.score is not None][:top]
    for c in cells:
        g = known(c).text if c in KNOWN_TEXTS else parse(c).text
        if g not in out:
            out.append(g)
    return tuple(out)


def confirm(argv: list[str]) -> int:
    from rnnopt.evolve.report import load_run
    from rnnopt.storage import normalize_url, open_existing

    args = confirm_parser().parse_args(argv)
    setup_logging(args.verbose)
    _check_workers(args)
    url = normalize_url(storage_url(args))
    stored = load_run(open_existing(url), args.run)[0].user_attrs
    config = SearchConfig.from_identity(
        json_value(stored[schema.EVOLVE]), run=args.run, device=args.device
    )
    plan = Confirm(_targets(url, args.run, args.top, args.cell), args.rounds)
    for g in plan.genomes:
        logger.info("confirming %s", g)
    if failed := _work(url, config, args, plan):
        return _worker_failure(failed)
    logger.info(
        "confirmation of %d genome(s) finished; see: python -m rnnopt.evolve report "
        "--storage %s --run %s",
        len(plan.genomes),
        mask_url(url),
        args.run,
    )
    return 0


def _work(
    url: str, config: SearchConfig, args: argparse.Namespace, plan: Confirm | None
) -> str | None:
    """Run ``args.workers`` workers of the run here until it has nothing left to do; a line
    naming the workers that died, or None."""
    # Opening here checks the storage and the run's settings once, before any worker starts.
    first = Evolution(url, config, heartbeat=args.heartbeat, worker=0, confirm=plan)
    if args.workers == 1:
        first.work()
        return None
    first.close()
    codes = run_pool(
        run_worker,
        [
            (url, config, args.heartbeat, None, i, args.verbose, args.workers, plan)
            for i in range(args.workers)
        ],
        name="rnnopt-evolve",
        verbose=args.verbose,
    )
    return describe_failures(codes)


def _worker_failure(line: str) -> int:
    print(f"error: {line}; rerun the same command to resume", file=sys.stderr)
    return EXIT_WORKER_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from rnnopt.evolve.report import format_report

        args = report_parser().parse_args(argv[1:])
        print(format_report(storage_url(args), args.run, top=args.top))
        return 0
    if argv[:1] == ["confirm"]:
        return confirm(argv[1:])
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    _check_workers(args)
    try:
        layers = tuple(int(v) for v in _csv(args.layers))
    except ValueError:
        raise ConfigError(
            f"--layers must be integers 1-{MAX_LAYERS} separated by commas, got {args.layers!r}"
        ) from None
    seeds = _csv(args.seeds)
    tasks = _csv(args.tasks)
    data = userdata.task_options(args.data, [], tasks) if args.data else {}
    if args.references is None:
        refs = tuple(r for r in SearchConfig.references if r not in seeds)
    elif args.references.strip().lower() in ("", "none"):
        refs = ()
    else:
        refs = _csv(args.references)
    config = SearchConfig(
        tasks=tasks,
        run=args.run,
        generations=args.generations,
        settings=args.settings,
        population=args.population,
        hidden_size=args.hidden,
        layers=layers,
        max_steps=args.max_steps,
        task_steps=_task_steps(args.task_steps),
        eval_batches=args.eval_batches,
        batch_size=args.batch_size,
        unroll=args.unroll,
        references=refs,
        seeds=seeds,
        seed=args.seed,
        device=args.device,
        optimizer=args.optimizer,
        patience=args.patience,
        parents=args.parents,
        task_options=tuple(_task_option(o) for o in args.task_option)
        + tuple((t, k, v) for t, opts in data.items() for k, v in opts.items()),
    )
    url = storage_url(args)
    if failed := _work(url, config, args, None):
        return _worker_failure(failed)
    logger.info(
        "search %r finished; see: python -m rnnopt.evolve report --storage %s",
        config.run,
        mask_url(url),
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
