"""Seconds per LeWM training step on CPU, on a synthetic batch (no data, no disk).

    OMP_NUM_THREADS=1 python benchmarks/lewm_step_time.py --config lewm_demo --threads 1

One step is what the trainer does per batch apart from loading it and the EMA update
(one pass over the weights): the loss module's forward
(:class:`core.lewm.learner.LeWMLoss`), backward, gradient clipping and an AdamW update.
The batch has the demo corpus's shape: ``--batch-frames`` mel frames (the preset's
``training.batch_frames`` by default) in clips of ``--clip-frames`` frames (285: the
corpus's mean of 3.0 s at 94 frames/s) with ``--tokens`` bytes of text each (48, its
mean), spread over the corpus's 4 speakers.  Two cases: before ``ss_start`` (one
predictor pass) and after ``ss_end`` (scheduled sampling's two passes).  Each is the
median of ``--repeats`` steps after one warm-up step.  Prints JSON with the parameter
count and the 1-minute load average, since on a shared machine the number depends on
what else runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import median_call_seconds  # noqa: E402
from core.config import Config  # noqa: E402
from core.lewm.learner import LeWMLoss  # noqa: E402
from core.lewm.model import LeWMModel  # noqa: E402

DEMO_SPEAKERS = ("slt", "rms", "awb", "kal16")     # the demo corpus's voices: the model has their embeddings


def synthetic_batch(batch: int, frames: int, tokens: int, n_mels: int, seed: int = 0) -> tuple:
    """tokens (B, L) bytes 97..122, token_mask, mel (B, n_mels, T) log-mel-like, mel_mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(97, 123, (batch, tokens), generator=g)
    mel = -5.0 + 2.0 * torch.rand(batch, n_mels, frames, generator=g)
    return ids, ids > 0, mel, torch.ones(batch, frames, dtype=torch.bool)


def step_seconds(config: Config, batch_frames: int, clip_frames: int, tokens: int, repeats: int) -> dict:
    """Median seconds of one training step before and after scheduled sampling starts."""
    torch.manual_seed(0)
    n_speakers = len(DEMO_SPEAKERS)
    model = LeWMModel(dataclasses.replace(config.model, n_speakers=n_speakers), config.lewm,
                      n_mels=config.audio.n_mels).train()
    batch = max(1, batch_frames // clip_frames)
    tok, tok_mask, mel, mel_mask = synthetic_batch(batch, clip_frames, tokens, config.audio.n_mels)
    speakers = torch.arange(batch) % n_speakers
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    total = config.training.steps
    result = {"parameters": sum(p.numel() for p in model.parameters()), "batch": batch,
              "frames": batch * clip_frames}
    for name, step in (("one_pass", 0), ("two_passes", total)):
        learner = LeWMLoss(model, total, step_fn=lambda step=step: step)

        def train_step() -> None:
            out = learner(tok, tok_mask, speakers, mel, mel_mask, torch.Generator().manual_seed(0))
            opt.zero_grad()
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.training.grad_clip)
            opt.step()

        result[f"{name}_s"] = round(median_call_seconds(train_step, repeats), 3)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="lewm_demo", help="a LeWM preset name or JSON config")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--batch-frames", type=int, default=None, help="default: the config's batch_frames")
    parser.add_argument("--clip-frames", type=int, default=285)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    if config.model.family != "lewm":
        parser.error(f"{args.config} is a {config.model.family!r} config; this measures LeWM")
    if min(args.threads, args.clip_frames, args.tokens, args.repeats) < 1:
        parser.error("--threads, --clip-frames, --tokens and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    frames = args.batch_frames or config.training.batch_frames
    out = step_seconds(config, frames, args.clip_frames, args.tokens, args.repeats)
    out.update(config=args.config, threads=args.threads, load_average_1min=round(os.getloadavg()[0], 2))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
