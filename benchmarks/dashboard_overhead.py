"""Training time with and without the notebook dashboard attached (tiny preset, synthetic
tone corpus, CPU, same seed).  The dashboard's layout is built, as in a notebook, and it
redraws at its default rate (at most every 2 s); no audio samples in either run, so the
ratio is the cost of collecting rows and redrawing.

    .venv/bin/python benchmarks/dashboard_overhead.py [--steps 60] [--repeats 3]

Prints the median wall time of ``trainer.fit()`` for each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.config import merge, preset  # noqa: E402
from core.synthetic import make_tone_corpus  # noqa: E402
from core.train import Trainer  # noqa: E402
from studio.dashboard_ui import TrainingDashboard  # noqa: E402

LAST_DASHBOARD = None


def fit_seconds(manifest: Path, out: Path, steps: int, dashboard: bool, refresh_s: float) -> tuple[float, int]:
    cfg = merge(preset("tiny"), {"training": {
        "data": str(manifest), "batch_frames": 400, "max_batch_size": 4, "steps": steps, "log_every": 1,
        "checkpoint_every": 0, "val_every": 20, "val_fraction": 0.2, "sample_every": 0, "seed": 0}})
    dash = TrainingDashboard(refresh_s=refresh_s) if dashboard else None
    global LAST_DASHBOARD
    LAST_DASHBOARD = dash
    trainer = Trainer(cfg, out, device="cpu", progress=False, callbacks=[dash] if dash else [])
    if dash is not None:
        dash.panel()
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start, (dash.refresh_count if dash else 0)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--refresh-s", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_tone_corpus(root / "corpus", n=12)
        fit_seconds(manifest, root / "warmup", 5, True, args.refresh_s)  # imports, numba, caches
        plain, dash, redraws = [], [], []
        for i in range(args.repeats):  # alternate so drifting machine load hits both alike
            plain.append(fit_seconds(manifest, root / f"plain{i}", args.steps, False, args.refresh_s)[0])
            seconds, count = fit_seconds(manifest, root / f"dash{i}", args.steps, True, args.refresh_s)
            dash.append(seconds)
            redraws.append(count)
        # direct cost of one redraw with the last run's rows (noise-free bound on the overhead)
        d = LAST_DASHBOARD
        t0 = time.perf_counter()
        for _ in range(20):
            d.refresh(force=True)
        redraw_s = (time.perf_counter() - t0) / 20
    a, b = statistics.median(plain), statistics.median(dash)
    print(f"steps={args.steps} repeats={args.repeats} refresh_s={args.refresh_s} threads={args.threads}")
    print(f"without dashboard: {a:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in plain)})")
    print(f"with dashboard:    {b:.3f} s  (runs: {', '.join(f'{x:.3f}' for x in dash)}; redraws {redraws})")
    print(f"ratio: {b / a:.3f}  (overhead {100 * (b / a - 1):+.1f} %; wall times on a shared machine are noisy)")
    print(f"one redraw ({len(d.rows)} rows): {1000 * redraw_s:.2f} ms; at one redraw per {args.refresh_s} s "
          f"that is {100 * redraw_s / max(args.refresh_s, 1e-9):.2f} % of wall time")


if __name__ == "__main__":
    main()
