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
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from .types import float_range, int_range, speaker_arg

__all__ = ["add_arguments", "run", "FLOW_FLAGS", "LEWM_FLAGS"]

FLOW_FLAGS = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg")
LEWM_FLAGS = ("min_length_ratio", "max_length_ratio", "prompt_audio", "prompt_text")


def _flags(names) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)

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
    from ..lewm.synthesizer import MAX_TEMPERATURE

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
                        help=f"flow matching: {flow_t.help}, {flow_t.range_text}; LeWM: std of the noise added to "
                             f"each generated latent before it is fed back, [0, {MAX_TEMPERATURE:g}]; default: the "
                             "checkpoint's")
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
    if out.suffix.lower() != ".wav":
        raise UsageError(f"--out must name a .wav file, got {args.out!r}")
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
    synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder,
                                        precision=args.precision)
    family = synth.config.model.family
    wrong = [k for k, v in (flow if family == "lewm" else lewm).items() if v is not None]
    if wrong:
        other, own = ("flow-matching", LEWM_FLAGS) if family == "lewm" else ("LeWM", FLOW_FLAGS)
        this = "LeWM" if family == "lewm" else "flow-matching"
        raise UsageError(f"{_flags(wrong)} {'applies' if len(wrong) == 1 else 'apply'} to {other} checkpoints only; "
                         f"{args.checkpoint or 'the demo voice'} is a {this} checkpoint "
                         f"(its flags: {_flags(own + ('temperature',))})")
    options = lewm if family == "lewm" else flow
    result = synth.synthesize(text, **options, temperature=args.temperature, seed=args.seed, speaker=args.speaker)
    save_wav(out, result.audio, result.sample_rate, subtype="FLOAT")
    report = {**result.settings, "nfe": result.nfe, "timings": result.timings,
              "duration_s": result.duration, "sample_rate": result.sample_rate, "out": str(out)}
    print(json.dumps(report, indent=2))
    return 0
