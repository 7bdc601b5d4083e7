"""``python -m rnnopt.study``: compare recurrent cells (or search over them) as Optuna studies.

Every task/cell pair is one Optuna study (``xml/lstm-b``) in one database; rerunning the same
command continues each study to its total ``--n-trials``; several copies of the command (on one
machine with ``--workers N``, or on several machines against PostgreSQL/MySQL) cooperate.
See docs/studies.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnopt import confirm as confirm_mod
from rnnopt import schema, userdata
from rnnopt import space as space_mod
from rnnopt._cli import (
    add_plugin_option,
    cpus,
    ignore_interrupts,
    interrupt_between_storage_calls,
    run_cli,
    setup_logging,
)
from rnnopt.attrs import json_value
from rnnopt.errors import ConfigError, StorageError
from rnnopt.samplers import (
    PRUNERS,
    SAMPLERS,
    check_options,
    make_pruner,
    make_sampler,
    startup_text,
)

__all__ = ["PRUNERS", "SAMPLERS", "Plan", "StudyDef", "build_parser", "main", "make_plan"]

# Named, not __name__: run as `python -m` this module is __main__ (__mp_main__ in workers).
logger = logging.getLogger("rnnopt.study")

MODES = schema.CELL_STUDY_MODES

# Without --study-file this study file sets the budget (calibrated on a 2-core CPU, see
# docs/studies.md): `--task xml` alone runs ten cells x 3 trials in about 15 minutes.
DEFAULT_STUDY_FILE = Path(__file__).resolve().parent / "studies" / "quick.toml"
# Fallbacks for a study file that leaves these out (the same as the default study file's).
DEFAULT_N_TRIALS = 3
DEFAULT_MAX_STEPS = 7000
DEFAULT_HIDDEN_SIZE = 128
MAX_AUTO_WORKERS = 4  # --workers auto on CPU: one single-threaded process per core, at most 4
DEFAULT_SAMPLER = "tpe"
DEFAULT_PRUNER = "median"
DEFAULT_HEARTBEAT_S = 60
MAX_HEARTBEAT_S = 86400
MAX_SEED = 2**32 - 1  # numpy's generators (and so Optuna's samplers) take 32-bit seeds
MAX_STUDY_NAME = 512  # Optuna's studies.study_name is VARCHAR(512) on PostgreSQL and MySQL
DEFAULT_MAX_RETRY = 3


@dataclass
class StudyDef:
    """One Optuna study: its name, what it trains, and its resolved search space."""

    name: str
    task: str
    cell: str  # "*" in search mode
    cells: list[str]
    mode: str
    space: dict[str, Any]
    base: dict[str, Any]
    metric: str
    direction: str
    data: str | None = None  # identity of the user's data files (rnnopt.userdata)

    @property
    def space_json(self) -> str:
        return space_mod.canonical_json(self.space)


@dataclass
class Plan:
    """Everything a worker needs; validated before any database is touched (picklable)."""

    url: str
    masked_url: str
    artifacts: str
    studies: list[StudyDef]
    n_trials: int
    max_steps: int
    sampler: str
    pruner: str
    seed: int
    sampler_seed: int | None
    timeout: float | None
    workers: int
    device: str
    heartbeat: int
    grace: int | None
    max_retry: int
    command: str
    eval_interval: int
    extra: dict[str, Any] = field(default_factory=dict)
    confirm: int = 0  # confirmation seeds per cell's best setting (rnnopt/confirm.py)
    verbose: bool = False  # per-evaluation detail of every trial in the log
    sampler_options: dict[str, Any] = field(default_factory=dict)  # [sampler] (samplers.py)
    pruner_options: dict[str, Any] = field(default_factory=dict)  # [pruner]


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnopt.study",
        description="Compare recurrent cells on the paper's tasks as Optuna studies.",
    )
    # Defaults are None so that a study file's [study] table can fill what the command omits.
    p.add_argument("--task", help="task name(s), comma-separated (e.g. xml or arith,xml,ptb)")
    p.add_argument("--cells", help="cell names, comma-separated (default: the paper's ten)")
    p.add_argument("--mode", choices=None, help="compare (one study per task and cell) | search")
    p.add_argument("--study-file", help="a study file: studies/NAME.toml or a path")
    p.add_argument(
        "--n-trials",
        type=int,
        help="trials per study, total across restarts (default: the study file's, else "
        f"{DEFAULT_N_TRIALS})",
    )
    p.add_argument(
        "--confirm",
        type=int,
        metavar="K",
        help="after the search, retrain each cell's best setting with K new seeds (trials of "
        "their own, not counted in --n-trials; default: the study file's, else 0)",
    )
    p.add_argument("--timeout", type=float, help="stop claiming new trials after SECONDS")
    p.add_argument(
        "--max-steps",
        type=int,
        help=f"training steps per trial (default: the study file's, else {DEFAULT_MAX_STEPS})",
    )
    p.add_argument("--eval-interval", type=int, help="steps between evaluations (default max/10)")
    p.add_argument(
        "--sampler",
        help=f"{' | '.join(SAMPLERS)} (default {DEFAULT_SAMPLER}; "
        "paper: random search over the paper's grids)",
    )
    p.add_argument("--pruner", help=f"{' | '.join(PRUNERS)} (default {DEFAULT_PRUNER})")
    from rnnopt.storage import add_storage_arguments

    add_storage_arguments(p)
    p.add_argument("--study-name", help="prefix of the study names (e.g. 'v2/')")
    p.add_argument(
        "--workers",
        default="auto",
        help="local worker processes, or auto (default): one per GPU with --device auto/cuda "
        f"and a GPU, else one per CPU core up to {MAX_AUTO_WORKERS}",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, help="training seed base; also seeds the sampler")
    p.add_argument("--data-dir", help="data directory (default $RNNOPT_DATA or ./data)")
    p.add_argument(
        "--artifacts",
        help="checkpoint directory (default next to the SQLite file, else ./rnnopt-artifacts)",
    )
    p.add_argument(
        "--heartbeat",
        default=DEFAULT_HEARTBEAT_S,
        help="seconds between trial heartbeats; a trial silent for twice as long is "
        f"retried (default {DEFAULT_HEARTBEAT_S})",
    )
    p.add_argument(
        "--max-retry",
        type=int,
        default=DEFAULT_MAX_RETRY,
        help=f"retries of a trial whose worker died (default {DEFAULT_MAX_RETRY})",
    )
    userdata.add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return add_plugin_option(p)


def _pick(cli: Any, file_value: Any, default: Any) -> Any:
    return cli if cli is not None else (file_value if file_value is not None else default)


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    bad = isinstance(value, bool) or not isinstance(value, int) or value < lo
    if bad or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ConfigError(f"{name} must be an integer {allowed}, got {value!r}")
    return value


def _whole_number(text: Any) -> Any:
    """A command-line number ('60', '1e10') as an int where it is whole; else unchanged."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return text
    return int(number) if number.is_integer() else number


