"""Training throughput and peak memory of every registered cell, as ratios to torch's fused RNNs.

    python benchmarks/cells.py                       # all cells, H = 128 and 512, 300 steps
    python benchmarks/cells.py --cells lstm,gru --hidden 128 --steps 50
    python benchmarks/cells.py --out benchmarks/RESULTS.md   # also add it to the Cells section

What is measured (issue 2, item 5). One training step = forward over x ``[T=100, B=32, H]``,
backward of a mean-square loss on the outputs, one SGD step. Each cell runs from a cold start
(build the module and optimizer, then ``--steps`` steps, all timed, so any first-call cost such as
a compilation counts). torch.nn.LSTM and torch.nn.GRU (fresh modules, cold as well) run
``--baseline-steps`` steps before every cell and after the last one (A, B, A, B, ...); a cell's
ratio uses the mean of the baselines on either side of it, so a change in machine load between
cells moves the cell and its baseline together. Ratios are reported, never absolute times alone.

Peak memory (CPU): each cell runs in its own subprocess that imports everything, builds the
model, then records the growth of the process's peak resident set size (``VmHWM`` in
``/proc/self/status``; ``ru_maxrss`` where there is no /proc) over ``--memory-steps`` training
steps: the activations saved for backward, gradients and workspace. The same is done for
nn.LSTM, and the table shows the ratio (tracemalloc does not see torch's allocations, hence
RSS). On CUDA the measure is ``torch.cuda.max_memory_allocated`` growth, in process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a script from a checkout
    sys.path.insert(0, str(REPO))

import rnnopt.cells  # noqa: E402
from rnnopt._cli import run_cli, setup_logging  # noqa: E402
from rnnopt.errors import ConfigError  # noqa: E402

log = logging.getLogger("benchmarks.cells")

BASELINES = ("nn.LSTM", "nn.GRU")
# (family, hidden) -> (baseline, minimum ratio), from issue 2 item 5
TARGETS = {
    ("lstm", 512): ("nn.LSTM", 0.8),
    ("lstm", 128): ("nn.LSTM", 0.6),
    ("gru", 512): ("nn.GRU", 0.8),
}


class _Baseline(nn.Module):
    """torch.nn.LSTM / nn.GRU with the cell interface's ``forward(x) -> (outputs, state)``."""

    def __init__(self, kind: str, size: int) -> None:
        super().__init__()
        self.rnn = (nn.LSTM if kind == "nn.LSTM" else nn.GRU)(size, size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, object]:
        return self.rnn(x)


def _family(cell: nn.Module) -> str:
    if isinstance(cell, rnnopt.cells.LSTMCell):
        return "lstm"
    if isinstance(cell, rnnopt.cells.GRUFamilyCell):
        return "gru"
    return "other"


