"""``python -m core bench``: an honest sampling-speed benchmark of a checkpoint (JSON out).

Everything is measured side by side in one run, on one sentence (``--text``), with a
fixed seed so every configuration sees the same shapes; each configuration gets one
warm-up call that is not timed, then the median of ``--repeats`` timed calls.

* ``rtf``: real-time factor (seconds of compute per second of audio; < 1 is faster than
  real time) of the total, the acoustic stage (text encoder + sampling) and the vocoder,
  at 1, 5, 10, 32 steps for each solver (euler, midpoint, heun, rk4; MeanFlow
  checkpoints only euler: their jumps need no solver).
* ``sampler_overhead``: acoustic time / (NFE x time of one bare network forward at the
  same shape), each timed call paired with NFE bare forwards run right after it, median
  over the repeats; 1.0 means sampling costs nothing beyond the network calls (the text
  encoder, duration predictor and the loop's arithmetic are the rest).  Goal: <= 1.05.
* ``guidance_cost``: time with ``cfg > 0`` (one batched forward of 2B rows per
  evaluation) over the time without, at the same steps.
* ``batch_throughput``: seconds of audio produced per second of wall time, for lists
  of 1, 8 and 32 copies of the sentence synthesised in one batched call.

``--quick`` (for tests) measures steps 1 and 5, solvers euler and heun, batches 1 and 2.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable, Optional, Sequence

import torch

from .solvers import nfe_per_step

__all__ = ["run_benchmark", "ForwardTimer", "DEFAULT_TEXT", "FULL_PLAN", "QUICK_PLAN"]

DEFAULT_TEXT = ("The quick brown fox jumps over the lazy dog, and then it runs back home "
                "before the evening rain begins to fall.")
FULL_PLAN = {"steps": (1, 5, 10, 32), "solvers": ("euler", "midpoint", "heun", "rk4"), "batches": (1, 8, 32),
             "guidance_steps": 10, "batch_steps": 10}
QUICK_PLAN = {"steps": (1, 5), "solvers": ("euler", "heun"), "batches": (1, 2),
              "guidance_steps": 5, "batch_steps": 5}
GUIDANCE_CFG = 2.0
SEED = 0
# every measured call states all sampler options, so no checkpoint default changes what is timed
FIXED = dict(schedule="sway", sway=-1.0, duration_scale=1.0, temperature=1.0, seed=SEED)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ForwardTimer:
    """Times bare network forwards (``model.predict``, batch 1) at the shape the
    synthesizer gives ``text``, under the synthesizer's precision."""

    def __init__(self, synth, text: str) -> None:
        self.model, self.device, self.autocast = synth.model, synth.device, synth.autocast
        tokens = torch.tensor([synth.front_end(text)], device=self.device)
        mask = torch.ones_like(tokens, dtype=torch.bool)
        speakers = torch.zeros(1, dtype=torch.long, device=self.device)
        with torch.inference_mode(), self.autocast():
            self.cond = self.model.inference_conditioning(tokens, mask, speakers)
        self.x = torch.randn(1, synth.config.audio.n_mels, self.cond.mel_mask.shape[1], device=self.device)
        self.t = torch.full((1,), 0.5, device=self.device)
        self.r = self.t if synth.objective_name == "meanflow" else None

    def seconds(self, calls: int) -> float:
        """Wall time of ``calls`` forwards in a row (device synchronised at both ends)."""
        with torch.inference_mode(), self.autocast():
            _sync(self.device)
            start = time.perf_counter()
            for _ in range(calls):
                self.model.predict(self.x, self.t, self.cond, r=self.r)
            _sync(self.device)
        return time.perf_counter() - start


def _measure(call: Callable[[], Any], repeats: int, forwards: Optional[ForwardTimer] = None,
             nfe: int = 0) -> tuple[dict[str, float], list[Any], list[float]]:
    """One untimed warm-up call, then ``repeats`` timed calls.  With ``forwards``, each
    call is followed by ``nfe`` bare forwards, so the two are measured side by side.

    Returns the median of each timing key, the results, and the bare-forward times of
    the repeats (seconds for ``nfe`` forwards; empty without ``forwards``)."""
    call()
    if forwards is not None:
        forwards.seconds(nfe)
    results, bare = [], []
    for _ in range(repeats):
        results.append(call())
        if forwards is not None:
            bare.append(forwards.seconds(nfe))
    first = [r[0] if isinstance(r, list) else r for r in results]
    med = {k: statistics.median(r.timings[k] for r in first) for k in first[0].timings}
    return med, results, bare


