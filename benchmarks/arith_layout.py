"""Does the arith layout decide the forget gate's fate? One fixed setting per cell, trained with
arith read one problem per padded column (``stream = false``) and as a stream (``stream = true``,
the paper's batch 20 / unroll 35 with the state carried).

    python benchmarks/arith_layout.py [--cells gru,lstm,lstm-f,tanh] [--digits 4,8]
        [--layouts column,stream] [--steps 7000] [--seed 1]

Each run: hidden 128, one layer, Adam lr 0.005, clip 5, init scale 1, batch 20, unroll 35, the
quick study's evaluation (20 validation batches, the learning rate halved after 4 evaluations
without improvement), best validation accuracy on the whole split and its test accuracy.
One JSON line per run on stdout. Not a test: each run is 1-2 minutes of one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rnnopt._cli import run_cli  # noqa: E402
from rnnopt.train import TrainConfig, train  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="gru,lstm,lstm-f,tanh")
    p.add_argument("--digits", default="4,8", help="max_digits values, comma-separated")
    p.add_argument("--layouts", default="column,stream")
    p.add_argument("--steps", type=int, default=7000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    for digits in [int(d) for d in args.digits.split(",")]:
        for layout in args.layouts.split(","):
            for cell in args.cells.split(","):
                start = time.monotonic()
                config = TrainConfig(
                    task="arith", cell=cell, hidden_size=128, optimizer="adam", lr=0.005,
                    clip_norm=5, init_scale=1.0, batch_size=20, unroll=35,
                    max_steps=args.steps, eval_interval=max(1, args.steps // 10), patience=4,
                    eval_batches=20, device="cpu", seed=args.seed,
                    task_options={"max_digits": digits, "stream": layout == "stream"},
                )  # fmt: skip
                result = train(config)
                print(json.dumps({
                    "digits": digits, "layout": layout, "cell": cell, "steps": result.steps,
                    "valid": round(result.best_valid or float("nan"), 4),
                    "test": round(result.test_metrics.get("accuracy", float("nan")), 4),
                    "seconds": round(time.monotonic() - start), "stop": result.stop_reason,
                }), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
