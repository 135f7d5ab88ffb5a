"""Train one preset for a fixed number of steps per objective and report, side by side
in one run, steps/s and the validation loss of each objective.

    python benchmarks/train_objectives.py [--preset small] [--steps 200] [--data MANIFEST]
                                          [--objectives cfm,edm,meanflow] [--out runs/bench]

Without ``--data`` a synthetic tone corpus (core.synthetic) is generated.  Validation
losses of different objectives are on different scales (velocity MSE, EDM-weighted x0
error, MeanFlow adaptive loss); compare each objective with itself across settings and
use the listening tests / `python -m core eval` to compare objectives.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.config import merge, preset  # noqa: E402
from core.synthetic import make_tone_corpus  # noqa: E402
from core.train import Trainer  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--data", default="")
    p.add_argument("--objectives", default="cfm,edm,meanflow")
    p.add_argument("--out", default="runs/bench_objectives")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-frames", type=int, default=3000)
    args = p.parse_args(argv)
    out = Path(args.out)
    data = args.data or str(make_tone_corpus(out / "corpus", n=96, words_per_utterance=4))
    rows = []
    for name in args.objectives.split(","):
        cfg = merge(preset(args.preset), {
            "objective": {"name": name},
            "training": {"data": data, "steps": args.steps, "log_every": max(1, args.steps // 10),
                         "checkpoint_every": 0, "val_every": 0, "val_fraction": 0.1,
                         "batch_frames": args.batch_frames, "warmup_steps": min(50, args.steps // 4)}})
        trainer = Trainer(cfg, out / name, device=args.device, progress=False)
        trainer.validate()
        batches = trainer.batches()
        first = trainer.train_step(next(batches))  # warm-up step, not timed
        t0 = time.perf_counter()
        while trainer.step < args.steps:
            trainer.train_step(next(batches))
        elapsed = time.perf_counter() - t0
        val = trainer.validate()
        rows.append({"objective": name, "steps": args.steps, "steps_per_s": (args.steps - 1) / elapsed,
                     "first_loss": first.loss, "val_loss": val,
                     "parameters": trainer.model.num_parameters()})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["steps_per_s"]
    for r in rows:
        r["speed_vs_" + rows[0]["objective"]] = r["steps_per_s"] / base
    report = {"device": str(trainer.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.machine(), "preset": args.preset, "results": rows}
    print(json.dumps(report, indent=2))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
