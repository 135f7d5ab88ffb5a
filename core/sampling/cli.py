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
from ..cli_types import float_range, int_range

__all__ = ["add_arguments", "run"]


def _speaker(value: str):
    """A speaker given on the command line: an index when it is digits, else a name."""
    return int(value) if value.strip().isdigit() else value


SAMPLER_OPTIONS = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg", "temperature")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .grids import SCHEDULES
    from .solvers import FIXED_STEP_SOLVERS
    from .synthesizer import MAX_STEPS, PRECISIONS

    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file (.pt or .safetensors); default: the bundled demo voice")
    parser.add_argument("--text", required=True, help="text to speak; '-' reads it from stdin")
    parser.add_argument("--out", required=True, help="output audio file (.wav)")
    # sampler options left out take the checkpoint's own defaults (its config's "sampling")
    parser.add_argument("--steps", type=int_range(1, MAX_STEPS), default=None, help=f"solver steps (1..{MAX_STEPS}); default: the checkpoint's (10)")
    parser.add_argument("--solver", default=None,
                        help=f"ODE solver: {', '.join(FIXED_STEP_SOLVERS)}; default: the checkpoint's (euler)")
    parser.add_argument("--schedule", default=None,
                        help=f"time grid: {', '.join(SCHEDULES)}; default: the checkpoint's (sway)")
    parser.add_argument("--sway", type=float_range(-1.0, 1.0), default=None,
                        help="sway coefficient in [-1, 1]; default: the checkpoint's (-1)")
    parser.add_argument("--duration-scale", type=float_range(), default=None,
                        help="> 1 speaks slower; default: the checkpoint's (1)")
    parser.add_argument("--cfg", type=float_range(), default=None,
                        help="classifier-free guidance strength >= 0; default: the checkpoint's (0)")
    parser.add_argument("--temperature", type=float_range(), default=None,
                        help="initial noise scale >= 0; default: the checkpoint's (1)")
    parser.add_argument("--seed", type=int_range(0, 2 ** 62 - 1), default=None, help="random seed (default: random, printed)")
    parser.add_argument("--speaker", type=_speaker, default=None, help="speaker name or index")
    parser.add_argument("--vocoder", default="auto",
                        help="auto, griffin-lim, a Vocos folder (config.yaml + pytorch_model.bin) or hub:<id>")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="fp32", help=f"network precision: {', '.join(PRECISIONS)}")


def run(args: argparse.Namespace) -> int:
    from ..audio import save_wav
    from ..checkpoint import CheckpointError
    from ..cli import UsageError
    from ..config import SamplingConfig
    from .synthesizer import Synthesizer, check_options

    text = sys.stdin.read().strip() if args.text == "-" else args.text
    out = Path(args.out)
    if out.suffix.lower() != ".wav":
        raise UsageError(f"--out must name a .wav file, got {args.out!r}")
    # the options that need no checkpoint are checked before anything is loaded
    given = {k: getattr(args, k) for k in SAMPLER_OPTIONS}
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
