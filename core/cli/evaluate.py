"""``python -m core eval``: score a checkpoint (or the flite references) on sentences.

For each sentence of ``--sentences`` (``id|text`` lines, e.g. a corpus's ``heldout.txt``)
the checkpoint speaks it, pocketsphinx transcribes it (WER), DNSMOS rates it, and with
``--references`` (a manifest such as ``heldout_manifest.csv``, rows matched by text and
``--speaker``) the MCD-DTW against the reference recording is measured.  RTF is the
synthesizer's own ``timings["total"]`` over the audio length, after one unscored warm-up
call.  ``--references-only`` scores the reference recordings themselves: the reference
point for the same sentences (no checkpoint, no MCD, no RTF); with ``--resynthesize``
each recording is first passed through its mel and ``--vocoder`` (copy synthesis), and
MCD against the untouched recording measures what the vocoder alone loses.  A sampler
option left out (``--steps``, ``--cfg`` ...) takes the checkpoint's own default (its
config's ``sampling`` section), so a plain call scores the voice as it ships.

The JSON report (``--out`` or stdout) holds ``settings`` (the sampler options as used,
``nfe``), ``means`` (``wer`` pooled over all words; ``acoustic_seconds``, the mean
text-to-mel time per sentence) and one row per sentence; a summary line goes to stderr.  Needs the eval
extra: ``pip install -e ".[eval]"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .types import BUNDLED_NAMES, checkpoint_arg, float_range, int_range, speaker_arg

__all__ = ["add_arguments", "run"]

EVAL_MODULES = ("pocketsphinx", "speechmos", "onnxruntime", "librosa")
SAMPLER_FLAGS = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg", "temperature")



def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..sampling.synthesizer import MAX_STEPS

    parser.add_argument("--checkpoint", default=None, type=checkpoint_arg,
                        help=f"checkpoint to evaluate, or {BUNDLED_NAMES} (default: the bundled everyday voice)")
    parser.add_argument("--sentences", required=True, help="sentence file: 'id|text' or plain text lines")
    parser.add_argument("--references", default=None,
                        help="manifest of reference recordings (e.g. <corpus>/heldout_manifest.csv) for MCD")
    parser.add_argument("--references-only", action="store_true",
                        help="score the reference recordings themselves instead of a checkpoint")
    parser.add_argument("--resynthesize", action="store_true",
                        help="with --references-only: pass each reference through mel -> --vocoder first "
                             "(copy synthesis), the reference point for a model heard through that vocoder")
    parser.add_argument("--speaker", type=speaker_arg, default=None,
                        help="speaker name (or index) to synthesise and to pick references by")
    parser.add_argument("--reference-speaker", default=None,
                        help="speaker whose rows of --references to use (default: --speaker)")
    # sampler options left out take the checkpoint's own defaults (its config's "sampling",
    # core.config.SamplingConfig), as `python -m core synth` does
    parser.add_argument("--steps", type=int_range(1, MAX_STEPS), default=None,
                        help=f"solver steps (1..{MAX_STEPS}); default: the checkpoint's (unless set: 10)")
    parser.add_argument("--solver", default=None,
                        help="ODE solver (euler, midpoint, heun, rk4); default: the checkpoint's (unless set: euler)")
    parser.add_argument("--schedule", default=None,
                        help="time grid (linear, power, sway, epss); default: the checkpoint's (unless set: sway)")
    parser.add_argument("--sway", type=float_range(-1.0, 1.0), default=None,
                        help="sway coefficient in [-1, 1]; default: the checkpoint's (unless set: -1)")
    parser.add_argument("--duration-scale", type=float_range(), default=None,
                        help="> 1 speaks slower; default: the checkpoint's (unless set: 1)")
    parser.add_argument("--cfg", type=float_range(), default=None,
                        help="classifier-free guidance strength >= 0; default: the checkpoint's (unless set: 0)")
    parser.add_argument("--temperature", type=float_range(), default=None,
                        help="initial noise scale >= 0; default: the checkpoint's (unless set: 1)")
    parser.add_argument("--seed", type=int_range(0, 2 ** 62 - 1), default=0, help="sampling seed for every sentence (default 0)")
    parser.add_argument("--vocoder", default="auto",
                        help="auto, griffin-lim, a Vocos folder (config.yaml + pytorch_model.bin) or hub:<id>")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    parser.add_argument("--limit", type=int_range(1, 10 ** 6), default=None, help="score only the first N sentences")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (it takes ~1 s per clip on CPU)")
    parser.add_argument("--out", default=None, help="JSON report file (default: print to stdout)")


def _check_extra() -> None:
    import importlib.util

    from . import UsageError

    missing = [m for m in EVAL_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"evaluation needs the eval extra ({', '.join(missing)} not installed); "
                         'install it with: pip install -e ".[eval]"')


def _summary(means: dict) -> str:
    parts = [f"WER {means['wer']:.3f}"]
    for key, label in (("dnsmos_ovrl", "DNSMOS ovrl"), ("dnsmos_sig", "sig"), ("dnsmos_bak", "bak"),
                       ("mcd", "MCD"), ("rtf", "RTF")):
        if key in means:
            parts.append(f"{label} {means[key]:.3f}")
    return ", ".join(parts)


class _CopySynthesis:
    """Speaks a sentence by reading its reference, taking the Vocos-exact log-mel of it
    (default :class:`core.config.AudioConfig`, 24 kHz) and decoding that with a vocoder."""

    def __init__(self, references: dict, vocoder_spec: str, device: str):
        from ..audio import load_wav, mel_spectrogram
        from ..config import AudioConfig
        from ..sampling.synthesizer import _resolve_device
        from ..vocoders import load_vocoder

        self.audio = AudioConfig()
        self.vocoder = load_vocoder(vocoder_spec, self.audio, _resolve_device(device))
        self.vocoder_name = self.vocoder.name
        self.references = references
        self._load, self._mel = load_wav, mel_spectrogram

    def __call__(self, sentence):
        from .. import eval as ev

        wav = self._load(self.references[sentence.id], self.audio.sample_rate)
        mel = self._mel(wav[None], self.audio)
        out = self.vocoder.decode(mel)[0, : wav.shape[-1]]
        return ev.EvalClip(out.cpu().numpy(), self.audio.sample_rate)


def run(args: argparse.Namespace) -> int:
    from .. import eval as ev
    from ..audio import load_wav_with_rate
    from ..checkpoint import atomic_write
    from . import UsageError

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.references_only and args.references is None:
        raise UsageError("--references-only needs --references MANIFEST (the recordings to score)")
    if args.references_only and args.checkpoint is not None:
        raise UsageError("--references-only scores the references, not a checkpoint; drop --checkpoint")
    if args.resynthesize and not args.references_only:
        raise UsageError("--resynthesize applies to --references-only (a checkpoint is always vocoded)")
    if args.out is not None and Path(args.out).suffix.lower() != ".json":
        raise UsageError(f"--out must name a .json file, got {args.out!r}")
    _check_extra()
    sentences = ev.read_sentences(args.sentences)[: args.limit]
    references, settings_speaker = None, None
    if args.references is not None:
        ref_speaker = args.reference_speaker if args.reference_speaker is not None else args.speaker
        if isinstance(ref_speaker, int):
            raise UsageError("--references picks rows by speaker name; give --reference-speaker as a name")
        references = ev.references_from_manifest(args.references, sentences, ref_speaker)
        settings_speaker = ref_speaker

    settings = {"sentences": str(args.sentences), "references": args.references,
                "reference_speaker": settings_speaker, "n": len(sentences),
                "asr": "pocketsphinx en-us (bundled model)", "dnsmos": None if args.no_dnsmos else "speechmos dnsmos",
                "mcd": "core.eval.mcd_dtw: log-mel cepstra c1..c13 (SPTK scale), DTW, 10*sqrt(2)/ln(10)"}
    if args.references_only:
        settings["mode"] = "references"
        if args.resynthesize:
            speak = _CopySynthesis(references, args.vocoder, args.device)
            settings.update(mode="references-resynthesized", vocoder=speak.vocoder_name)
        else:
            def speak(sentence):
                clip = load_wav_with_rate(references[sentence.id])
                return ev.EvalClip(clip.samples, clip.sample_rate)
    else:
        from ..config import SamplingConfig
        from ..sampling.synthesizer import Synthesizer, check_options

        given = {k: getattr(args, k) for k in SAMPLER_FLAGS}
        # checked before anything is loaded; an option left out (None) is the checkpoint's, so
        # the stated default stands in for it here
        check_options(**{k: getattr(SamplingConfig, k) if v is None else v for k, v in given.items()},
                      seed=args.seed)
        if args.checkpoint is not None and not Path(args.checkpoint).is_file():
            raise UsageError(f"{args.checkpoint}: no such checkpoint file")
        synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder)
        options = dict(given, seed=args.seed, speaker=args.speaker)
        if synth.objective_name == "lewm":
            # a LeWM checkpoint has no sampler: it generates with its own defaults (lewm section)
            options = dict(seed=args.seed, speaker=args.speaker)

        def speak(sentence):
            return synth.synthesize(sentence.text, **options)

        warm = speak(sentences[0])  # first call pays for kernels and caches; not scored
        # the options as used (one left out is the checkpoint's own), and the network evaluations
        settings.update(mode="checkpoint", checkpoint=synth.checkpoint_path,
                        **{k: warm.settings.get(k, v) for k, v in options.items()}, nfe=warm.nfe,
                        synthesis={k: v for k, v in warm.settings.items() if k not in ("text", "seed", "chunks")},
                        vocoder=synth.vocoder.name, device=str(synth.device))
    try:
        report = ev.evaluate(speak, sentences, references, ev.Recognizer(),
                             dnsmos_scorer=not args.no_dnsmos, mcd=not args.references_only or args.resynthesize, settings=settings)
    except ev.MissingEvalExtra as exc:
        raise UsageError(str(exc)) from None
    text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    sys.stderr.write(f"{len(report.rows)} sentences: {_summary(report.means)}\n")
    return 0
