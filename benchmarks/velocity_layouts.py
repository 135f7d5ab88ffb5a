"""The velocity network's layouts side by side: ``dit`` (every block at the frame rate)
against ``udit`` (middle blocks at half the rate), same size, per network evaluation.

Both networks are built from one config (the demo voice's by default: dim 256, depth 6,
4 heads; ``udit`` with ``udit_outer`` 1, i.e. 2 full-rate and 4 half-rate blocks) with
random weights, so they have the same parameters.  For each audio length (5, 10, 20, 40 s
at 24 kHz / hop 256) and batch size, rounds interleave the layouts (one warm-up call,
then ``--repeats`` timed calls each; median over rounds), fp32 on the CPU at
``--threads``.  Reported: ms per NFE, ms per NFE per second of audio, the speed-up, and
the load average before and after.

    python benchmarks/velocity_layouts.py --threads 1 --out runs/velocity_layouts.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import median_call_seconds  # noqa: E402

FRAMES_PER_SECOND = 24000 / 256
LAYOUTS = ("dit", "udit")


def build(config, layout: str, outer: int):
    from core.models.dit import VelocityDiT

    model = dataclasses.replace(config.model, velocity=layout, udit_outer=outer)
    torch.manual_seed(0)
    net = VelocityDiT(model, n_mels=config.audio.n_mels).eval()
    for p in net.parameters():  # random, non-zero: adaLN-Zero's zeros would skip nothing but look idle
        torch.nn.init.normal_(p, std=0.02)
    return net


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "assets" / "demo.pt"), help="whose config sets the size")
    ap.add_argument("--seconds", default="5,10,20,40")
    ap.add_argument("--batch", default="1,2")
    ap.add_argument("--outer", type=int, default=1, help="udit_outer (full-rate blocks at each end)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from core.checkpoint import load_checkpoint

    config = load_checkpoint(args.checkpoint).config
    nets = {layout: build(config, layout, args.outer) for layout in LAYOUTS}
    n_params = {k: sum(p.numel() for p in v.parameters()) for k, v in nets.items()}
    load_before = os.getloadavg()
    rows = []
    for batch in [int(b) for b in args.batch.split(",")]:
        for seconds in [float(s) for s in args.seconds.split(",")]:
            frames = int(round(seconds * FRAMES_PER_SECOND))
            g = torch.Generator().manual_seed(0)
            x = torch.randn(batch, config.audio.n_mels, frames, generator=g)
            cond = torch.randn(batch, frames, config.model.text_dim, generator=g)
            mask = torch.ones(batch, frames, dtype=torch.bool)
            t = torch.full((batch,), 0.5)
            speaker = torch.randn(batch, config.model.speaker_dim) if config.model.n_speakers > 1 else None
            per = {k: [] for k in LAYOUTS}
            with torch.inference_mode():
                for _ in range(args.rounds):
                    for layout, net in nets.items():
                        per[layout].append(median_call_seconds(lambda: net(x, t, cond, mask, speaker), args.repeats))
            ms = {k: 1000 * statistics.median(v) for k, v in per.items()}
            row = {"batch": batch, "seconds": seconds, "frames": frames, "ms_per_nfe": ms,
                   "ms_per_nfe_per_audio_s": {k: v / seconds for k, v in ms.items()},
                   "speedup_udit": ms["dit"] / ms["udit"]}
            rows.append(row)
            print(f"batch {batch}, {seconds:4.0f} s: dit {ms['dit']:8.1f} ms, udit {ms['udit']:8.1f} ms "
                  f"({row['speedup_udit']:.2f}x)", flush=True)
    result = {"config": args.checkpoint, "params": n_params, "outer": args.outer, "threads": args.threads,
              "repeats": args.repeats, "rounds": args.rounds, "load_before": load_before,
              "load_after": os.getloadavg(), "rows": rows}
    print(f"parameters {n_params}; load average before {load_before}, after {result['load_after']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