def _device_info(synth) -> dict[str, Any]:
    dev = synth.device
    info = {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
            (os.uname().machine if hasattr(os, "uname") else "cpu"),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "precision": synth.precision}
    if dev.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def run_benchmark(synth, plan: dict[str, Any] = FULL_PLAN, repeats: int = 3, text: str = DEFAULT_TEXT
                  ) -> dict[str, Any]:
    """Measure ``synth`` (a :class:`~core.sampling.synthesizer.Synthesizer`) as the module
    docstring says; returns the JSON-able report."""
    from ..config import ConfigError
    from .synthesizer import CHUNK_CHARS

    if not text.strip() or len(text) > CHUNK_CHARS:
        raise ConfigError(f"the benchmark text must be 1 to {CHUNK_CHARS} characters (one chunk, so every "
                          f"configuration has the bare forward's shape), got {len(text)}")
    meanflow = synth.objective_name == "meanflow"
    solvers = ("euler",) if meanflow else tuple(plan["solvers"])
    steps_list: Sequence[int] = plan["steps"]
    forwards = ForwardTimer(synth, text)

    rtf, overhead = [], []
    audio_s = 0.0
    for solver in solvers:
        for steps in steps_list:
            nfe = steps * (1 if meanflow else nfe_per_step(solver))
            med, results, bare = _measure(lambda: synth.synthesize(text, steps=steps, solver=solver, cfg=0.0,
                                                                   **FIXED),
                                          repeats, forwards, nfe)
            res = results[0]
            audio_s = res.duration
            rtf.append({"solver": solver, "steps": steps, "nfe": res.nfe, "audio_s": audio_s,
                        **{f"{k}_s": v for k, v in med.items()},
                        **{f"rtf_{k}": v / audio_s for k, v in med.items()}})
            # median over repeats of (acoustic time / the nfe bare forwards timed right after it)
            ratio = statistics.median(r.timings["acoustic"] / b for r, b in zip(results, bare))
            overhead.append({"solver": solver, "steps": steps, "nfe": nfe, "forward_s": statistics.median(bare) / nfe,
                             "acoustic_s": med["acoustic"], "ratio": ratio})

    g_steps = plan["guidance_steps"]
    plain, _, _ = _measure(lambda: synth.synthesize(text, steps=g_steps, solver="euler", cfg=0.0, **FIXED),
                           repeats)
    guided, _, _ = _measure(lambda: synth.synthesize(text, steps=g_steps, solver="euler", cfg=GUIDANCE_CFG,
                                                     **FIXED), repeats)
    guidance = {"cfg": GUIDANCE_CFG, "steps": g_steps, "solver": "euler",
                "acoustic_ratio": guided["acoustic"] / plain["acoustic"],
                "total_ratio": guided["total"] / plain["total"]}

    throughput = []
    for batch in plan["batches"]:
        med, results, _ = _measure(lambda: synth.synthesize([text] * batch, steps=plan["batch_steps"],
                                                            solver="euler", cfg=0.0, **FIXED),
                                   repeats)
        seconds = sum(r.duration for r in results[0])
        throughput.append({"batch": batch, "steps": plan["batch_steps"], "solver": "euler", "audio_s": seconds,
                           "total_s": med["total"], "audio_s_per_s": seconds / med["total"],
                           "acoustic_audio_s_per_s": seconds / med["acoustic"]})

    return {**_device_info(synth),
            "checkpoint": synth.checkpoint_path, "checkpoint_sha256": synth.checkpoint_sha256,
            "objective": synth.objective_name, "vocoder": synth.vocoder.name,
            "parameters": sum(p.numel() for p in synth.model.parameters()),
            "text": text, "audio_s": audio_s, "repeats": repeats, "seed": SEED,
            "rtf": rtf,
            "sampler_overhead": {"goal": 1.05, "rows": overhead},
            "guidance_cost": guidance,
            "batch_throughput": throughput}