def make_plan(args: argparse.Namespace, argv: Sequence[str] | None = None) -> Plan:
    """Validate every option (names, numbers, study file, storage) without writing anything."""
    from rnnopt import cells as cell_registry
    from rnnopt import storage
    from rnnopt import tasks as task_registry
    from rnnopt.train import TrainConfig

    sf = space_mod.load_study_file(args.study_file or str(DEFAULT_STUDY_FILE))
    fs = sf.study
    task_value = args.task or (",".join(fs["tasks"]) if "tasks" in fs else fs.get("task"))
    if not task_value:
        raise ConfigError(
            "no task given; use --task NAME (one of "
            f"{', '.join(task_registry.names())}) or a study file"
        )
    tasks = _csv(task_value)
    for t in tasks:
        if t not in task_registry.names():
            raise ConfigError(f"unknown task {t!r}; allowed: {', '.join(task_registry.names())}")
    cli_task_options = userdata.task_options(args.data, args.task_option, tasks)
    cells = (
        _csv(args.cells) if args.cells is not None else list(fs.get("cells", space_mod.PAPER_CELLS))
    )
    if not cells:
        raise ConfigError(
            f"--cells {args.cells if args.cells is not None else fs.get('cells')!r} names no "
            f"cell; allowed: comma-separated names among {', '.join(cell_registry.names())}"
        )
    for c in cells:
        if c not in cell_registry.names():
            raise ConfigError(f"unknown cell {c!r}; allowed: {', '.join(cell_registry.names())}")
    cells = list(dict.fromkeys(cells))
    mode = _pick(args.mode, fs.get("mode"), "compare")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    sampler = _pick(args.sampler, fs.get("sampler"), DEFAULT_SAMPLER)
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError(
                "sampler 'cmaes' needs the cmaes package (pip install cmaes); "
                f"allowed without it: {', '.join(s for s in SAMPLERS if s != 'cmaes')}"
            ) from None
    pruner = _pick(args.pruner, fs.get("pruner"), DEFAULT_PRUNER)
    if pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner {pruner!r}; allowed: {', '.join(PRUNERS)}")
    n_trials = _check_int(
        "--n-trials", _pick(args.n_trials, fs.get("n_trials"), DEFAULT_N_TRIALS), 1
    )
    max_steps = _check_int(
        "--max-steps", _pick(args.max_steps, fs.get("max_steps"), DEFAULT_MAX_STEPS), 1
    )
    confirm = _check_int("--confirm", _pick(args.confirm, fs.get("confirm"), 0), 0)
    sampler_options = check_options("sampler", sampler, sf.sampler, sf.path)
    pruner_options = check_options("pruner", pruner, sf.pruner, sf.path)
    from rnnopt.train._loop import resolve_device

    resolve_device(args.device)  # cuda/cuda:N must exist here
    workers = _workers(args.workers, args.device)
    heartbeat = _check_int("--heartbeat", _whole_number(args.heartbeat), 1, MAX_HEARTBEAT_S)
    max_retry = _check_int("--max-retry", args.max_retry, 0)
    timeout = _pick(args.timeout, fs.get("timeout"), None)
    if timeout is not None and (not isinstance(timeout, int | float) or not timeout > 0):
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {timeout!r}")
    seed_given = _pick(args.seed, fs.get("seed"), None)
    seed = _check_int("--seed", 0 if seed_given is None else seed_given, 0, MAX_SEED)
    prefix = _pick(args.study_name, fs.get("study_name"), "")
    if not isinstance(prefix, str) or any(ch in prefix for ch in "\n\r\t"):
        raise ConfigError(f"--study-name {prefix!r} must be a one-line string")

    train = dict(sf.train)
    eval_interval = _pick(
        args.eval_interval, train.pop("eval_interval", None), max(1, max_steps // 10)
    )
    eval_interval = _check_int("--eval-interval", eval_interval, 1)
    # Build them once now: values Optuna refuses (reduction_factor = 1, ...) fail before a study.
    make_sampler(sampler, None, n_trials=n_trials, options=sampler_options)
    make_pruner(pruner, max_steps=max_steps, eval_interval=eval_interval, options=pruner_options)
    space = sf.space
    if "hidden_size" not in space.params and "param_budget" not in space.params:
        space.params["hidden_size"] = space_mod.Param(
            "hidden_size", value=DEFAULT_HIDDEN_SIZE, integer=True
        )
    grid_mode = sampler == "paper"

    url = storage.normalize_url(storage.storage_url(args))
    masked = storage.mask_url(url)
    artifacts = (
        Path(args.artifacts).expanduser().resolve()
        if args.artifacts
        else storage.default_artifact_dir(url)
    )
    storage.check_artifact_dir(artifacts)

    studies: list[StudyDef] = []
    for task_name in tasks:
        per_task = dict(sf.task_train.get(task_name, {}))
        size = {k: per_task.pop(k) for k in ("hidden_size", "param_budget") if k in per_task}
        task_options = {
            **train.get("task_options", {}),
            **per_task.pop("task_options", {}),
            **cli_task_options[task_name],
        }
        task = task_registry.get(task_name, data_dir=args.data_dir, **task_options)
        base = {**train, **per_task, "task_options": task_options}
        base.update(
            max_steps=max_steps,
            eval_interval=eval_interval,
            device=args.device,
            data_dir=args.data_dir,
        )
        groups = [[c] for c in cells] if mode == "compare" else [cells]
        for group in groups:
            resolved = space.resolved(
                group, grid_mode=grid_mode, search=mode == "search", size=size
            )
            cell_label = group[0] if mode == "compare" else "*"
            name = f"{prefix}{task_name}/{cell_label if mode == 'compare' else 'search'}"
            if len(name) > MAX_STUDY_NAME:
                raise ConfigError(
                    f"study name {name[:40]}... is {len(name)} characters; allowed: at most "
                    f"{MAX_STUDY_NAME} (Optuna's limit): give a shorter --study-name prefix"
                )
            # Build one config from the space's first values: bad [train] settings fail now.
            for c in group:
                probe = _probe_values(resolved, c)
                from rnnopt.objective import train_settings

                extra, gates = train_settings(
                    probe, c, cell_registry.spec(c), base.get("cell_options", {})
                )
                cfg = {**base, **extra, "task": task_name, "cell": c, "seed": seed}
                cfg["cell_options"] = {**dict(base.get("cell_options", {})), **gates}
                try:
                    config = TrainConfig(**cfg)
                except TypeError as exc:
                    raise ConfigError(f"bad training settings for {name}: {exc}") from None
                task.check_data(batch_size=config.batch_size, unroll=config.unroll)
                _check_cell(config)
                _check_memory(task, config, resolved, c, workers, args.device)
            studies.append(
                StudyDef(
                    name,
                    task_name,
                    cell_label,
                    group,
                    mode,
                    resolved,
                    base,
                    task.metric,
                    task.direction,
                    userdata.identity(task),
                )
            )
    storage.check_url(url)
    command = "python -m rnnopt.study " + " ".join(
        shlex.quote(storage.mask_url(a))
        for a in (sys.argv[1:] if argv is None else argv)
    )
    return Plan(
        url=url,
        masked_url=masked,
        artifacts=str(artifacts),
        studies=studies,
        n_trials=n_trials,
        max_steps=max_steps,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        sampler_seed=seed_given,
        timeout=timeout,
        workers=workers,
        device=args.device,
        heartbeat=heartbeat,
        grace=None,
        max_retry=max_retry,
        command=command,
        eval_interval=eval_interval,
        confirm=confirm,
        sampler_options=sampler_options,
        pruner_options=pruner_options,
    )


def _check_cell(config: Any) -> None:
    """Build the cell once, tiny, with the study's options: unknown or bad options fail now."""
    from rnnopt import cells as cell_registry
    from rnnopt.train._loop import model_cell_options

    options = model_cell_options(config)
    try:
        cell_registry.build(config.cell, 2, 2, **options)
    except TypeError as exc:
        raise ConfigError(f"cell {config.cell!r} with options {options}: {exc}") from None


def _largest(dist: dict[str, Any] | None) -> Any:
    if dist is None:
        return None
    if dist["type"] == "fixed":
        return dist["value"]
    if dist["type"] == "categorical":
        return max(dist["choices"])
    return dist["high"]


def _check_memory(
    task: Any, config: Any, resolved: dict[str, Any], cell: str, workers: int, device: str
) -> None:
    """Refuse a space whose largest model cannot fit: parameters, gradients, the best weights'
    copy and the optimizer's state (4 float32 copies, 6 with Adam) plus activations, times the
    workers, against the memory available (RAM, or the GPU's free memory)."""
    from rnnopt.budget import model_parameters, solve_hidden_size
    from rnnopt.train._loop import model_cell_options

    params = resolved["params"]
    layers = int(_largest(params.get("layers")) or config.layers)
    options = model_cell_options(config)
    if "param_budget" in params:
        budget = int(_largest(params["param_budget"]))
        size = f"param_budget={budget}"
        hidden = solve_hidden_size(task, cell, budget, layers=layers, **options)
    else:
        hidden = int(_largest(params.get("hidden_size")) or config.hidden_size)
        size = f"hidden_size={hidden}"
    copies = 6 if config.optimizer == "adam" else 4
    available, where = _available_memory(device)
    # Every cell has at least one [H, H] matrix per layer: a lower bound that needs no model.
    n_params = layers * hidden * hidden + hidden * task.output_size
    if n_params * 4 * copies * workers <= available:
        n_params = model_parameters(task, cell, hidden, layers=layers, **options)
    per_position = 8 * hidden * layers + task.output_size  # gate activations and logits
    activations = 3 * 4 * config.batch_size * config.unroll * per_position
    need = (n_params * 4 * copies + activations) * workers
    if need > available:
        gib = 2.0**30
        raise ConfigError(
            f"{size} ({layers} layer(s), {cell} on {task.name}) needs about {need / gib:,.1f} "
            f"GiB of memory ({n_params:,} parameters, {workers} worker(s)), but {where} has "
            f"{available / gib:,.1f} GiB available; allowed: a smaller hidden_size, "
            "param_budget or layers (or fewer --workers)"
        )


def _available_memory(device: str) -> tuple[int, str]:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        index = int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0
        free, _ = torch.cuda.mem_get_info(index)
        return int(free), f"cuda:{index}"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "this machine"
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine"


def _workers(value: Any, device: str) -> int:
    if value != "auto":
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"--workers must be an integer >= 1 or auto, got {value!r}"
            ) from None
        return _check_int("--workers", value, 1)
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            return 1 if device.startswith("cuda:") else torch.cuda.device_count()
    return max(1, min(cpus(), MAX_AUTO_WORKERS))


