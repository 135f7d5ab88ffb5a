"""Time to first audio (``Synthesizer.stream``) against full synthesis (``synthesize``)
for a three-sentence paragraph, per backend, side by side in one process.

    python benchmarks/streaming.py --threads 1 --repeats 5 --out runs/streaming.json

Backends (``--backends``): ``torch`` (the checkpoint, fp32), ``torch-int8`` (the same
with int8 dynamic quantisation of the linear layers, ``precision="int8"``), ``onnx``
(an ONNX export of the checkpoint in onnxruntime, made into a temporary folder first),
``onnx-int8`` (that export's int8 graphs, ``export-onnx --int8``).
All use the bundled demo voice unless ``--checkpoint`` is given, the checkpoint's
sampling defaults, seed k on repeat k, and Griffin-Lim unless ``--vocoder`` says
otherwise.  Each repeat runs every backend and mode in turn (interleaved, so a change in
the machine's load hits all of them alike), after one warm-up round.  Modes:

* ``synthesize``: one call, chunks packed (the paragraph is one chunk): ``total``, and
  of it ``acoustic`` (text side + sampling, where the backends differ) and ``vocoder``;
* ``synthesize_sentences``: one call with ``chunking="sentence"`` (three chunks in one
  padded batch): the very audio the stream gives, all at once;
* ``stream``: ``first_audio`` (call to first piece) and ``total`` (to the last piece).

Prints and writes the medians, the audio length, their real-time factors and the
load average (1, 5, 15 min) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAGRAPH = ("The old lighthouse stood alone at the edge of the cliff. Every night its lamp swept across "
             "the dark water. Sailors far out at sea were glad to see it.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="flow-matching checkpoint (default: the demo voice)")
    parser.add_argument("--vocoder", default="griffin-lim")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", default="torch,torch-int8,onnx,onnx-int8")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from core.sampling.synthesizer import Synthesizer

    synths = {}
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    tmp = tempfile.TemporaryDirectory()
    for name in backends:
        if name == "torch":
            synths[name] = Synthesizer.from_checkpoint(args.checkpoint, device="cpu", vocoder=args.vocoder)
        elif name == "torch-int8":
            synths[name] = Synthesizer.from_checkpoint(args.checkpoint, device="cpu", vocoder=args.vocoder,
                                                       precision="int8")
        elif name in ("onnx", "onnx-int8"):
            from core.onnx_export import export_onnx

            folder = Path(tmp.name) / "onnx"
            if not (folder / "velocity_int8.onnx").is_file():
                export_onnx(args.checkpoint, folder, int8=True)
            synths[name] = Synthesizer.from_onnx(folder, vocoder=args.vocoder, threads=args.threads,
                                                 precision="int8" if name == "onnx-int8" else "fp32")
        else:
            parser.error(f"unknown backend {name!r}: torch, torch-int8, onnx, onnx-int8")

    def run_once(synth, seed: int) -> dict:
        start = time.perf_counter()
        clip = synth.synthesize(PARAGRAPH, seed=seed)
        full = time.perf_counter() - start
        start = time.perf_counter()
        per_sentence = synth.synthesize(PARAGRAPH, seed=seed, chunking="sentence")
        sentences = time.perf_counter() - start
        start = time.perf_counter()
        first, samples = None, 0
        for piece in synth.stream(PARAGRAPH, seed=seed):
            if first is None:
                first = time.perf_counter() - start
            samples += len(piece)
        total = time.perf_counter() - start
        return {"synthesize_total": full, "synthesize_acoustic": clip.timings["acoustic"],
                "synthesize_vocoder": clip.timings["vocoder"], "synthesize_sentences_total": sentences, "stream_first_audio": first,
                "stream_total": total, "audio_s": clip.duration, "stream_audio_s": samples / synth.sample_rate,
                "sentences_audio_s": per_sentence.duration}

    load_before = os.getloadavg()
    for name, synth in synths.items():  # warm-up
        run_once(synth, 0)
    rows: dict[str, list[dict]] = {name: [] for name in synths}
    for k in range(args.repeats):
        for name, synth in synths.items():
            rows[name].append(run_once(synth, k + 1))
    load_after = os.getloadavg()

    result = {"paragraph": PARAGRAPH, "threads": args.threads, "repeats": args.repeats, "vocoder": args.vocoder,
              "checkpoint": args.checkpoint or "assets/demo.pt", "load_before": load_before,
              "load_after": load_after, "backends": {}, "runs": rows}
    for name, runs in rows.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        med["stream_rtf"] = med["stream_total"] / med["stream_audio_s"]
        med["synthesize_rtf"] = med["synthesize_total"] / med["audio_s"]
        result["backends"][name] = med
    base = result["backends"].get("torch")
    print(f"threads {args.threads}, {args.repeats} repeats, load average before {load_before}, after {load_after}")
    print(f"{'backend':<11} {'audio s':>8} {'synth s':>8} {'acoust s':>8} {'sent. s':>8} {'first s':>8} "
          f"{'stream s':>9} {'speed-up':>9} {'acoustic':>9}")
    for name, med in result["backends"].items():
        ratio = base["synthesize_total"] / med["synthesize_total"] if base else float("nan")
        acoustic = base["synthesize_acoustic"] / med["synthesize_acoustic"] if base else float("nan")
        print(f"{name:<11} {med['audio_s']:8.2f} {med['synthesize_total']:8.3f} {med['synthesize_acoustic']:8.3f} "
              f"{med['synthesize_sentences_total']:8.3f} {med['stream_first_audio']:8.3f} "
              f"{med['stream_total']:9.3f} {ratio:9.2f} {acoustic:9.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
