"""Seconds per vocoder training step on this machine, side by side: generator-only
reconstruction steps at a few sizes, and adversarial steps with the full Vocos
discriminators against lighter ones.  Timing only (random speech-like audio; the
content does not change the cost).  Prints one JSON row per variant and a table.

    OMP_NUM_THREADS=1 python benchmarks/vocoder_recipe.py --threads 1 --steps 3

Each variant: one warm-up step, then the median of ``--steps`` timed steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def _batch(batch: int, frames: int, seed: int = 0):
    from core.audio import mel_spectrogram
    from core.vocoder_train.data import SegmentBatch

    g = torch.Generator().manual_seed(seed)
    n = frames * 256
    t = torch.arange(n) / 24000.0
    f0 = 100 + 100 * torch.rand(batch, 1, generator=g)
    audio = sum(torch.sin(2 * torch.pi * f0 * k * t) / k for k in range(1, 8)) * 0.1
    audio = audio + 0.01 * torch.randn(batch, n, generator=g)
    return SegmentBatch(audio.float(), mel_spectrogram(audio.float())[..., : frames + 1])


VARIANTS = [
    # name, generator (dim, intermediate, layers), segment frames, batch,
    # discriminator (periods, fft_sizes, MRD channels[, MPD channels]) or None
    ("recon g128x6 seg32 b8", (128, 384, 6), 32, 8, None),
    ("recon g256x8 seg32 b8", (256, 768, 8), 32, 8, None),
    ("recon g256x8 seg32 b16", (256, 768, 8), 32, 16, None),
    ("recon g256x8 seg64 b8", (256, 768, 8), 64, 8, None),
    ("recon g384x8 seg32 b8", (384, 1152, 8), 32, 8, None),
    ("recon g512x8 seg32 b8 (vocos size)", (512, 1536, 8), 32, 8, None),
    ("adv full MPD(2,3,5,7,11)+MRD(2048,1024,512)x32", (256, 768, 8), 32, 8, ([2, 3, 5, 7, 11], [2048, 1024, 512], 32)),
    ("adv MPD(2,3,5)+MRD(1024)x16", (256, 768, 8), 32, 8, ([2, 3, 5], [1024], 16)),
    ("adv MPD(2,3)", (256, 768, 8), 32, 8, ([2, 3], [], 32)),
    ("adv MRD(2048,1024,512)x32 only", (256, 768, 8), 32, 8, ([], [2048, 1024, 512], 32)),
    ("adv MRD(1024)x16 only", (256, 768, 8), 32, 8, ([], [1024], 16)),
    ("adv MRD(2048,1024,512)x16 only", (256, 768, 8), 32, 8, ([], [2048, 1024, 512], 16)),
    ("adv g128x6 MRD(2048,1024,512)x16 only", (128, 384, 6), 32, 8, ([], [2048, 1024, 512], 16)),
    # thin periodic discriminators (mpd_channels c: c-4c-16c-32c-32c instead of 32-128-512-1024-1024)
    ("thin g128x6 MPD(2,3,5,7,11)x4", (128, 384, 6), 32, 8, ([2, 3, 5, 7, 11], [], 16, 4)),
    ("thin g128x6 MPD(2,3,5,7,11)x8", (128, 384, 6), 32, 8, ([2, 3, 5, 7, 11], [], 16, 8)),
    ("thin g128x6 MPD(2,3,5,7,11)x4+MRD(2048,1024,512)x16", (128, 384, 6), 32, 8,
     ([2, 3, 5, 7, 11], [2048, 1024, 512], 16, 4)),
]


def measure(name, gen, frames, batch, disc, steps):
    from core.vocoder_train.config import DiscriminatorConfig, GeneratorConfig, VocoderConfig, VocoderTrainingConfig
    from core.vocoder_train.step import VocoderLearner

    torch.manual_seed(0)
    d = disc or ([], [], 32)
    cfg = VocoderConfig(generator=GeneratorConfig(*gen),
                        discriminator=DiscriminatorConfig(periods=d[0], fft_sizes=d[1], mrd_channels=d[2],
                                                          mpd_channels=d[3] if len(d) > 3 else 32),
                        training=VocoderTrainingConfig(segment_frames=frames, batch_size=batch, steps=10**6,
                                                       adversarial_start=0 if disc else 10**6, disc_every=1,
                                                       warmup_steps=0))
    cfg.validate()
    learner = VocoderLearner(cfg)
    b = _batch(batch, frames)
    learner.train_step(b, 0)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        learner.train_step(b, i + 1)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in learner.generator.parameters())
    dparams = 0 if learner.discriminators is None else sum(p.numel() for p in learner.discriminators.parameters())
    return {"variant": name, "s_per_step": statistics.median(times), "times": times,
            "generator_params": params, "discriminator_params": dparams, "load": os.getloadavg()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--only", default="", help="run variants whose name contains this text")
    p.add_argument("--out", default="", help="append JSON rows to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for v in VARIANTS:
        if args.only and args.only not in v[0]:
            continue
        row = measure(*v, steps=args.steps)
        row["threads"] = args.threads
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print("\n| variant | s/step | G params | D params | load (1/5/15 min) |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['s_per_step']:.2f} | {r['generator_params'] / 1e6:.2f}M | "
              f"{r['discriminator_params'] / 1e6:.2f}M | {' '.join(f'{x:.2f}' for x in r['load'])} |")


if __name__ == "__main__":
    main()
