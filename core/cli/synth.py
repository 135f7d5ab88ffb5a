"""``python -m core synth``: synthesise text with a checkpoint and write a WAV file.

Writes float32 mono audio (peak-safe, at the checkpoint's rate: 24 kHz for the default
mel settings) and prints the settings JSON (everything needed to re-render it, plus
``nfe``, ``timings``, ``duration_s`` and the output path) on stdout.  Bad input (a
missing checkpoint, an unknown solver, steps < 1, sway outside [-1, 1], empty text ...)
is one ``error: ...`` line on stderr and exit status 2 (see :mod:`core.cli`).

``--onnx DIR`` samples with an ONNX export (``python -m core export-onnx``) in
onnxruntime instead of a checkpoint.  ``--stream`` renders sentence by sentence
(:meth:`core.Synthesizer.stream`) and writes each piece as soon as it is ready: into the
WAV file, or with ``--out -`` to stdout as raw float32 little-endian mono samples (the
settings JSON then goes to stderr), e.g. ``... --stream --out - | aplay -f FLOAT_LE -r
24000``.
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
    parser.add_argument("--out", required=True,
                        help="output audio file (.wav); with --stream, '-' writes raw float32 samples to stdout")
    parser.add_argument("--onnx", default=None, metavar="DIR",
                        help="sample with an ONNX export folder (python -m core export-onnx) in onnxruntime "
                             "instead of a checkpoint (CPU, fp32)")
    parser.add_argument("--stream", action="store_true",
                        help="render sentence by sentence and write the audio as it is ready")
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
    to_stdout = args.stream and args.out == "-"
    if out.suffix.lower() != ".wav" and not to_stdout:
        raise UsageError(f"--out must name a .wav file{' (or - with --stream)' if args.stream else ''}, "
                         f"got {args.out!r}")
    if args.onnx is not None and args.checkpoint is not None:
        raise UsageError("give --checkpoint or --onnx, not both")
    if args.onnx is not None and args.precision not in ("fp32", "int8"):
        raise UsageError(f"--onnx runs the exported fp32 (or --int8) graphs; --precision {args.precision} "
                         "needs a checkpoint")
    # the options that need no checkpoint are checked before anything is loaded
    from ..sampling.options import OPTION_ORDER

    given = {k: getattr(args, k) for k in OPTION_ORDER}
    check_options(**{k: getattr(SamplingConfig, k) if v is None else v for k, v in given.items()}, seed=args.seed)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise CheckpointError(f"{args.checkpoint}: no such checkpoint file")
    if args.onnx is not None:
        if args.device not in ("auto", "cpu"):
            raise UsageError(f"--onnx runs on the CPU; --device {args.device} needs a checkpoint")
        synth = Synthesizer.from_onnx(args.onnx, vocoder=args.vocoder, precision=args.precision)
    else:
        synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder,
                                            precision=args.precision)
    if args.stream:
        return _stream(synth, text, given, args, out, to_stdout)
    result = synth.synthesize(text, **given, seed=args.seed, speaker=args.speaker)
    save_wav(out, result.audio, result.sample_rate, subtype="FLOAT")
    report = {**result.settings, "nfe": result.nfe, "timings": result.timings,
              "duration_s": result.duration, "sample_rate": result.sample_rate, "out": str(out)}
    print(json.dumps(report, indent=2))
    return 0


def _stream(synth, text: str, given: dict, args: argparse.Namespace, out: Path, to_stdout: bool) -> int:
    """Write the pieces of ``synth.stream`` as they come; the report goes to stdout (to
    stderr when the audio does)."""
    import secrets
    import time

    import soundfile as sf

    seed = secrets.randbelow(2 ** 31) if args.seed is None else args.seed
    start = time.perf_counter()
    pieces = synth.stream(text, **given, seed=seed, speaker=args.speaker)  # checks everything first
    first, samples = None, 0
    sink = None if to_stdout else sf.SoundFile(str(out), "w", samplerate=synth.sample_rate, channels=1,
                                                subtype="FLOAT", format="WAV")
    try:
        for piece in pieces:
            if first is None:
                first = time.perf_counter() - start
            if sink is None:
                sys.stdout.buffer.write(piece.astype("<f4").tobytes())
                sys.stdout.buffer.flush()
            else:
                sink.write(piece)
                sink.flush()
            samples += len(piece)
    finally:
        if sink is not None:
            sink.close()
    total = time.perf_counter() - start
    report = {"text": text, **{k: v for k, v in given.items() if v is not None}, "seed": seed,
              "speaker": args.speaker, "backend": synth.backend, "stream": True, "chunking": "sentence",
              "first_audio_s": first, "total_s": total, "duration_s": samples / synth.sample_rate,
              "sample_rate": synth.sample_rate, "out": "-" if to_stdout else str(out)}
    (sys.stderr if to_stdout else sys.stdout).write(json.dumps(report, indent=2) + "\n")
    return 0
