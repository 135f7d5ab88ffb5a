"""``torch.compile`` of the velocity network against eager torch and onnxruntime, per NFE.

One network evaluation of a checkpoint's velocity network (the demo voice by default)
at a few audio lengths, batch 1, fp32 on the CPU, three ways side by side:

* ``eager``: the network as ``Synthesizer`` runs it (the checkpoint's attention, SDPA
  by default);
* ``compiled``: ``torch.compile`` of the same (inductor; one compilation per shape, its
  time reported separately: ``dynamic=False``, so every new length recompiles);
* ``onnx``: the exported velocity graph (``python -m core export-onnx``) in onnxruntime
  with the same thread count.

Rounds interleave the three backends per length (after one warm-up call each) and the
median over rounds is reported, with the load average before and after: the ratios of
one run are the reading, the absolute times move with whatever else runs.

    python benchmarks/compile_speed.py --checkpoint assets/demo.pt --threads 1 --repeats 5
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import median_call_seconds  # noqa: E402

FRAMES_PER_SECOND = 24000 / 256


def inputs(model, cfg, frames: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    d = {"x": torch.randn(1, model.n_mels, frames, generator=g), "t": torch.full((1,), 0.5),
         "cond": torch.randn(1, frames, cfg.model.text_dim, generator=g),
         "mel_mask": torch.ones(1, frames, dtype=torch.bool), "drop": torch.tensor([False])}
    if model.speaker_embedding is not None:
        d["speaker"] = torch.randn(1, cfg.model.speaker_dim, generator=g)
    return d


class Velocity(torch.nn.Module):
    """``velocity_net`` with explicit tensors and the attention the synthesizer uses."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, t, cond, mel_mask, drop, speaker=None):
        return self.model.velocity_net(x, t, cond, mel_mask, speaker, drop=drop,
                                       attention=self.model.config.attention)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(ROOT / "assets" / "demo.pt"))
    ap.add_argument("--seconds", default="5,10,20", help="audio lengths (comma separated)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="", help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    import onnxruntime as ort

    from core.checkpoint import load_checkpoint
    from core.onnx_export import export_onnx, velocity_inputs
    from core.families import build_model

    ck = load_checkpoint(args.checkpoint)
    model = build_model(ck.config)
    model.load_state_dict(ck.weights)
    model.eval()
    eager = Velocity(model).eval()
    compiled = torch.compile(Velocity(model).eval(), dynamic=False)
    names = velocity_inputs(model)
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(args.checkpoint, tmp)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(Path(tmp) / "velocity.onnx"), options, providers=["CPUExecutionProvider"])
    load_before = os.getloadavg()
    rows = []
    for seconds in [float(s) for s in args.seconds.split(",")]:
        frames = int(round(seconds * FRAMES_PER_SECOND))
        feed = inputs(model, ck.config, frames)
        args_t = [feed[n] for n in names]
        feed_np = {n: feed[n].numpy() for n in names}
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(*args_t)
        compile_s = time.perf_counter() - start
        with torch.inference_mode():
            ref = eager(*args_t)
            diff_compiled = float((compiled(*args_t) - ref).abs().max())
        diff_onnx = float(np.abs(session.run(None, feed_np)[0] - ref.numpy()).max())
        per = {"eager": [], "compiled": [], "onnx": []}
        for _ in range(args.rounds):
            with torch.inference_mode():
                per["eager"].append(median_call_seconds(lambda: eager(*args_t), args.repeats))
                per["compiled"].append(median_call_seconds(lambda: compiled(*args_t), args.repeats))
            per["onnx"].append(median_call_seconds(lambda: session.run(None, feed_np), args.repeats))
        ms = {k: 1000 * statistics.median(v) for k, v in per.items()}
        rows.append({"seconds": seconds, "frames": frames, "compile_s": compile_s, "ms_per_nfe": ms,
                     "speedup_compiled": ms["eager"] / ms["compiled"], "speedup_onnx": ms["eager"] / ms["onnx"],
                     "max_abs_diff_compiled": diff_compiled, "max_abs_diff_onnx": diff_onnx})
        print(f"{seconds:5.1f} s ({frames} frames): eager {ms['eager']:.1f} ms, compiled {ms['compiled']:.1f} ms "
              f"({rows[-1]['speedup_compiled']:.2f}x; compile {compile_s:.1f} s), onnx {ms['onnx']:.1f} ms "
              f"({rows[-1]['speedup_onnx']:.2f}x)", flush=True)
    result = {"checkpoint": args.checkpoint, "threads": args.threads, "repeats": args.repeats, "rounds": args.rounds,
              "torch": torch.__version__, "onnxruntime": ort.__version__, "load_before": load_before,
              "load_after": os.getloadavg(), "rows": rows}
    print(f"load average before {load_before}, after {result['load_after']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