def _build(name: str, hidden: int, device: torch.device) -> nn.Module:
    if name in BASELINES:
        return _Baseline(name, hidden).to(device)
    return rnnopt.cells.build(name, hidden, hidden).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        out, _ = model(x)
        out.square().mean().backward()
        opt.step()


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def cold_run(name: str, hidden: int, x: torch.Tensor, steps: int) -> float:
    """Tokens/s of ``steps`` training steps from a cold start (module build included)."""
    device = x.device
    _sync(device)
    start = _clock()
    model = _build(name, hidden, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    _train_steps(model, opt, x, steps)
    _sync(device)
    return steps * x.shape[0] * x.shape[1] / (_clock() - start)


def peak_memory(name: str, hidden: int, args: argparse.Namespace) -> int:
    """Bytes the training steps add to the peak (CPU: in a fresh subprocess; CUDA: in process)."""
    device = torch.device(args.device)
    if device.type == "cuda":
        x = torch.randn(args.length, args.batch, hidden, device=device)
        model = _build(name, hidden, device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        _train_steps(model, opt, x, args.memory_steps)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    cmd = [
        sys.executable, __file__, "--_memory", name, "--hidden", str(hidden),
        "--batch", str(args.batch), "--length", str(args.length),
        "--threads", str(args.threads), "--memory-steps", str(args.memory_steps),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {name} failed: {proc.stderr.strip()[-500:]}")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["bytes"])


def _peak_rss_kib() -> int:
    """This process's peak resident set in KiB.

    VmHWM belongs to the current address space; ru_maxrss is not enough on Linux because it
    carries the parent's peak across fork + exec, which would hide a child's growth.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _memory_probe(args: argparse.Namespace) -> int:
    """Subprocess side of :func:`peak_memory` on CPU: print the RSS peak growth as JSON."""
    torch.set_num_threads(args.threads)
    hidden = args.hidden[0]
    x = torch.randn(args.length, args.batch, hidden)
    model = _build(args._memory, hidden, torch.device("cpu"))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = _peak_rss_kib()
    _train_steps(model, opt, x, args.memory_steps)
    after = _peak_rss_kib()
    print(json.dumps({"bytes": (after - before) * 1024}))
    return 0


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__}"


def run(args: argparse.Namespace) -> list[dict]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    for hidden in args.hidden:
        x = torch.randn(args.length, args.batch, hidden, device=device)
        for base in BASELINES:  # warm the allocator and thread pool once, untimed
            cold_run(base, hidden, x, 2)

        def baselines(hidden: int = hidden, x: torch.Tensor = x) -> dict[str, float]:
            return {b: cold_run(b, hidden, x, args.baseline_steps) for b in BASELINES}

        before = baselines()
        mem_base = peak_memory("nn.LSTM", hidden, args) if args.memory else None
        for name in args.cells:
            family = _family(rnnopt.cells.build(name, hidden, hidden))
            tps = cold_run(name, hidden, x, args.steps)
            after = baselines()
            ref = {b: (before[b] + after[b]) / 2 for b in BASELINES}
            row = {
                "cell": name,
                "hidden": hidden,
                "family": family,
                "tokens_per_s": tps,
                "vs_lstm": tps / ref["nn.LSTM"],
                "vs_gru": tps / ref["nn.GRU"],
                "memory": (peak_memory(name, hidden, args) / mem_base) if mem_base else None,
            }
            target = TARGETS.get((family, hidden))
            if target:
                base, need = target
                got = row["vs_lstm"] if base == "nn.LSTM" else row["vs_gru"]
                row["target"] = f">= {need}x {base}: {'met' if got >= need else 'MISSED'}"
            else:
                row["target"] = ""
            rows.append(row)
            log.info(
                "H=%d %-10s %.2fx nn.LSTM %.2fx nn.GRU",
                hidden, name, row["vs_lstm"], row["vs_gru"],
            )  # fmt: skip
            before = after
    return rows


def table(rows: Sequence[dict], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    head = (
        f"### {dt.datetime.now():%Y-%m-%d %H:%M} · {_machine()} · device {args.device}, "
        f"{args.threads} threads, {args.clock} clock · batch {args.batch}, length {args.length}, "
        f"{args.steps} steps cold (baselines {args.baseline_steps} steps between cells) · "
        f"load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}\n\n"
        "| cell | H | tokens/s | vs nn.LSTM | vs nn.GRU | peak memory vs nn.LSTM | target |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['cell']} | {r['hidden']} | {r['tokens_per_s']:.0f} | {r['vs_lstm']:.2f} | "
        f"{r['vs_gru']:.2f} | {'' if r['memory'] is None else format(r['memory'], '.2f')} | "
        f"{r['target']} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    p.add_argument("--hidden", default="128,512", help="comma-separated hidden sizes")
    p.add_argument("--steps", type=int, default=300, help="training steps per cell (cold)")
    p.add_argument("--baseline-steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--clock",
        choices=sorted(_CLOCKS),
        default="wall",
        help="wall: elapsed time (the real measure on an idle machine); cpu: this process's CPU "
        "time, robust on a machine shared with other work (use with --threads 1)",
    )
    p.add_argument("--memory-steps", type=int, default=3)
    p.add_argument("--no-memory", dest="memory", action="store_false")
    p.add_argument("--out", type=Path, help="append the table to this markdown file")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.hidden = [int(h) for h in str(args.hidden).split(",") if h]
    except ValueError:
        raise ConfigError(f"--hidden {args.hidden!r}: expected comma-separated integers") from None
    if not args.hidden or min(args.hidden) <= 0:
        raise ConfigError(f"--hidden {args.hidden}: sizes must be positive integers")
    for key in ("steps", "baseline_steps", "batch", "length", "threads", "memory_steps"):
        if getattr(args, key) <= 0:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(args, key)}: must be > 0")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device not in ("cpu", "cuda") or (
        args.device == "cuda" and not torch.cuda.is_available()
    ):
        raise ConfigError(f"--device {args.device!r}: expected cpu, auto or (if present) cuda")
    known = rnnopt.cells.names()
    args.cells = [c for c in args.cells.split(",") if c] or known
    for name in args.cells:
        if name not in known:
            raise ConfigError(f"--cells: unknown cell {name!r}; valid: {', '.join(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._memory:
        return _memory_probe(args)
    setup_logging()
    global _clock
    _clock = _CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    rows = run(args)
    text = table(rows, args)
    print(text)
    if args.out:
        _record(args.out, text)
    return 0


def _record(path: Path, text: str) -> None:
    """Add the table at the end of the file's ``## Cells`` section (made if missing)."""
    doc = path.read_text(encoding="utf-8") if path.exists() else ""
    start = doc.find("\n## Cells")
    if start < 0 and not doc.startswith("## Cells"):
        path.write_text(doc.rstrip("\n") + "\n\n## Cells\n\n" + text, encoding="utf-8")
        return
    end = doc.find("\n## ", start + 1)
    end = len(doc) if end < 0 else end + 1
    path.write_text(doc[:end].rstrip("\n") + "\n\n" + text + "\n" + doc[end:], encoding="utf-8")


if __name__ == "__main__":
    sys.exit(run_cli(main))
