"""``python -m core train --config C --out DIR [--resume | --init CHECKPOINT [--init-step N]]`` (also under torchrun)."""

from __future__ import annotations

import argparse
import logging

from ..config import Config, merge
from .types import int_range

MAX_TRAINING_STEPS = 10 ** 8  # 300x the base preset's run; more is a typo, not a plan


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..config import PRESETS

    p.add_argument("--config", required=True, help=f"JSON config file, or a preset name: {', '.join(PRESETS)} "
                                                    "(lewm_*: the LeWM family)")
    p.add_argument("--out", required=True, help="run folder (config.json, metrics.jsonl, checkpoints/, samples/)")
    p.add_argument("--data", help="override training.data (LJSpeech folder or manifest .csv/.jsonl)")
    p.add_argument("--steps", type=int_range(1, MAX_TRAINING_STEPS), help=f"override training.steps (1..{MAX_TRAINING_STEPS})")
    p.add_argument("--objective", help="override objective.name (cfm, edm, meanflow; flow-matching family only)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start a new run (step 0, fresh optimizer) from this checkpoint's weights (its EMA "
                        "weights; an export works too): matching weights loaded, new output layers (e.g. "
                        "MeanFlow's interval embedding) zeroed; sets training.init")
    p.add_argument("--init-step", type=int_range(0, MAX_TRAINING_STEPS), metavar="STEP",
                   help="with --init: count on from this step (e.g. the step the --init export was taken at), so "
                        "the learning-rate schedule continues where that run was; the optimizer and data order "
                        "start afresh; sets training.init_step")
    p.add_argument("--no-progress", action="store_true", help="no console progress bar")


def run(args: argparse.Namespace) -> int:
    from . import UsageError
    from ..train.loop import train

    if args.init is not None and args.resume:
        raise UsageError("--init starts a new run from a checkpoint's weights and --resume continues the run in "
                         "--out; give one of them")
    if args.init is not None and not args.init.strip():
        raise UsageError("--init needs a checkpoint file")
    if args.init_step is not None and args.init is None:
        raise UsageError("--init-step continues a run from the checkpoint that --init names; give --init too")
    cfg = Config.load(args.config)
    overrides: dict = {}
    if args.init is not None:
        overrides.setdefault("training", {})["init"] = args.init
    if args.init_step is not None:
        overrides.setdefault("training", {})["init_step"] = args.init_step
    if args.data:
        overrides.setdefault("training", {})["data"] = args.data
    if args.steps is not None:
        if args.steps < 1:
            raise UsageError("--steps must be >= 1")
        overrides.setdefault("training", {})["steps"] = args.steps
    if args.objective:
        overrides.setdefault("objective", {})["name"] = args.objective
    if overrides:
        cfg = merge(cfg, overrides)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = train(cfg, args.out, device=args.device, resume=args.resume, progress=not args.no_progress)
    if path is not None:
        print(f"checkpoint: {path}")
    return 0