def _probe_values(resolved: dict[str, Any], cell: str) -> dict[str, Any]:
    out = {}
    for name, dist in resolved["params"].items():
        if "only_cells" in dist and cell not in dist["only_cells"]:
            continue
        kind = dist["type"]
        out[name] = (
            dist["value"]
            if kind == "fixed"
            else dist["choices"][0]
            if kind == "categorical"
            else dist["low"]
        )
    return out


# --- samplers, pruners, studies ---------------------------------------------------------------


def _attrs(plan: Plan, sd: StudyDef) -> dict[str, Any]:
    import rnnopt

    return {
        "rnnopt.task": sd.task,
        "rnnopt.cell": sd.cell,
        "rnnopt.mode": sd.mode,
        "rnnopt.space": json.loads(sd.space_json),
        "rnnopt.budget": {"n_trials": plan.n_trials, "max_steps": plan.max_steps}
        | ({"confirm": plan.confirm} if plan.confirm else {}),
        "rnnopt.version": rnnopt.__version__,
        "rnnopt.metric": sd.metric,
        "rnnopt.direction": sd.direction,
        "rnnopt.command": plan.command,
        "rnnopt.train": json.loads(
            space_mod.canonical_json(
                {k: v for k, v in sd.base.items() if k not in ("device", "data_dir")}
            )
        ),
        **({userdata.DATA_ATTR: json.loads(sd.data)} if sd.data else {}),
    }


