"""The study plan: every option, the study file and the storage checked before anything is
written (``make_plan``), and the picklable ``Plan`` each worker runs."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnopt import schema, userdata
from rnnopt._cli import cpus
from rnnopt.errors import ConfigError
from rnnopt.hpo import space as space_mod
from rnnopt.hpo.objective import train_settings
from rnnopt.hpo.samplers import (
    PRUNERS,
    SAMPLER_OPTIONS,
    SAMPLERS,
    check_options,
    make_pruner,
    make_sampler,
)
from rnnopt.hpo.studyfile import load_study_file

__all__ = ["Plan", "StudyDef", "make_plan"]

MODES = schema.CELL_STUDY_MODES

# Without --study-file this study file sets the budget (calibrated on a 2-core CPU, see
# docs/studies.md): `--task xml` alone runs ten cells x 3 trials in about 15 minutes.
DEFAULT_STUDY_FILE = Path(__file__).resolve().parents[1] / "studies" / "quick.toml"
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
    max_retry: int
    command: str
    eval_interval: int
    confirm: int = 0  # confirmation seeds per cell's best setting (rnnopt/hpo/confirm.py)
    verbose: bool = False  # per-evaluation detail of every trial in the log
    sampler_options: dict[str, Any] = field(default_factory=dict)  # [sampler] (samplers.py)
    pruner_options: dict[str, Any] = field(default_factory=dict)  # [pruner]


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


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

    sf = load_study_file(args.study_file or str(DEFAULT_STUDY_FILE))
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
    if pruner == "staged" and mode != "compare":
        others = ", ".join(p for p in PRUNERS if p != "staged")
        raise ConfigError(
            f"pruner 'staged' filters cells across their own studies, so it needs mode compare, "
            f"not {mode!r}; allowed in mode {mode}: {others}"
        )
    n_trials = _check_int(
        "--n-trials", _pick(args.n_trials, fs.get("n_trials"), DEFAULT_N_TRIALS), 1
    )
    max_steps = _check_int(
        "--max-steps", _pick(args.max_steps, fs.get("max_steps"), DEFAULT_MAX_STEPS), 1
    )
    confirm = _check_int("--confirm", _pick(args.confirm, fs.get("confirm"), 0), 0)
    sampler_options = check_options("sampler", sampler, sf.sampler, sf.path)
    pruner_options = check_options("pruner", pruner, sf.pruner, sf.path)
    if args.paired_startup:
        if "paired_startup" not in SAMPLER_OPTIONS[sampler]:
            allowed = ", ".join(s for s in SAMPLERS if "paired_startup" in SAMPLER_OPTIONS[s])
            raise ConfigError(
                f"--paired-startup needs a sampler that draws at random first; sampler "
                f"{sampler!r} does not; allowed: {allowed}"
            )
        sampler_options["paired_startup"] = True
    from rnnopt.train._loop import resolve_device

    resolve_device(args.device)  # cuda/cuda:N must exist here
    workers = _workers(args.workers, args.device)
    if args.workers == "auto":
        # Never more processes than trials: a lone trial runs in this process on every core.
        n_studies = len(tasks) * (len(cells) if mode == "compare" else 1)
        workers = min(workers, n_studies * (n_trials + confirm))
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
                _, probe = space_mod.suggest(_FirstValues(c), resolved)
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


class _FirstValues:
    """A stand-in trial for ``space.suggest``: the first choice of each categorical, the low end
    of each range, and ``cell`` for the cell parameter (search mode)."""

    def __init__(self, cell: str) -> None:
        self.cell = cell

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.cell if name == "cell" else choices[0]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low
