"""``python -m core bench``: sampling speed of a checkpoint as JSON (:mod:`core.sampling.bench`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..sampling.bench import DEFAULT_TEXT, FULL_PLAN, QUICK_PLAN, run_benchmark
from .types import BUNDLED_NAMES, checkpoint_arg, int_range


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=checkpoint_arg,
                        help=f"checkpoint file (.pt or .safetensors) or {BUNDLED_NAMES}")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int_range(1, 1024), default=None,
                        help="CPU threads for torch (default: auto, see core.threads; stated in the report)")
    parser.add_argument("--repeats", type=int_range(1, 1000), default=3,
                        help="timed calls per configuration (median), default 3")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    parser.add_argument("--quick", action="store_true", help="few configurations (steps 1, 5; euler, heun; "
                                                             "batches 1, 2): for tests")
    parser.add_argument("--vocoder", default="auto", help="vocoder spec as for synth (default auto)")
    parser.add_argument("--precision", default="fp32", help="network precision: fp32, bf16, fp16")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="the sentence to synthesise (one chunk: "
                                                             "at most 300 characters)")


def run(args: argparse.Namespace) -> int:
    from . import UsageError
    from ..sampling.synthesizer import Synthesizer

    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder,
                                        precision=args.precision)
    report = run_benchmark(synth, plan=QUICK_PLAN if args.quick else FULL_PLAN, repeats=args.repeats,
                           text=args.text)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
