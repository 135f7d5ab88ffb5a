"""What int8 dynamic quantisation costs in quality: the demo voice through torch fp32,
torch int8, onnxruntime fp32 and onnxruntime int8, side by side on held-out sentences.

Every backend renders the same sentences with the same seed and settings (the
checkpoint's sampling defaults, Griffin-Lim so that the vocoder is the same bit-exact
code for all), then ``core.eval.evaluate`` scores each clip: pocketsphinx WER against the
text, DNSMOS, MCD against the flite recording.  Beside those, the log-mel difference of
each backend's mel from torch fp32's for the same sentence (mean absolute, in natural
log units; same durations because the text side runs in the same precision family
first: a changed duration shows up as a length difference, counted separately).

    python benchmarks/int8_quality.py --corpus /work/corpus --limit 30 --out runs/int8_quality
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKENDS = ("torch-fp32", "torch-int8", "onnx-fp32", "onnx-int8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "assets" / "demo.pt"))
    ap.add_argument("--corpus", required=True, help="corpus folder with heldout.txt and heldout_manifest.csv")
    ap.add_argument("--speaker", default="slt")
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/int8_quality")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from core.eval import evaluate, read_sentences, references_from_manifest
    from core.onnx_export import export_onnx
    from core.sampling.synthesizer import Synthesizer

    corpus = Path(args.corpus)
    sentences = read_sentences(corpus / "heldout.txt")[:args.limit]
    refs = references_from_manifest(corpus / "heldout_manifest.csv", sentences, speaker=args.speaker)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(args.checkpoint, tmp, int8=True)
        synths = {"torch-fp32": Synthesizer.from_checkpoint(args.checkpoint, device="cpu", vocoder="griffin-lim"),
                  "torch-int8": Synthesizer.from_checkpoint(args.checkpoint, device="cpu", vocoder="griffin-lim",
                                                            precision="int8"),
                  "onnx-fp32": Synthesizer.from_onnx(tmp, vocoder="griffin-lim", threads=args.threads),
                  "onnx-int8": Synthesizer.from_onnx(tmp, vocoder="griffin-lim", threads=args.threads,
                                                     precision="int8")}
        mels: dict = {name: {} for name in BACKENDS}
        reports = {}
        for name in BACKENDS:
            synth = synths[name]

            def render(sentence, synth=synth, name=name):
                result = synth.synthesize(sentence.text, seed=args.seed, speaker=args.speaker)
                mels[name][sentence.id] = np.asarray(result.mel)
                return result

            report = evaluate(render, sentences, refs, progress=False, settings={"backend": name})
            reports[name] = report
            (out / f"{name}.json").write_text(json.dumps(report.to_dict(), indent=1))
            print(f"{name}: WER {report.means['wer']:.3f}, DNSMOS {report.means.get('dnsmos_ovrl', float('nan')):.3f}, "
                  f"MCD {report.means.get('mcd', float('nan')):.2f}", flush=True)
    table = []
    base = mels["torch-fp32"]
    for name in BACKENDS:
        diffs, length_changed = [], 0
        for sid, mel in mels[name].items():
            ref = base[sid]
            if mel.shape != ref.shape:
                length_changed += 1
                continue
            diffs.append(float(np.abs(mel - ref).mean()))
        m = reports[name].means
        table.append({"backend": name, "wer": m["wer"], "dnsmos_ovrl": m.get("dnsmos_ovrl"), "mcd": m.get("mcd"),
                      "mel_l1_vs_fp32": float(np.mean(diffs)) if diffs else None,
                      "length_changed": length_changed, "sentences": len(sentences)})
    result = {"checkpoint": args.checkpoint, "speaker": args.speaker, "sentences": len(sentences), "seed": args.seed,
              "threads": args.threads, "load_before": load_before, "load_after": os.getloadavg(),
              "wall_s": time.time() - started, "rows": table}
    (out / "table.json").write_text(json.dumps(result, indent=1))
    lines = ["| backend | WER | DNSMOS | MCD dB | log-mel L1 vs torch fp32 | durations changed |", "|---|---|---|---|---|---|"]
    for r in table:
        l1 = "-" if r["mel_l1_vs_fp32"] is None else f"{r['mel_l1_vs_fp32']:.4f}"
        lines.append(f"| {r['backend']} | {r['wer']:.3f} | {r['dnsmos_ovrl']:.3f} | {r['mcd']:.2f} | {l1} | "
                     f"{r['length_changed']} of {r['sentences']} |")
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)
    print(f"load average before {load_before}, after {result['load_after']}; wall {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
