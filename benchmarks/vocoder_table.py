"""Issue 16's Measure table: Griffin-Lim against a trained Vocos vocoder, side by side in
one run on the held-out sentences.

    python benchmarks/vocoder_table.py --vocoder assets/vocoder [--corpus corpus]
        [--checkpoint assets/demo.pt] [--speaker slt] [--limit 100] [--out runs/vocoder_table]

Rows (each a ``python -m core eval`` call through ``benchmarks/demo_voice_table.score``,
so reports in ``--out`` are reused on a rerun):

- the flite recordings;
- for each vocoder (``griffin-lim``, then ``--vocoder``): the recordings copy-synthesised
  (flite -> Vocos-exact mel -> vocoder) and the demo voice at its own default sampling
  settings (what a user hears; the everyday voice: 10 Euler steps, cfg 2), seed 0, through
  that vocoder: WER (pocketsphinx), DNSMOS, MCD (DTW against flite);
- the vocoder's own real-time factor: ``decode`` time over audio length for the
  recordings' mels, after one warm-up, at this process's torch thread count.

The last lines say whether issue 16's bar is met: the demo voice through the trained
vocoder at least 0.15 DNSMOS above Griffin-Lim, no worse WER, vocoding no slower.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_voice_table import Row, fmt, score  # noqa: E402

DNSMOS_MARGIN = 0.15


def vocoder_rtf(vocoder_spec: str, manifest: Path, speaker: str, limit: int) -> float:
    """Seconds of ``decode`` per second of audio over the first ``limit`` recordings of ``speaker``."""
    from core.audio import load_wav, mel_spectrogram
    from core.config import AudioConfig
    from core.data import read_manifest
    from core.vocoders import load_vocoder

    audio = AudioConfig()
    voc = load_vocoder(vocoder_spec, audio)
    clips = [u for u in read_manifest(manifest) if u.speaker == speaker][:limit]
    mels = [mel_spectrogram(load_wav(u.audio_path, audio.sample_rate)[None], audio) for u in clips]
    voc.decode(mels[0])  # warm-up
    compute, seconds = 0.0, 0.0
    for mel in mels:
        start = time.perf_counter()
        wav = voc.decode(mel)
        compute += time.perf_counter() - start
        seconds += wav.shape[-1] / audio.sample_rate
    return compute / seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocoder", required=True, help="the trained vocoder: a Vocos folder (e.g. assets/vocoder)")
    p.add_argument("--checkpoint", default=None, help="acoustic checkpoint (default: the bundled demo voice)")
    p.add_argument("--corpus", default="corpus", help="corpus folder with heldout.txt and heldout_manifest.csv")
    p.add_argument("--speaker", default="slt")
    p.add_argument("--limit", type=int, default=100, help="held-out sentences (default 100)")
    p.add_argument("--out", default="runs/vocoder_table")
    p.add_argument("--fresh", action="store_true", help="score every row again")
    args = p.parse_args(argv)

    corpus = Path(args.corpus)
    for name in ("heldout.txt", "heldout_manifest.csv"):
        if not (corpus / name).is_file():
            p.error(f"{corpus / name} not found: build the corpus with `python -m core corpus --out {corpus}`")
    if not Path(args.vocoder).is_dir():
        p.error(f"--vocoder {args.vocoder}: not a Vocos folder")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--sentences", str(corpus / "heldout.txt"), "--references", str(corpus / "heldout_manifest.csv"),
              "--speaker", args.speaker, "--reference-speaker", args.speaker, "--limit", str(args.limit),
              "--device", "cpu", "--seed", "0"]
    model = ()  # the checkpoint's own sampling defaults (its config's ``sampling`` section)
    table = [{"row": "flite recordings", "vocoder": "—", **_means(score(
        Row("flite recordings", "ref_raw", ("--references-only",)), common, args.checkpoint, out, args.fresh))}]
    for name, spec in (("griffin-lim", "griffin-lim"), ("trained", str(args.vocoder))):
        for label, stem, extra in (("flite -> mel -> vocoder", f"resynth_{name}", ("--references-only", "--resynthesize")),
                                   ("demo voice, its defaults", f"demo_{name}", model)):
            rep = score(Row(label, stem, (*extra, "--vocoder", spec)), common, args.checkpoint, out, args.fresh)
            table.append({"row": label, "vocoder": rep["settings"].get("vocoder"), **_means(rep)})
        rtf = vocoder_rtf(spec, corpus / "heldout_manifest.csv", args.speaker, min(args.limit, 20))
        for r in table[-2:]:
            r["vocoder_rtf"] = rtf

    import torch

    lines = [f"{args.limit} held-out sentences, voice {args.speaker}; vocoder RTF = decode time / audio length "
             f"on {platform.machine()} with {torch.get_num_threads()} torch threads.", "",
             "| audio | vocoder | WER | DNSMOS | MCD (dB) | vocoder RTF |", "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['row']} | {r['vocoder']} | {fmt(r['wer'])} | {fmt(r['dnsmos'], 2)} | "
                     f"{fmt(r['mcd'], 2)} | {fmt(r.get('vocoder_rtf'), 4)} |")
    gl, trained = table[2], table[4]
    ok = (trained["dnsmos"] - gl["dnsmos"] >= DNSMOS_MARGIN and trained["wer"] <= gl["wer"]
          and trained["vocoder_rtf"] <= gl["vocoder_rtf"])
    lines += ["", f"Demo voice: DNSMOS {fmt(trained['dnsmos'], 2)} vs Griffin-Lim {fmt(gl['dnsmos'], 2)} "
              f"(bar: +{DNSMOS_MARGIN}), WER {fmt(trained['wer'])} vs {fmt(gl['wer'])}, vocoder RTF "
              f"{fmt(trained['vocoder_rtf'], 4)} vs {fmt(gl['vocoder_rtf'], 4)}: issue 16's bar "
              f"{'is met' if ok else 'is NOT met'}."]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text, encoding="utf-8")
    (out / "table.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
    sys.stdout.write(text)
    return 0


def _means(report: dict) -> dict:
    m = report["means"]
    return {"wer": m.get("wer"), "dnsmos": m.get("dnsmos_ovrl"), "mcd": m.get("mcd"), "n": report["settings"].get("n")}


if __name__ == "__main__":
    raise SystemExit(main())
