"""``python -m core synth``: synthesise text with a checkpoint and write a WAV file.

Writes float32 mono audio (peak-safe, at the checkpoint's rate: 24 kHz for the default
mel settings) and prints the settings JSON (everything needed to re-render it, plus
``nfe``, ``timings``, ``duration_s`` and the output path) on stdout.  Bad input (a
missing checkpoint, an unknown solver, steps < 1, sway outside [-1, 1], empty text ...)
is one ``error: ...`` line on stderr and exit status 2 (see :mod:`core.cli`).

Either family's checkpoint works.  ``--temperature`` applies to both (flow: the scale of
the initial noise, in [0, 2]; LeWM: the noise on fed-back latents, in [0, 10]).  The
flow-matching flags (:data:`FLOW_FLAGS`) are refused for a LeWM checkpoint, and the LeWM
flags (:data:`LEWM_FLAGS`: length ratios and the voice prompt) for a flow checkpoint, in
one line naming them; a flag left out takes the checkpoint's own default.

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
from .types import BUNDLED_NAMES, checkpoint_arg, float_range, int_range, speaker_arg

__all__ = ["add_arguments", "run", "FLOW_FLAGS", "LEWM_FLAGS"]

FLOW_FLAGS = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg")
LEWM_FLAGS = ("min_length_ratio", "max_length_ratio", "prompt_audio", "prompt_text")


def _flags(names) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sampling.options import SAMPLER_OPTIONS, SEED_RANGE
    from ..sampling.synthesizer import PRECISIONS

    parser.add_argument("--checkpoint", default=None, type=checkpoint_arg,
                        help=f"checkpoint file (.pt or .safetensors) or {BUNDLED_NAMES}; default: the bundled "
                             "everyday voice")
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
    from ..lewm.synthesizer import MAX_TEMPERATURE, TEMPERATURE_HELP as LEWM_TEMPERATURE_HELP

    for option in SAMPLER_OPTIONS:
        if option.name == "temperature":
            continue
        kind = (int_range(int(option.low), int(option.high)) if option.kind is int
                else float_range(option.low, option.high) if option.kind is float else str)
        parser.add_argument(f"--{option.name.replace('_', '-')}", type=kind, default=None,
                            help=f"{option.help}; {option.range_text}; default: the checkpoint's "
                                 f"(unless set: {option.default})")
    flow_t = [o for o in SAMPLER_OPTIONS if o.name == "temperature"][0]
    parser.add_argument("--temperature", type=float_range(0.0, MAX_TEMPERATURE), default=None,
                        help=f"flow matching: {flow_t.help}, {flow_t.range_text}; {LEWM_TEMPERATURE_HELP}, "
                             f"[0, {MAX_TEMPERATURE:g}]; default: the checkpoint's")
    lewm = parser.add_argument_group("LeWM checkpoints only")
    lewm.add_argument("--min-length-ratio", type=float_range(0.0, 1000.0), default=None,
                      help="mel frames per text token before which the stop head is ignored; default: the checkpoint's")
    lewm.add_argument("--max-length-ratio", type=float_range(0.0, 1000.0), default=None,
                      help="mel frames per text token at which generation ends; default: the checkpoint's")
    lewm.add_argument("--prompt-audio", default=None,
                      help="voice prompt: a reference audio file (resampled to the checkpoint's rate; at most "
                           "15 s); its latents are the predictor's prefix; needs --prompt-text")
    lewm.add_argument("--prompt-text", default=None, help="the transcript of --prompt-audio, read before the text")
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
    # the flow options need no checkpoint: checked before anything is loaded (the
    # temperature's range depends on the family, so it is checked by synthesize)
    flow = {k: getattr(args, k) for k in FLOW_FLAGS}
    check_options(**{k: getattr(SamplingConfig, k) if v is None else v for k, v in flow.items()},
                  temperature=SamplingConfig.temperature, seed=args.seed)
    lewm = {k: getattr(args, k) for k in LEWM_FLAGS}
    if args.prompt_audio is not None and not Path(args.prompt_audio).is_file():
        raise UsageError(f"--prompt-audio: no such audio file {args.prompt_audio}")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise CheckpointError(f"{args.checkpoint}: no such checkpoint file")
    if args.onnx is not None:
        if args.device not in ("auto", "cpu"):
            raise UsageError(f"--onnx runs on the CPU; --device {args.device} needs a checkpoint")
        synth = Synthesizer.from_onnx(args.onnx, vocoder=args.vocoder, precision=args.precision)
    else:
        synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder,
                                            precision=args.precision)
    family = synth.config.model.family
    wrong = [k for k, v in (flow if family == "lewm" else lewm).items() if v is not None]
    if wrong:
        other, own = ("flow-matching", LEWM_FLAGS) if family == "lewm" else ("LeWM", FLOW_FLAGS)
        this = "LeWM" if family == "lewm" else "flow-matching"
        raise UsageError(f"{_flags(wrong)} {'applies' if len(wrong) == 1 else 'apply'} to {other} checkpoints only; "
                         f"{args.checkpoint or args.onnx or 'the everyday voice'} is a {this} checkpoint "
                         f"(its flags: {_flags(own + ('temperature',))})")
    options = {**(lewm if family == "lewm" else flow), "temperature": args.temperature}
    if args.stream:
        if family == "lewm":
            raise UsageError("--stream renders flow-matching checkpoints only (a LeWM checkpoint is not streamed yet)")
        return _stream(synth, text, options, args, out, to_stdout)
    result = synth.synthesize(text, **options, seed=args.seed, speaker=args.speaker)
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
