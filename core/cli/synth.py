"""``python -m core synth``: synthesise text with a checkpoint and write a WAV file.

Writes float32 mono audio (peak-safe, at the checkpoint's rate: 24 kHz for the default
mel settings) and prints the settings JSON (everything needed to re-render it, plus
``nfe``, ``timings``, ``duration_s`` and the output path) on stdout.  Bad input (a
missing checkpoint, an unknown solver, steps < 1, sway outside [-1, 1], empty text ...)
is one ``error: ...`` line on stderr and exit status 2 (see :mod:`core.cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from .types import float_range, int_range, speaker_arg

__all__ = ["add_arguments", "run"]



def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sampling.options import SAMPLER_OPTIONS, SEED_RANGE
    from ..sampling.synthesizer import PRECISIONS

    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (.pt or .safetensors); default: the bundled demo voice")
    parser.add_argument("--text", required=True, help="text to speak; '-' reads it from stdin")
    parser.add_argument("--out", required=True, help="output audio file (.wav)")
    # sampler options left out take the checkpoint's own defaults (its config's "sampling");
    # names, ranges and help come from the one record of them (core/sampling/options.py),
    # and numbers are range-checked where they are parsed
    for option in SAMPLER_OPTIONS:
        kind = (int_range(int(option.low), int(option.high)) if option.kind is int
                else float_range(option.low, option.high) if option.kind is float else str)
        parser.add_argument(f"--{option.name.replace('_', '-')}", type=kind, default=None,
                            help=f"{option.help}; {option.range_text}; default: the checkpoint's "
                                 f"(unless set: {option.default})")
    parser.add_argument("--seed", type=int_range(*SEED_RANGE), default=None,
                        help="random seed (default: random, printed)")
    parser.add_argument("--speaker", type=speaker_arg, default=None, help="speaker name or index")
    parser.add_argument("--vocoder", default="auto",
                        help="auto, griffin-lim, a Vocos folder (config.yaml + pytorch_model.bin) or hub:<id>")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="fp32", help=f"network precision: {', '.join(PRECISIONS)}")


def run(args: argparse.Namespace) -> int:
    from ..audio import save_wav
    from ..checkpoint import CheckpointError
    from . import UsageError
    from ..config import SamplingConfig
    from ..sampling.synthesizer import Synthesizer, check_options

    text = sys.stdin.read().strip() if args.text == "-" else args.text
    out = Path(args.out)
    if out.suffix.lower() != ".wav":
        raise UsageError(f"--out must name a .wav file, got {args.out!r}")
    # the options that need no checkpoint are checked before anything is loaded
    from ..sampling.options import OPTION_ORDER

    given = {k: getattr(args, k) for k in OPTION_ORDER}
    check_options(**{k: getattr(SamplingConfig, k) if v is None else v for k, v in given.items()}, seed=args.seed)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise CheckpointError(f"{args.checkpoint}: no such checkpoint file")
    synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder,
                                        precision=args.precision)
    result = synth.synthesize(text, **given, seed=args.seed, speaker=args.speaker)
    save_wav(out, result.audio, result.sample_rate, subtype="FLOAT")
    report = {**result.settings, "nfe": result.nfe, "timings": result.timings,
              "duration_s": result.duration, "sample_rate": result.sample_rate, "out": str(out)}
    print(json.dumps(report, indent=2))
    return 0