def prepare_studies(plan: Plan) -> None:
    """Refuse mismatched existing studies (before creating any), then create/update all."""
    import optuna

    from rnnopt import storage as st

    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat)
    summaries = {
        s.study_name: s
        for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)
    }
    folded = {name.casefold(): name for name in summaries}
    for sd in plan.studies:
        hint = (
            f"pass another --study-name prefix to start a new study, or delete it with "
            f"`optuna delete-study --study-name {sd.name} --storage URL`"
        )
        other = folded.get(sd.name.casefold())
        if other is not None and other != sd.name and st.backend_of(plan.url) == "mysql":
            # MySQL/MariaDB compare study names without case: Optuna would load the other.
            raise StorageError(
                f"study {sd.name!r} differs only in case from the existing study {other!r} in "
                f"{plan.masked_url}, and MySQL/MariaDB compare study names without case; "
                "pass another --study-name prefix"
            )
        if sd.name not in summaries:
            continue
        summary = summaries[sd.name]
        attrs = summary.user_attrs
        if summary.direction.name.lower() != sd.direction:
            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} has direction "
                f"{summary.direction.name.lower()}, not {sd.direction}; {hint}"
            )
        if "rnnopt.task" not in attrs and summary.n_trials:
            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} is not an rnnopt study (it has "
                f"{summary.n_trials} trials and no rnnopt attributes); {hint}"
            )
        # Other data first: it names the file or option that changed (another level changes
        # the metric too, which would only say that).
        userdata.check_resume(sd.name, attrs.get(userdata.DATA_ATTR), sd.data, hint)
        for key, want in (
            ("rnnopt.task", sd.task), ("rnnopt.mode", sd.mode), ("rnnopt.metric", sd.metric)
        ):
            if attrs.get(key) not in (None, want):
                raise StorageError(
                    f"study {sd.name!r} in {plan.masked_url} has {key}={attrs[key]!r}, not "
                    f"{want!r}; {hint}"
                )
        stored_space = json_value(attrs.get("rnnopt.space"))
        if stored_space is not None and space_mod.canonical_json(stored_space) != sd.space_json:
            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} has a different search space; {hint}"
            )
        if attrs.get("rnnopt.direction") not in (None, sd.direction):
            raise StorageError(
                f"study {sd.name!r} has direction {attrs['rnnopt.direction']}; {hint}"
            )
        budget = json_value(attrs.get("rnnopt.budget")) or {}
        if budget.get("max_steps") not in (None, plan.max_steps):
            raise StorageError(
                f"study {sd.name!r} was run with --max-steps {budget['max_steps']}, not "
                f"{plan.max_steps}: trials of one study must share a budget; {hint}"
            )
    for sd in plan.studies:
        study = optuna.create_study(
            study_name=sd.name, storage=storage, direction=sd.direction, load_if_exists=True
        )
        current = study.user_attrs
        changed = False
        for key, value in _attrs(plan, sd).items():
            if key in ("rnnopt.command",) and key in current:
                continue
            if current.get(key) != value:
                study.set_user_attr(key, value)
                changed = True
        if changed:
            _write_note(study)
        from rnnopt.dashboard import set_metric_name

        set_metric_name(study, sd.metric)
    st.install_views_quietly(plan.url)


