"""Free-running numbers of a LeWM checkpoint on held-out sentences (issue 18's table).

    python benchmarks/lewm_table.py --checkpoint runs/lewm_small/checkpoints/step_00020000.pt \\
        --sentences /work/corpus/heldout.txt --references /work/corpus/heldout_manifest.csv \\
        --speaker slt --limit 30 --out runs/lewm_table     [--reference-speaker slt]

For each held-out sentence the checkpoint generates freely (batch of one, KV cache, the
checkpoint's own temperature and length ratios unless given; seed ``--seed`` + row), and
the flite recording of the same sentence by ``--speaker`` is the reference:

- ``stopped``: the utterance ended before the maximum length: by the stop head, or by the
  attention stop (``by_attention``; ``--attention-stop``, default the checkpoint's own
  setting, see :mod:`core.lewm.generate`), whose share is reported beside it;
- ``duration_ratio``: generated seconds / reference seconds;
- ``nonsilent``: the share of mel frames whose level is within ``--silence-db`` (40 dB) of
  the reference clip's loudest frame, for the generated clip and the reference (the same
  threshold for both, so a clip that collapsed to silence scores near 0); the level of a
  frame is ``20 log10`` of its mean mel magnitude;
- pocketsphinx transcripts (``core.eval.Recognizer``) of the generated clip and of the
  flite recording; WER pooled over all words (``core.eval.wer``).

Then, teacher-forced on the same references (encoder means ``mu`` of the recording fed
to the predictor after the start vector, EMA weights, eval mode): the prediction MSE and
the copy baseline MSE(z_t, z_{t-1}) (``core.lewm.losses``), pooled over frames.

The summary holds the issue's targets and whether each is met: stop rate >= 0.95,
duration ratio within 0.6-1.6 for >= 90 % of sentences, mean |non-silent difference|
<= 0.15, WER <= 2 x flite's WER.  The table goes to stdout and ``<out>/table.md``, every
number to ``<out>/table.json``.  Each sentence is one predictor chunk (held-out sentences
are far below the synthesizer's 300-character chunk size).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.eval import frame_levels_db, nonsilent_fraction  # noqa: E402  (also this module's names, for its tests)

TARGETS = {"stop_rate": 0.95, "duration_in_range": 0.90, "duration_range": (0.6, 1.6), "nonsilent_diff": 0.15,
           "wer_over_flite": 2.0}


def _mel(audio: np.ndarray, config) -> np.ndarray:
    from core.audio import mel_spectrogram

    return mel_spectrogram(torch.from_numpy(np.asarray(audio, np.float32))[None], config)[0].numpy()


@torch.no_grad()
def free_run(synth, text: str, sid: int, seed: int, options: dict):
    """One sentence generated as ``LeWMSynthesizer`` does for a one-chunk text -> (audio,
    log-mel (n_mels, T), stopped, predictor steps, ended by the attention stop)."""
    from core.lewm import generate

    ids = synth.front_end(text)
    tokens = torch.tensor([ids], dtype=torch.long, device=synth.device)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    with synth.autocast():
        out = generate(synth.model, tokens, mask, torch.tensor([sid], device=synth.device),
                       generators=[torch.Generator().manual_seed(seed)], **options)
    n = int(out.mel_lengths[0])
    mel = out.mel[:, :, :n].float()
    audio = synth.vocoder.decode(mel).float().cpu().numpy()[0]
    by_attention = out.by_attention is not None and bool(out.by_attention[0])
    return audio, mel[0].cpu().numpy(), bool(out.stopped[0]), out.steps, by_attention


@torch.no_grad()
def teacher_forced_losses(synth, items: Sequence[tuple[str, np.ndarray]], sid: int) -> dict:
    """Prediction MSE and copy-baseline MSE over reference clips ``(text, audio)``, pooled
    by frames (each clip's mean weighted by its frame count), and ``align``: the
    guided-attention penalty of the checkpoint's guided layers and heads
    (:mod:`core.lewm.alignment`; 0 = diagonal, about 0.3 = uniform), the same weighting."""
    from core.lewm.alignment import guided_attention_loss
    from core.lewm.losses import copy_baseline_mse, prediction_mse

    model = synth.model
    cfg = model.config
    layers = range(-cfg.guided_attention_layers, 0)
    pred_sum = copy_sum = pred_n = copy_n = align_sum = 0.0
    for text, audio in items:
        mel = torch.from_numpy(_mel(audio, synth.config.audio))[None].to(synth.device)
        mel_mask = torch.ones(1, mel.shape[-1], dtype=torch.bool, device=synth.device)
        ids = synth.front_end(text)
        tokens = torch.tensor([ids], dtype=torch.long, device=synth.device)
        memory = model.encode_text(tokens, torch.ones_like(tokens, dtype=torch.bool),
                                   torch.tensor([sid], device=synth.device))
        post = model.encode_audio(model.normalize_mel(mel), mel_mask)
        token_mask = torch.ones_like(tokens, dtype=torch.bool)
        out = model.teacher_forced(post.mu[:, :-1], memory, token_mask, attention_layers=layers)
        t = post.mu.shape[1]
        pred_sum += float(prediction_mse(out.pred, post.mu, post.mask)) * t
        align_sum += float(guided_attention_loss(out.cross_attention, post.mask, token_mask,
                                                 cfg.guided_attention_sigma, cfg.guided_attention_heads)) * t
        pred_n += t
        if t > 1:
            copy_sum += float(copy_baseline_mse(post.mu, post.mask)) * (t - 1)
            copy_n += t - 1
    pred = pred_sum / max(pred_n, 1)
    copy = copy_sum / copy_n if copy_n else float("nan")
    return {"pred_mse": pred, "copy_mse": copy, "pred_over_copy": pred / copy if copy_n and copy > 0 else None,
            "align": align_sum / max(pred_n, 1)}


def summarize(rows: list[dict], wer_model: float, wer_flite: float, tf: dict) -> dict:
    lo, hi = TARGETS["duration_range"]
    ratios = np.array([r["duration_ratio"] for r in rows])
    diffs = np.array([abs(r["nonsilent_generated"] - r["nonsilent_reference"]) for r in rows])
    out = {
        "sentences": len(rows),
        "stop_rate": float(np.mean([r["stopped"] for r in rows])),
        "stop_by_attention_rate": float(np.mean([r.get("by_attention", False) for r in rows])),
        "duration_ratio_median": float(np.median(ratios)),
        "duration_in_range": float(np.mean((ratios >= lo) & (ratios <= hi))),
        "nonsilent_generated_mean": float(np.mean([r["nonsilent_generated"] for r in rows])),
        "nonsilent_reference_mean": float(np.mean([r["nonsilent_reference"] for r in rows])),
        "nonsilent_diff_mean": float(diffs.mean()),
        "nonsilent_within_0.15": float(np.mean(diffs <= TARGETS["nonsilent_diff"])),
        "wer": wer_model, "wer_flite": wer_flite,
        "wer_over_flite": wer_model / wer_flite if wer_flite > 0 else None,
        **tf,
    }
    ratio = out["wer_over_flite"]
    out["targets_met"] = {
        "stop_rate >= 0.95": out["stop_rate"] >= TARGETS["stop_rate"],
        "duration 0.6-1.6 for >= 90%": out["duration_in_range"] >= TARGETS["duration_in_range"],
        "mean |non-silent diff| <= 0.15": out["nonsilent_diff_mean"] <= TARGETS["nonsilent_diff"],
        "WER <= 2 x flite": (ratio is not None and ratio <= TARGETS["wer_over_flite"])
                            or (wer_flite == 0 and wer_model == 0),
    }
    return out


def markdown(summary: dict, settings: dict) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = [f"LeWM free-running table: {settings['checkpoint']} ({settings['sentences']} held-out sentences, "
             f"speaker {settings['speaker']}, temperature {settings['temperature']}, length ratios "
             f"{settings['min_length_ratio']}-{settings['max_length_ratio']}, attention stop "
             f"{'off' if settings.get('attention_stop') is None else settings['attention_stop']}"
             f"{', text guidance ' + str(settings['cfg']) if settings.get('cfg') else ''})", "",
             "| measure | value | target |", "|---|---|---|",
             f"| stop fired (of which by the attention stop) | {f(summary['stop_rate'])} "
             f"({f(summary['stop_by_attention_rate'])}) | >= 0.95 |",
             f"| duration ratio in 0.6-1.6 | {f(summary['duration_in_range'])} (median ratio "
             f"{f(summary['duration_ratio_median'])}) | >= 0.90 |",
             f"| non-silent fraction, generated / reference | {f(summary['nonsilent_generated_mean'])} / "
             f"{f(summary['nonsilent_reference_mean'])} (mean abs. diff {f(summary['nonsilent_diff_mean'])}) "
             "| diff <= 0.15 |",
             f"| WER (pocketsphinx) / flite's | {f(summary['wer'])} / {f(summary['wer_flite'])} (x"
             f"{f(summary['wer_over_flite'])}) | <= 2x |",
             f"| teacher-forced pred MSE / copy MSE | {f(summary['pred_mse'])} / {f(summary['copy_mse'])} (ratio "
             f"{f(summary['pred_over_copy'])}) | well below 1 |",
             f"| teacher-forced attention off the diagonal (guided-attention penalty) | {f(summary['align'])} | "
             "near 0 (uniform: about 0.3) |", ""]
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in summary["targets_met"].items()]
    return "\n".join(lines) + "\n"


def _margin(parser: argparse.ArgumentParser, value: str) -> Optional[float]:
    """``--attention-stop``: 'off' -> None, else a margin >= 0 in tokens."""
    if value.strip().lower() == "off":
        return None
    try:
        margin = float(value)
    except ValueError:
        margin = float("nan")
    if not margin >= 0:
        parser.error(f"--attention-stop must be 'off' or a margin >= 0 in text tokens, got {value!r}")
    return margin


def run(argv: Optional[Sequence[str]] = None) -> dict:
    from core.audio import load_wav_with_rate, resample
    from core.eval import Recognizer, read_sentences, references_from_manifest, wer
    from core.sampling.synthesizer import Synthesizer

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a LeWM checkpoint")
    p.add_argument("--sentences", required=True, help="held-out sentences (id|text lines)")
    p.add_argument("--references", required=True, help="manifest of the flite recordings of those sentences")
    p.add_argument("--speaker", default=None, help="speaker to synthesise (default: the checkpoint's first)")
    p.add_argument("--reference-speaker", default=None, help="speaker of the references in --references "
                                                             "(default: --speaker)")
    p.add_argument("--limit", type=int, default=30, help="first N sentences (default 30)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--min-length-ratio", type=float, default=None)
    p.add_argument("--max-length-ratio", type=float, default=None)
    p.add_argument("--attention-stop", default=None,
                   help="the attention stop: a margin in text tokens, or 'off' (default: the checkpoint's "
                        "lewm.stop_on_attention / attention_stop_margin)")
    p.add_argument("--cfg", type=float, default=0.0,
                   help="text guidance strength, cond + cfg (cond - uncond); > 0 needs a model trained with "
                        "lewm.text_drop_prob > 0 (default 0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--silence-db", type=float, default=40.0, help="non-silent: within this many dB of the "
                                                                 "reference's loudest frame (default 40)")
    p.add_argument("--vocoder", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="folder for table.md and table.json")
    args = p.parse_args(argv)
    from core.config import ConfigError
    from core.sampling.guidance import check_cfg

    try:
        check_cfg(args.cfg)
    except ConfigError as exc:
        p.error(f"--{exc}")

    synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device, vocoder=args.vocoder)
    if synth.config.model.family != "lewm":
        p.error(f"{args.checkpoint} is not a LeWM checkpoint (model.family {synth.config.model.family!r})")
    d = synth.config.lewm
    options = {"temperature": d.temperature if args.temperature is None else args.temperature,
               "min_length_ratio": d.min_length_ratio if args.min_length_ratio is None else args.min_length_ratio,
               "max_length_ratio": d.max_length_ratio if args.max_length_ratio is None else args.max_length_ratio,
               "attention_stop": synth.attention_stop if args.attention_stop is None else _margin(p, args.attention_stop)}
    if args.cfg > 0:
        if not d.text_drop_prob > 0:
            p.error(f"--cfg {args.cfg} needs a model trained with lewm.text_drop_prob > 0 (this one: 0)")
        options["cfg"] = args.cfg
    sid = synth.speaker_id(args.speaker)
    speaker = synth.speaker_name(sid)
    sentences = read_sentences(args.sentences)[:args.limit]
    ref_speaker = args.reference_speaker if args.reference_speaker is not None else args.speaker
    refs = references_from_manifest(args.references, sentences, None if ref_speaker is None else str(ref_speaker))
    recognizer = Recognizer()
    rate = synth.sample_rate
    rows, ref_items = [], []
    start = time.perf_counter()
    for k, s in enumerate(sentences):
        clip = load_wav_with_rate(refs[s.id])
        ref_audio = resample(torch.from_numpy(clip.samples), clip.sample_rate, rate).numpy()
        ref_mel = _mel(ref_audio, synth.config.audio)
        threshold = float(frame_levels_db(ref_mel).max()) - args.silence_db
        audio, mel, stopped, steps, by_attention = free_run(synth, s.text, sid, args.seed + k, options)
        rows.append({"id": s.id, "text": s.text, "stopped": stopped, "by_attention": by_attention, "steps": steps,
                     "seconds": len(audio) / rate, "reference_seconds": len(ref_audio) / rate,
                     "duration_ratio": len(audio) / max(len(ref_audio), 1),
                     "nonsilent_generated": nonsilent_fraction(mel, threshold),
                     "nonsilent_reference": nonsilent_fraction(ref_mel, threshold),
                     "hypothesis": recognizer.transcribe(audio, rate),
                     "reference_hypothesis": recognizer.transcribe(ref_audio, rate)})
        ref_items.append((s.text, ref_audio))
    texts = [r["text"] for r in rows]
    wer_model = wer(texts, [r["hypothesis"] for r in rows]).wer
    wer_flite = wer(texts, [r["reference_hypothesis"] for r in rows]).wer
    summary = summarize(rows, wer_model, wer_flite, teacher_forced_losses(synth, ref_items, sid))
    settings = {"checkpoint": str(args.checkpoint), "checkpoint_sha256": synth.checkpoint_sha256,
                "sentences": len(rows), "speaker": speaker, "reference_speaker": ref_speaker, "seed": args.seed,
                "silence_db": args.silence_db,
                "vocoder": synth.vocoder.name, "device": str(synth.device),
                "seconds": round(time.perf_counter() - start, 1), **options}
    report = {"settings": settings, "summary": summary, "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(report, indent=2))
    table = markdown(summary, settings)
    (out / "table.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    run()
