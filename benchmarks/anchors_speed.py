"""Anchors: Matcha-TTS's and F5-TTS's velocity networks beside this project's, at equal size.

One network evaluation (NFE) of three velocity / decoder networks, fp32 on the CPU,
random weights (speed does not depend on them):

* ``project``: this project's ``VelocityDiT`` (``core/models/dit.py``), built by
  ``core.families.build_model`` from a preset (``small`` by default) or a checkpoint;
* ``project-udit``: the same network in the ``udit`` layout (``model.velocity``: the
  middle blocks at half the frame rate; the same parameters);
* ``matcha``: Matcha-TTS's decoder ``matcha.models.components.decoder.Decoder`` (1-D
  U-Net with transformer blocks; PyPI ``matcha-tts``), its default layout (2 levels,
  1 transformer block per level, 2 mid blocks, 2 heads of 64, snakebeta), channel width
  scaled until its parameter count is closest to the project network's;
* ``f5``: F5-TTS's backbone ``f5_tts.model.backbones.dit.DiT`` (PyPI ``f5-tts``), its
  v1 layout (ff_mult 2, heads of 64, 4 ConvNeXt text layers), the project network's
  depth and text width, model width scaled the same way.  Its text embedding runs once
  per utterance in F5's sampler (``cache=True``), so it is computed before timing, set
  as both cached text embeddings, and left out of the matched parameter count (reported
  apart as ``extra_params``).

Each network runs at its own frame rate and mel count (project and F5: 24000/256 Hz,
100 mels; Matcha: 22050/256 Hz, 80 mels, frames rounded up to a multiple of 4 as its
U-Net needs).  Every round times every network at every length and batch once, after
one warm-up call per case; the median over rounds is reported as ms per NFE and ms per
NFE per second of audio (ms per NFE / batch / seconds), with ratios to the project
network (> 1: the anchor is slower) and the load average before and after.

    OMP_NUM_THREADS=1 python benchmarks/anchors_speed.py --out anchors_out --threads 1 --rounds 3

Needs the ``bench`` extra (``pip install -e ".[bench]"``, see pyproject.toml).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import types
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NETWORKS = ("project", "project-udit", "matcha", "f5")
PROJECT_PRESETS = ("tiny", "small", "base")
TOLERANCE = 0.10  # largest relative parameter-count difference accepted for an anchor

# Matcha-TTS's decoder settings (its configs/model/decoder/default.yaml) besides the width
MATCHA_LAYOUT = {"dropout": 0.05, "attention_head_dim": 64, "n_blocks": 1, "num_mid_blocks": 2,
                 "num_heads": 2, "act_fn": "snakebeta"}
MATCHA_MELS, MATCHA_RATE, MATCHA_MULTIPLE = 80, 22050 / 256, 4
# F5-TTS v1 settings (its configs/F5TTS_v1_*.yaml) besides width, depth and text width
F5_LAYOUT = {"dim_head": 64, "ff_mult": 2, "conv_layers": 4, "text_num_embeds": 256, "dropout": 0.0}
F5_MELS, F5_RATE = 100, 24000 / 256


@dataclass
class Network:
    """A velocity network ready to time.

    ``make_call(batch, frames)`` returns a no-argument callable running one NFE on
    fixed random inputs of that size; ``params`` counts what runs per NFE.
    """

    name: str
    module: nn.Module
    frame_rate: float
    n_mels: int
    params: int
    make_call: Callable[[int, int], Callable[[], torch.Tensor]]
    frame_multiple: int = 1
    extra_params: int = 0
    shape: dict = field(default_factory=dict)

    def frames(self, seconds: float) -> int:
        """Mel frames for ``seconds`` of audio at this network's rate (rounded up to its multiple)."""
        n = max(1, int(round(seconds * self.frame_rate)))
        return -(-n // self.frame_multiple) * self.frame_multiple


@dataclass
class Timing:
    """Median time of one NFE of ``network`` on ``batch`` clips of ``seconds`` each."""

    network: str
    seconds: float
    batch: int
    frames: int
    ms_per_nfe: float
    ms_per_nfe_per_audio_second: float
    ratio_vs_project: float | None = None
    rounds_ms: list = field(default_factory=list)


def count_params(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def closest_width(build: Callable[[int], nn.Module], target: int, lo: int, hi: int, step: int,
                  count: Callable[[nn.Module], int] = count_params) -> int:
    """The multiple of ``step`` in [lo, hi] whose ``count(build(width))`` is closest to ``target``.

    Assumes the count grows with the width (bisection, then the better neighbour).
    """
    a, b = lo // step, hi // step
    while b - a > 1:
        mid = (a + b) // 2
        if count(build(mid * step)) < target:
            a = mid
        else:
            b = mid
    return min((a * step, b * step), key=lambda w: abs(count(build(w)) - target))


def check_size(name: str, params: int, target: int, tolerance: float = TOLERANCE) -> None:
    """Raise if ``params`` is more than ``tolerance`` (relative) away from ``target``."""
    if abs(params - target) > tolerance * target:
        raise ValueError(f"{name}: {params} parameters, more than {tolerance:.0%} from the project's {target}")


# ----------------------------------------------------------------------- this project

def project_network(spec: str = "small", velocity: str = "dit") -> Network:
    """This project's ``VelocityDiT`` from a preset name or a checkpoint path (random weights for a preset).

    Call: x (B, n_mels, T), t (B,), cond (B, T, text_dim), mask (B, T) -> (B, n_mels, T).
    """
    from core.families import build_model

    if spec in PROJECT_PRESETS:
        from core.config import preset

        config, weights = preset(spec), None
    elif spec.endswith(".pt") and Path(spec).is_file():
        from core.checkpoint import load_checkpoint

        ck = load_checkpoint(spec)
        config, weights = ck.config, ck.weights
    else:
        raise ValueError(f"unknown project network {spec!r}; valid: {', '.join(PROJECT_PRESETS)} or a .pt checkpoint path")
    if config.model.family != "flow":
        raise ValueError(f"the project network must be a flow model, got family {config.model.family!r}")
    import dataclasses

    config = dataclasses.replace(config, model=dataclasses.replace(config.model, velocity=velocity))
    model = build_model(config)
    if weights is not None:
        model.load_state_dict(weights)
    net = model.velocity_net.eval()
    speaker_dim = config.model.speaker_dim if net.speaker_proj is not None else 0

    def make_call(batch: int, frames: int) -> Callable[[], torch.Tensor]:
        g = torch.Generator().manual_seed(frames * 10 + batch)
        x = torch.randn(batch, net.n_mels, frames, generator=g)
        cond = torch.randn(batch, frames, net.text_dim, generator=g)
        t, mask = torch.full((batch,), 0.5), torch.ones(batch, frames, dtype=torch.bool)
        spk = torch.randn(batch, speaker_dim, generator=g) if speaker_dim else None
        return lambda: net(x, t, cond, mask, speaker=spk)

    m = config.model
    return Network("project" if velocity == "dit" else f"project-{velocity}", net, config.audio.sample_rate / config.audio.hop_length, net.n_mels,
                   count_params(net), make_call,
                   shape={"dim": m.dim, "depth": m.depth, "heads": m.heads, "ff_mult": m.ff_mult,
                          "text_dim": m.text_dim, "velocity": m.velocity, "source": spec})


# ----------------------------------------------------------------------- Matcha-TTS

def matcha_decoder(channels: int) -> nn.Module:
    """Matcha-TTS's decoder at width ``channels`` (both levels), single speaker, 80 mels."""
    with warnings.catch_warnings():  # diffusers: LoRACompatibleLinear is deprecated (FutureWarning)
        warnings.simplefilter("ignore", FutureWarning)
        from matcha.models.components.decoder import Decoder

        return Decoder(2 * MATCHA_MELS, MATCHA_MELS, channels=(channels, channels), **MATCHA_LAYOUT)


def matcha_network(target_params: int) -> Network:
    """Matcha-TTS's decoder scaled to ``target_params`` (channel width, a multiple of 8).

    Call: x (B, 80, T), mask (B, 1, T), mu (B, 80, T), t (B,) -> (B, 80, T).
    """
    channels = closest_width(matcha_decoder, target_params, 8, 2048, 8)
    net = matcha_decoder(channels).eval()

    def make_call(batch: int, frames: int) -> Callable[[], torch.Tensor]:
        g = torch.Generator().manual_seed(frames * 10 + batch)
        x = torch.randn(batch, MATCHA_MELS, frames, generator=g)
        mu = torch.randn(batch, MATCHA_MELS, frames, generator=g)
        t, mask = torch.full((batch,), 0.5), torch.ones(batch, 1, frames)
        return lambda: net(x, mask, mu, t)

    return Network("matcha", net, MATCHA_RATE, MATCHA_MELS, count_params(net), make_call,
                   frame_multiple=MATCHA_MULTIPLE, shape={"channels": [channels, channels], **MATCHA_LAYOUT})


# ----------------------------------------------------------------------- F5-TTS

def f5_dit_class() -> type:
    """F5-TTS's ``DiT`` class, imported without running ``f5_tts/model/__init__.py``.

    That ``__init__`` imports F5's trainer (wandb, accelerate, datasets ...), which the
    backbone does not need; registering ``f5_tts.model`` as a bare package pointing at the
    installed folder lets ``f5_tts.model.backbones.dit`` import with only its own imports.
    """
    if "f5_tts.model" not in sys.modules:
        spec = importlib.util.find_spec("f5_tts")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("f5_tts is not installed (pip install -e '.[bench]')")
        package = types.ModuleType("f5_tts.model")
        package.__path__ = [str(Path(list(spec.submodule_search_locations)[0]) / "model")]
        sys.modules["f5_tts.model"] = package
    from f5_tts.model.backbones.dit import DiT

    return DiT


def f5_dit(dim: int, depth: int, text_dim: int) -> nn.Module:
    """F5-TTS's DiT at width ``dim`` (heads of 64), ``depth`` blocks, ``text_dim`` text features."""
    return f5_dit_class()(dim=dim, depth=depth, heads=max(1, dim // 64), mel_dim=F5_MELS, text_dim=text_dim,
                          **F5_LAYOUT)


def f5_step_params(net: nn.Module) -> int:
    """Parameters F5's DiT uses per NFE: all but the text embedding (cached over the steps)."""
    return count_params(net) - count_params(net.text_embed)


def f5_network(target_params: int, depth: int, text_dim: int) -> Network:
    """F5-TTS's DiT at ``depth`` and ``text_dim``, width (a multiple of 16) scaled to ``target_params``.

    Call: x (B, T, 100), cond (B, T, 100), text (B, L) tokens, time (B,), mask (B, T)
    -> (B, T, 100), with the text embedding (B, T, text_dim) computed beforehand.
    """
    def build(dim: int) -> nn.Module:
        return f5_dit(dim, depth, text_dim)

    dim = closest_width(build, target_params, 16, 4096, 16, count=f5_step_params)
    net = build(dim).eval()

    def make_call(batch: int, frames: int) -> Callable[[], torch.Tensor]:
        g = torch.Generator().manual_seed(frames * 10 + batch)
        x = torch.randn(batch, frames, F5_MELS, generator=g)
        cond = torch.randn(batch, frames, F5_MELS, generator=g)
        text = torch.randint(0, F5_LAYOUT["text_num_embeds"], (batch, max(1, frames // 6)), generator=g)
        t, mask = torch.full((batch,), 0.5), torch.ones(batch, frames, dtype=torch.bool)
        with torch.inference_mode():
            text_embed = net.text_embed(text, seq_len=frames)

        def call() -> torch.Tensor:
            net.text_cond = net.text_uncond = text_embed  # F5's per-utterance cache
            return net(x, cond, text, t, mask=mask, cache=True)

        return call

    return Network("f5", net, F5_RATE, F5_MELS, f5_step_params(net), make_call,
                   extra_params=count_params(net.text_embed),
                   shape={"dim": dim, "depth": depth, "heads": max(1, dim // 64), "text_dim": text_dim, **F5_LAYOUT})


# ----------------------------------------------------------------------- timing

def build_networks(names: tuple[str, ...] = NETWORKS, project: str = "small") -> list[Network]:
    """The networks named (always with the project's first), anchors matched to its size."""
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        raise ValueError(f"unknown network {unknown[0]!r}; valid: {', '.join(NETWORKS)}")
    base = project_network(project)
    nets = [base]
    if "project-udit" in names:
        nets.append(project_network(project, "udit"))
    if "matcha" in names:
        nets.append(matcha_network(base.params))
    if "f5" in names:
        nets.append(f5_network(base.params, base.shape["depth"], base.shape["text_dim"]))
    for net in nets[1:]:
        check_size(net.name, net.params, base.params)
    return nets


def time_once(call: Callable[[], torch.Tensor]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run_benchmark(seconds: tuple[float, ...] = (5, 10, 20, 40), batches: tuple[int, ...] = (1, 2), rounds: int = 3,
                  networks: tuple[str, ...] = NETWORKS, project: str = "small", threads: int = 1) -> dict:
    """Time every network at every length and batch, interleaved; return the JSON-able result.

    Result keys: ``networks`` (name -> params, extra_params, shape, frame_rate, n_mels),
    ``timings`` (list of ``Timing`` dicts), ``load_before`` / ``load_after`` (1, 5, 15 min),
    and the settings.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    nets = build_networks(tuple(networks), project)
    cases = [(net, s, b) for s in seconds for b in batches for net in nets]
    calls = {}
    with torch.inference_mode():
        for net, s, b in cases:
            calls[net.name, s, b] = net.make_call(b, net.frames(s))
            calls[net.name, s, b]()  # warm-up
        load_before = os.getloadavg()
        per = {key: [] for key in calls}
        for _ in range(rounds):
            for key, call in calls.items():
                per[key].append(time_once(call))
        load_after = os.getloadavg()
    timings = summarise(nets, per)
    return {"networks": {n.name: {"params": n.params, "extra_params": n.extra_params, "shape": n.shape,
                                  "frame_rate": n.frame_rate, "n_mels": n.n_mels} for n in nets},
            "timings": [asdict(t) for t in timings], "load_before": list(load_before), "load_after": list(load_after),
            "seconds": list(seconds), "batches": list(batches), "rounds": rounds, "threads": threads,
            "torch": torch.__version__, "cpu_count": os.cpu_count()}


def summarise(nets: list[Network], per: dict) -> list[Timing]:
    """Medians per (network, seconds, batch) from the per-round seconds, with ratios to the project."""
    by_name = {n.name: n for n in nets}
    timings = []
    for (name, s, b), times in per.items():
        ms = 1000 * statistics.median(times)
        timings.append(Timing(name, s, b, by_name[name].frames(s), ms, ms / b / s,
                              rounds_ms=[1000 * x for x in times]))
    base = {(t.seconds, t.batch): t.ms_per_nfe for t in timings if t.network == "project"}
    for t in timings:
        t.ratio_vs_project = t.ms_per_nfe / base[t.seconds, t.batch]
    return timings


def markdown_table(result: dict) -> str:
    """The result as a markdown table: one row per length and batch, a column pair per network."""
    names = list(result["networks"])
    head = "| audio (s) | batch | " + " | ".join(f"{n}: ms/NFE/s (x project)" for n in names) + " |"
    lines = [head, "|" + "---|" * (2 + len(names))]
    cell = {(t["network"], t["seconds"], t["batch"]): t for t in result["timings"]}
    for s in result["seconds"]:
        for b in result["batches"]:
            row = [f"{cell[n, s, b]['ms_per_nfe_per_audio_second']:.2f} ({cell[n, s, b]['ratio_vs_project']:.2f}x)"
                   for n in names]
            lines.append(f"| {s:g} | {b} | " + " | ".join(row) + " |")
    sizes = ", ".join(f"{n} {v['params'] / 1e6:.2f} M" + (f" (+{v['extra_params'] / 1e6:.2f} M text embedding, "
                                                        "once per utterance)" if v["extra_params"] else "")
                      for n, v in result["networks"].items())
    lb, la = (", ".join(f"{x:.2f}" for x in result[k]) for k in ("load_before", "load_after"))
    return "\n".join(lines) + f"\n\nParameters per NFE: {sizes}.  Load average (1, 5, 15 min) {lb} before, {la} after.\n"


def parse_list(text: str, kind: type) -> tuple:
    """'5,10,20' -> (5.0, 10.0, 20.0) for kind=float."""
    return tuple(kind(x) for x in text.split(",") if x.strip())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for anchors_speed.json and anchors_speed.md")
    ap.add_argument("--project", default="small", help=f"preset ({', '.join(PROJECT_PRESETS)}) or a .pt checkpoint")
    ap.add_argument("--networks", default=",".join(NETWORKS), help=f"comma separated, from {', '.join(NETWORKS)}")
    ap.add_argument("--seconds", default="5,10,20,40", help="audio lengths (comma separated)")
    ap.add_argument("--batches", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    names = parse_list(args.networks, str)
    if "project" not in names:
        names = ("project",) + names
    try:
        result = run_benchmark(parse_list(args.seconds, float), parse_list(args.batches, int), args.rounds, names,
                               args.project, args.threads)
    except ValueError as e:  # unknown network / project, sizes that cannot be matched
        ap.error(str(e))
    result["command"] = "python benchmarks/anchors_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(result)
    (out / "anchors_speed.json").write_text(json.dumps(result, indent=1))
    (out / "anchors_speed.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