def _write_note(study: Any) -> None:
    """The optuna-dashboard note (task, cell, space, budget, command); never fatal."""
    from rnnopt.dashboard import write_study_note

    try:
        write_study_note(study)
    except Exception as exc:  # a note is a convenience; the study must go on without it
        logger.warning("could not write the dashboard note of %s: %s", study.study_name, exc)


# --- the worker loop --------------------------------------------------------------------------


def _slots_used(trials: Sequence[Any]) -> int:
    """Trials that count toward --n-trials: all but FAILED ones (a failed trial leaves its slot
    to a rerun; a retry's FAILED parent is replaced by the retry in any case) and the
    confirmation trials."""
    from optuna.trial import TrialState

    return sum(
        1
        for t in trials
        if t.state != TrialState.FAIL and not confirm_mod.is_confirmation(t)
    )


def _progress_line(sd: StudyDef, trials: Sequence[Any], n_trials: int) -> str:
    from optuna.trial import TrialState

    replaced = confirm_mod.replaced_trials(trials)
    counted = [t for t in trials if t.number not in replaced]
    search = [t for t in counted if not confirm_mod.is_confirmation(t)]
    done = [t for t in search if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in done if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = sum(t.state == TrialState.PRUNED for t in done)
    failed = sum(t.state == TrialState.FAIL for t in search)
    best = "-"
    if complete:
        pick = max if sd.direction == "maximize" else min
        b = pick(complete, key=lambda t: t.value)
        best = f"{b.value:.4g} (trial {b.number})"
    line = (
        f"{sd.name}: {len(done)}/{n_trials} done, "
        f"{pruned} pruned, {failed} failed, best {sd.metric} {best}"
    )
    confirming = [t for t in counted if confirm_mod.is_confirmation(t)]
    if confirming:
        finished = sum(t.state.is_finished() for t in confirming)
        line += f"; confirmation {finished}/{len(confirming)} done"
    return line


def run_worker(plan: Plan, index: int = 0, progress: Callable[[str], None] | None = None) -> None:
    """Work on every study of the plan until each holds ``n_trials`` finished trials."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st
    from rnnopt.objective import make_objective
    from rnnopt.storage import compat

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat, max_retry=plan.max_retry)
    store = st.artifact_store(Path(plan.artifacts))
    deadline = time.monotonic() + plan.timeout if plan.timeout else math.inf
    sampler_seed = (
        None if plan.sampler_seed is None else (plan.sampler_seed + 7919 * index) % (MAX_SEED + 1)
    )
    loaded: dict[str, Any] = {}
    failures: dict[str, int] = {}  # failed trials per study in this run
    # The command shows the run's progress (rnnopt.progress); this per-study line is detail.
    say = progress or (lambda line: logger.debug("%s", line))

    def study_of(sd: StudyDef) -> Any:
        if sd.name not in loaded:
            loaded[sd.name] = optuna.load_study(
                study_name=sd.name,
                storage=storage,
                sampler=make_sampler(
                    plan.sampler, sampler_seed, n_trials=plan.n_trials,
                    options=plan.sampler_options,
                ),
                pruner=make_pruner(
                    plan.pruner, max_steps=plan.max_steps, eval_interval=plan.eval_interval,
                    options=plan.pruner_options,
                ),
            )
        return loaded[sd.name]

    def one_pass() -> bool:
        """Run trials until no study has a free slot; True if some study still has others'
        trials running (finished or stale later)."""
        pending = False
        for sd in plan.studies:
            study = study_of(sd)
            objective = make_objective(
                task=sd.task,
                cell=None if sd.mode == "search" else sd.cell,
                space=sd.space,
                base=sd.base,
                metric=sd.metric,
                artifact_store=store,
                seed=plan.seed,
            )
            # Failed trials do not count toward --n-trials; at most n_trials of them per run, so
            # that a study that always fails ends.
            while time.monotonic() < deadline and failures.get(sd.name, 0) < plan.n_trials:
                st.fail_stale_trials(study)
                with st.study_lock(plan.url, sd.name):
                    trials = study.get_trials(deepcopy=False)
                    waiting = any(t.state == TrialState.WAITING for t in trials)
                    if _slots_used(trials) >= plan.n_trials and not waiting:
                        if plan.confirm and confirm_mod.top_up(
                            study, trials, sd.cells, search=sd.mode == "search",
                            direction=sd.direction, k=plan.confirm, seed=plan.seed,
                        ):  # fmt: skip
                            continue  # the search is done: claim its confirmation trials
                        pending |= any(t.state == TrialState.RUNNING for t in trials)
                        break
                    with compat.quiet_experimental():
                        trial = study.ask()
                    storage.record_heartbeat(compat.trial_id_of(trial))
                if _run_trial(study, trial, objective, storage, plan) == TrialState.FAIL:
                    failures[sd.name] = failures.get(sd.name, 0) + 1
                say(_progress_line(sd, study.get_trials(deepcopy=False), plan.n_trials))
        return pending

    while one_pass() and time.monotonic() < deadline:
        # Others' trials still run: wait, so that a dead worker's trial is retried here.
        time.sleep(min(plan.heartbeat, 5))


def _run_trial(study: Any, trial: Any, objective: Any, storage: Any, plan: Plan) -> Any:
    """Run one trial and tell its outcome; returns the TrialState told."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st
    from rnnopt.storage import compat

    try:
        with st.Heartbeat(storage, plan.heartbeat, compat.trial_id_of(trial)):
            value = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    except KeyboardInterrupt:
        ignore_interrupts()  # finish the clean-up undisturbed
        trial.set_user_attr("stop_reason", "failed")
        trial.set_user_attr("reason", "interrupted (Ctrl-C); queued for a retry")
        study.tell(trial, state=TrialState.FAIL)
        st.requeue(study, compat.stored_trial(trial), plan.max_retry)
        raise
    except Exception as exc:
        logger.warning(
            "trial %d of %s failed: %s: %s", trial.number, study.study_name, type(exc).__name__, exc
        )
        if "stop_reason" not in trial.user_attrs:
            trial.set_user_attr("stop_reason", "failed")
            trial.set_user_attr("reason", st.scrub(f"{type(exc).__name__}: {exc}")[:1000])
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    study.tell(trial, value)
    return TrialState.COMPLETE


def _worker_body(plan: Plan, index: int) -> None:
    """Body of a ``--workers`` process (see rnnopt.workers): own storage connection, own
    device and threads."""
    import torch

    torch.set_num_threads(max(1, cpus() // plan.workers))
    if plan.device in ("auto", "cuda") and torch.cuda.device_count() > 1:
        device = f"cuda:{index % torch.cuda.device_count()}"
        for sd in plan.studies:
            sd.base["device"] = device

    run_worker(plan, index)


def _run_workers(plan: Plan) -> str | None:
    """Run the plan's workers to the end; a line naming the workers that died, or None."""
    from rnnopt.workers import describe_failures, run_pool

    if plan.workers == 1:
        run_worker(plan, 0)
        return None
    codes = run_pool(
        _worker_body, [(plan, i) for i in range(plan.workers)], verbose=plan.verbose
    )
    return describe_failures(codes)


# --- the summary ------------------------------------------------------------------------------


def summary_table(plan: Plan) -> str:
    """Best value per cell (rows) and task (columns), with trial counts."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st

    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat)
    tasks = list(dict.fromkeys(sd.task for sd in plan.studies))
    cells = list(dict.fromkeys(c for sd in plan.studies for c in sd.cells))
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    confirmed: dict[str, dict[str, confirm_mod.Confirmation]] = {}
    for sd in plan.studies:
        trials = optuna.load_study(study_name=sd.name, storage=storage).get_trials(deepcopy=False)
        replaced = st.replaced_numbers(trials)  # a retried trial counts once, as its retry
        trials = [t for t in trials if t.number not in replaced]
        pick = max if sd.direction == "maximize" else min
        tops = confirm_mod.best_search_trials(
            trials, sd.cells, search=sd.mode == "search", direction=sd.direction
        )
        for cell in sd.cells:
            mine = [
                t for t in trials
                if (sd.mode == "compare" or t.params.get("cell") == cell)
                and not confirm_mod.is_confirmation(t)
            ]  # fmt: skip
            values = [
                t.value for t in mine if t.state == TrialState.COMPLETE and t.value is not None
            ]
            done = sum(t.state.is_finished() for t in mine)
            pruned = sum(t.state == TrialState.PRUNED for t in mine)
            best[(cell, sd.task)] = (pick(values) if values else math.nan, done, pruned)
            conf = confirm_mod.confirmation_of(tops[cell], trials) if cell in tops else None
            if conf is not None:
                confirmed.setdefault(sd.task, {})[cell] = conf
    direction = {sd.task: sd.direction for sd in plan.studies}
    verdicts = {t: confirm_mod.compare_cells(c, direction[t]) for t, c in confirmed.items()}
    metrics = {
        sd.task: f"{sd.metric} ({'max' if sd.direction == 'maximize' else 'min'})"
        for sd in plan.studies
    }
    header = ["cell", *(f"{t} {metrics[t]}" for t in tasks)]
    rows = [header]
    for cell in cells:
        row = [cell]
        for t in tasks:
            if (cell, t) not in best:
                row.append("")
                continue
            v, done, pruned = best[(cell, t)]
            text = (
                f"{v:.4f}  [{done} trials, {pruned} pruned]"
                if not math.isnan(v)
                else f"-  [{done} trials, {pruned} pruned]"
            )
            conf = confirmed.get(t, {}).get(cell)
            if conf is not None:
                text += "  " + confirm_mod.describe(conf, verdicts[t].get(cell))
            row.append(text)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    interrupt_between_storage_calls()
    plan = make_plan(args, argv)
    plan.verbose = args.verbose
    prepare_studies(plan)

    print(f"storage:   {plan.masked_url}", flush=True)
    print(f"artifacts: {plan.artifacts}", flush=True)
    print(f"dashboard: optuna-dashboard {shlex.quote(plan.masked_url)}", flush=True)
    print(
        f"studies:   {', '.join(sd.name for sd in plan.studies)} "
        f"({plan.n_trials} trials each, {plan.max_steps} steps per trial, sampler "
        f"{plan.sampler}, pruner {plan.pruner})",
        flush=True,
    )
    print(
        f"sampling:  {startup_text(plan.sampler, plan.n_trials, plan.sampler_options)}",
        flush=True,
    )
    from rnnopt.progress import RunProgress

    total = len(plan.studies) * plan.n_trials + plan.confirm * sum(
        len(sd.cells) for sd in plan.studies
    )
    with RunProgress(plan.url, plan.studies, total, stream=sys.stderr):
        failed = _run_workers(plan)
    print(summary_table(plan), flush=True)
    failure = all_failed(plan)
    if failure:
        print(f"error: {failure}", file=sys.stderr, flush=True)
        return 1
    if failed:
        from rnnopt.workers import EXIT_WORKER_FAILED

        print(f"error: {failed}; rerun the command to finish what they left", file=sys.stderr)
        return EXIT_WORKER_FAILED
    return 0


def all_failed(plan: Plan) -> str | None:
    """One line naming the first study whose every trial failed and its first error, or None."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st

    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat)
    broken = []
    for sd in plan.studies:
        trials = optuna.load_study(study_name=sd.name, storage=storage).get_trials(deepcopy=False)
        replaced = confirm_mod.replaced_trials(trials)
        good = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in replaced]
        if failed and not good:
            broken.append((sd.name, failed))
    if not broken:
        return None
    name, failed = broken[0]
    first = failed[0].user_attrs.get("reason", "no reason recorded")
    more = f" ({len(broken) - 1} more studies failed entirely)" if len(broken) > 1 else ""
    return f"all {len(failed)} trials of {name} failed{more}; first error: {first}"


if __name__ == "__main__":
    sys.exit(run_cli(main))
