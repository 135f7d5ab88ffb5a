"""The convergence study of issue 15: which of the notes' claims about EDM and flow-matching
training hold, measured with one yardstick that does not depend on the objective.

    python benchmarks/convergence.py --data /work/corpus/manifest.csv --preset small \\
        --steps 4000 --eval-every 250 --seeds 0,1 --out runs/convergence            # every variant
    python benchmarks/convergence.py ... --variants edm-baseline,edm-filter         # a subset
    python benchmarks/convergence.py --report runs/convergence                       # table + plot only
    python benchmarks/convergence.py --report runs/convergence --wer 20 --corpus /work/corpus  # + final WER

Each variant trains the same preset on the same data with the same seeds.  Every
``--eval-every`` steps the EMA model renders the first ``--eval-items`` held-out
utterances from noise with the EMA weights users sample with (10 Euler steps on the sway
grid; MeanFlow: one jump; the EMA lags the raw weights by about 1 / (1 - ema_decay)
steps, equally for every variant) with the
*recording's own* durations (its monotonic alignment), so the generated mel has the
recording's length and can be compared frame by frame: log-mel L1 and MCD (c1..c13 of
the 100-band log-mel, no DTW needed).  Lower is better for both; the loss values of
different objectives are on different scales and are not compared.

Results: ``<out>/<variant>/seed<k>/curve.jsonl`` (step, mel_l1, mcd, seconds),
``metrics.jsonl`` (every 50 steps: mean loss and largest gradient norm; the trainer's
bad_step events),
``<out>/summary.json``, ``<out>/convergence.svg`` and a Markdown table (steps to reach a
quality level, speed-up against the baseline, final values, spread over seeds) printed
and written to ``<out>/table.md``.  Runs already finished are skipped (resume by running
the same command again).  Threads: ``--threads`` (default auto, see core.threads).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.config import merge, preset  # noqa: E402
from core.eval import MCD_CONST, cepstrum_from_logmel  # noqa: E402
from core.threads import configure_threads  # noqa: E402

EDM_BASE = {"objective": {"name": "edm", "sigma_sampling": "discrete", "edm_weighting": "karras"},
            "training": {"lr": 1e-4, "warmup_steps": 0, "grad_clip": 1e9}}


def _with(base: dict, **sections) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for section, values in sections.items():
        out.setdefault(section, {}).update(values)
    return out


# name -> (what it tests, config overrides); warm-up 10 % is filled in from --steps
VARIANTS: dict[str, tuple[str, dict]] = {
    "edm-baseline": ("EDM: uniform discrete sigmas, karras weighting, lr 1e-4, no warm-up, no clipping", EDM_BASE),
    "edm-filter": ("+ timestep filtering (2 % at each end)", _with(EDM_BASE, objective={"timestep_filter": 0.02})),
    "edm-lr2e-4": ("+ lr 2e-4", _with(EDM_BASE, training={"lr": 2e-4})),
    "edm-lr5e-4-clip": ("+ lr 5e-4 with gradient clipping at 1", _with(EDM_BASE, training={"lr": 5e-4,
                                                                                          "grad_clip": 1.0})),
    "edm-normalized": ("+ loss normalisation (loss / mean weight)",
                       _with(EDM_BASE, objective={"edm_weighting": "normalized"})),
    "edm-warmup": ("+ warm-up over 10 % of the steps", _with(EDM_BASE, training={"warmup_steps": "10%"})),
    "edm-combined": ("filtering + lr 2e-4 + normalisation + warm-up 10 % + clipping",
                     _with(EDM_BASE, objective={"timestep_filter": 0.02, "edm_weighting": "normalized"},
                           training={"lr": 2e-4, "warmup_steps": "10%", "grad_clip": 1.0})),
    "edm-clipped_snr": ("weighting clamp(SNR, 1e-4, 1e4) + 1/sd^2", _with(EDM_BASE, objective={
        "edm_weighting": "clipped_snr"})),
    "edm-simplified": ("weighting 1 / (sd^2 + s^2)", _with(EDM_BASE, objective={"edm_weighting": "simplified"})),
    "edm-min_snr": ("weighting min(SNR, 5)", _with(EDM_BASE, objective={"edm_weighting": "min_snr"})),
    "cfm-uniform": ("CFM: uniform t, no weighting", {"objective": {"name": "cfm", "time_sampling": "uniform"}}),
    "cfm-logit_normal": ("CFM: logit-normal t", {"objective": {"name": "cfm", "time_sampling": "logit_normal"}}),
    "cfm-t": ("CFM: uniform t, loss weighted by t", {"objective": {"name": "cfm", "weighting": "linear"}}),
    "cfm-t2": ("CFM: uniform t, loss weighted by t^2", {"objective": {"name": "cfm", "weighting": "quadratic"}}),
}
BASELINE = {"edm": "edm-baseline", "cfm": "cfm-uniform"}


@torch.no_grad()
def held_out_error(trainer, n_items: int, steps: int = 10) -> dict[str, float]:
    """Mean log-mel L1 and MCD (dB) of EMA renders of held-out utterances with their own
    durations against the recordings (noise seeded per item, the same at every call)."""
    from core.flow import meanflow_sample
    from core.sampling import integrate, time_grid

    model, obj, device = trainer.ema.model.eval(), trainer.objective, trainer.device
    data = trainer.data.val_set if trainer.data.val_set is not None else trainer.data.train_set
    l1s, mcds = [], []
    k = 0
    while len(l1s) < n_items and k < len(data):
        item, k = data[k], k + 1
        if item is None:
            continue
        tokens = item.tokens[None].to(device)
        mel = item.mel[None].to(device)
        tmask = torch.ones_like(tokens, dtype=torch.bool)
        mmask = torch.ones(1, mel.shape[2], dtype=torch.bool, device=device)
        cond = model.conditioning(tokens, tmask, torch.tensor([item.speaker], device=device),
                                  model.normalize_mel(mel), mmask)
        x0 = torch.randn(mel.shape, generator=torch.Generator().manual_seed(1000 + k)).to(device)

        def net(x, t, r=None):
            return model.predict(x, t, cond, r=r)

        if trainer.config.objective.name == "meanflow":
            x1 = meanflow_sample(obj.average_velocity(net), x0, time_grid(1, "linear").to(device))
        else:
            x1 = integrate(obj.velocity(net), x0, time_grid(steps, "sway", -1.0).to(device), "euler")
        gen = model.denormalize_mel(x1)[0].float().cpu().numpy()
        ref = mel[0].float().cpu().numpy()
        l1s.append(float(np.abs(gen - ref).mean()))
        diff = cepstrum_from_logmel(gen.T) - cepstrum_from_logmel(ref.T)
        mcds.append(float(MCD_CONST * np.sqrt((diff ** 2).sum(axis=1)).mean()))
    model.train()
    return {"mel_l1": statistics.fmean(l1s), "mcd": statistics.fmean(mcds)}


def resolve(overrides: dict, steps: int) -> dict:
    out = json.loads(json.dumps(overrides))
    t = out.setdefault("training", {})
    if t.get("warmup_steps") == "10%":
        t["warmup_steps"] = max(1, steps // 10)
    return out


def run_one(name: str, seed: int, args, out: Path) -> Path:
    from core.train import Trainer

    folder = out / name / f"seed{seed}"
    curve = folder / "curve.jsonl"
    if (folder / "done").is_file():
        return curve
    overrides = resolve(VARIANTS[name][1], args.steps)
    overrides.setdefault("training", {}).update(
        {"data": args.data, "steps": args.steps, "seed": seed, "checkpoint_every": args.eval_every,
         "cache_dir": str(out / "mel_cache"),  # one mel cache for every variant
         "val_every": 0, "log_every": max(1, args.eval_every // 5), "sample_every": 0, "val_fraction": 0.02})
    cfg = merge(preset(args.preset), overrides)
    resume = (folder / "checkpoints").is_dir()
    trainer = Trainer(cfg, folder, progress=False, resume=resume)
    batches = trainer.batches()
    start = time.perf_counter()
    with open(curve, "a") as f:
        if trainer.step == 0:
            f.write(json.dumps({"step": 0, **held_out_error(trainer, args.eval_items), "seconds": 0.0}) + "\n")
        window: list = []
        while trainer.step < args.steps:
            result = trainer.train_step(next(batches))
            window.append(result)
            if len(window) == 50 or trainer.step == args.steps:  # loss rows for the stability columns (the
                # trainer itself adds its bad_step events to the same file)
                taken = [r for r in window if not r.skipped]
                with open(folder / "metrics.jsonl", "a") as log:
                    log.write(json.dumps({"step": trainer.step,
                                          "loss": statistics.fmean(r.loss for r in taken) if taken else math.nan,
                                          "grad_norm": max((r.grad_norm for r in taken), default=math.nan)}) + "\n")
                window = []
            if trainer.step % args.eval_every == 0 or trainer.step == args.steps:
                trainer.save()
                row = {"step": trainer.step, **held_out_error(trainer, args.eval_items),
                       "seconds": time.perf_counter() - start}
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(f"{name} seed {seed} step {trainer.step}: mel L1 {row['mel_l1']:.4f}, MCD {row['mcd']:.3f}",
                      flush=True)
    (folder / "done").write_text("")
    return curve


def final_wer(folder: Path, sentences: list, recognizer, speaker: str) -> dict:
    """Pocketsphinx WER of the run's final EMA weights on ``sentences`` (10 Euler steps on
    the sway grid, predicted durations, no guidance, Griffin-Lim, seed 0), cached in
    ``<folder>/wer.json``."""
    from core.eval import wer
    from core.sampling import Synthesizer

    cached = folder / "wer.json"
    if cached.is_file():
        result = json.loads(cached.read_text())
        if result.get("n") == len(sentences):
            return result
    last = sorted((folder / "checkpoints").glob("step_*.pt"))[-1]
    synth = Synthesizer.from_checkpoint(last, vocoder="griffin-lim")
    hyps = []
    for s in sentences:
        clip = synth.synthesize(s.text, steps=10, solver="euler", schedule="sway", sway=-1.0, cfg=0.0,
                                duration_scale=1.0, temperature=1.0, seed=0, speaker=speaker)
        hyps.append(recognizer.transcribe(clip.audio, clip.sample_rate))
    w = wer([s.text for s in sentences], hyps)
    result = {"n": len(sentences), "wer": w.wer, "checkpoint": last.name, "speaker": speaker}
    cached.write_text(json.dumps(result))
    return result


def wer_pass(out: Path, corpus: Path, n: int, speaker: str) -> None:
    """WER of every finished run, and of the corpus's own recordings of the same
    sentences (the reference point), into ``<out>/wer_reference.json``."""
    from core.audio import load_wav_with_rate
    from core.eval import Recognizer, read_sentences, references_from_manifest, wer

    sentences = read_sentences(corpus / "heldout.txt")[:n]
    recognizer = Recognizer()
    ref_file = out / "wer_reference.json"
    if not ref_file.is_file() or json.loads(ref_file.read_text()).get("n") != n:
        refs = references_from_manifest(corpus / "heldout_manifest.csv", sentences, speaker)
        hyps = []
        for s in sentences:
            clip = load_wav_with_rate(corpus / refs[s.id] if not Path(refs[s.id]).is_absolute() else refs[s.id])
            hyps.append(recognizer.transcribe(clip.samples, clip.sample_rate))
        ref_file.write_text(json.dumps({"n": n, "speaker": speaker,
                                        "wer": wer([s.text for s in sentences], hyps).wer}))
    for folder in sorted(out.glob("*/seed*")):
        if (folder / "done").is_file():
            r = final_wer(folder, sentences, recognizer, speaker)
            print(f"{folder.parent.name} {folder.name}: WER {r['wer']:.3f} ({n} sentences, {speaker})", flush=True)


def stability(folder: Path) -> dict:
    """From the run's metrics.jsonl: skipped (bad) steps, the largest logged gradient
    norm, and the largest rise of the logged loss between consecutive log rows after
    the first 10 % of the run (a spike measure; losses of different objectives are on
    different scales, so compare it within a family only)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r and "event" not in r]
    bad = sum(1 for r in rows if r.get("event") == "bad_step")
    if not train:
        return {"bad_steps": bad, "max_grad_norm": math.nan, "max_rise": math.nan}
    late = train[len(train) // 10:]
    rises = [b["loss"] / a["loss"] for a, b in zip(late, late[1:]) if a["loss"] > 0]
    return {"bad_steps": bad, "max_grad_norm": max(r["grad_norm"] for r in train),
            "max_rise": max(rises) if rises else math.nan}


def read_curve(path: Path) -> list[dict]:
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        rows[row["step"]] = row  # a resumed run may repeat a step: keep the newest
    return [rows[s] for s in sorted(rows)]


def steps_to(curve: list[dict], level: float, key: str = "mel_l1") -> float:
    """The step at which the curve first reaches ``level``, interpolated linearly between
    the two evaluations around the crossing (inf if never), so speed-ups are not
    quantised to the evaluation interval."""
    for prev, row in zip([None] + curve[:-1], curve):
        if row[key] <= level:
            if prev is None or prev[key] == row[key]:
                return float(row["step"])
            frac = (prev[key] - level) / (prev[key] - row[key])
            return prev["step"] + frac * (row["step"] - prev["step"])
    return math.inf


def report(out: Path) -> str:
    curves = {}
    for folder in sorted(out.glob("*/seed*")):
        if (folder / "done").is_file():  # finished runs only (a running one has a partial curve)
            curves.setdefault(folder.parent.name, []).append(read_curve(folder / "curve.jsonl"))
    lines = ["| variant | what | seeds | final mel L1 (mean ± spread) | final MCD dB | steps to the level | "
             "speed-up vs baseline | steps to the baseline's final value | WER | "
             "bad steps / max grad norm / max loss rise |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for family, base in BASELINE.items():
        if base not in curves:
            continue
        # the quality level: what the baseline reaches at half its run (mean over seeds)
        half = [min(c, key=lambda r: abs(r["step"] - c[-1]["step"] / 2))["mel_l1"] for c in curves[base]]
        level = statistics.fmean(half)
        base_steps = statistics.fmean(steps_to(c, level) for c in curves[base])
        final_level = statistics.fmean(c[-1]["mel_l1"] for c in curves[base])
        for name in [n for n in VARIANTS if n.startswith(family + "-") and n in curves]:
            finals = [c[-1]["mel_l1"] for c in curves[name]]
            mcds = [c[-1]["mcd"] for c in curves[name]]
            reach = [steps_to(c, level) for c in curves[name]]
            reach_final = [steps_to(c, final_level) for c in curves[name]]
            mean_reach = statistics.fmean(reach)
            speed = base_steps / mean_reach if math.isfinite(mean_reach) and mean_reach > 0 else math.nan
            per_seed = [base_steps / r if math.isfinite(r) and r > 0 else math.nan for r in reach]  # the spread
            spread = (max(finals) - min(finals)) / 2 if len(finals) > 1 else 0.0
            folders = sorted((out / name).glob("seed*"))
            wers = [json.loads((f / "wer.json").read_text())["wer"] for f in folders if (f / "wer.json").is_file()]
            stab = [stability(f) for f in folders if (f / "metrics.jsonl").is_file()]
            summary[name] = {"final_mel_l1": finals, "final_mcd": mcds, "steps_to_level": reach, "level": level,
                             "speedup": speed, "speedup_per_seed": per_seed, "final_level": final_level,
                             "steps_to_final_level": reach_final, "wer": wers, "stability": stab}
            wer_text = " / ".join(f"{w:.3f}" for w in wers) or "—"
            stab_text = " ; ".join(f"{s['bad_steps']} / {s['max_grad_norm']:.2f} / {s['max_rise']:.2f}" for s in stab)
            lines.append(f"| {name} | {VARIANTS[name][0]} | {len(finals)} | {statistics.fmean(finals):.4f} ± "
                         f"{spread:.4f} | {statistics.fmean(mcds):.3f} | {' / '.join(f'{r:.0f}' for r in reach)} "
                         f"(level {level:.4f}) | {_speed_text(speed, per_seed)} | "
                         f"{' / '.join(f'{r:.0f}' for r in reach_final)} (level {final_level:.4f}) | "
                         f"{wer_text} | {stab_text} |")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    _plot(curves, out / "convergence.svg")
    return table


def _speed_text(speed: float, per_seed: list) -> str:
    """``1.85x (1.70-2.01)``: the speed-up of the mean steps, then the range over seeds
    (a seed that never reached the level counts as "not reached")."""
    if math.isnan(speed):
        return "not reached"
    if len(per_seed) < 2:
        return f"{speed:.2f}x"
    shown = ["n.r." if math.isnan(v) else f"{v:.2f}" for v in sorted(per_seed, key=lambda v: (math.isnan(v), v))]
    return f"{speed:.2f}x ({'-'.join(shown[::max(1, len(shown) - 1)])})"


def _plot(curves: dict, path: Path) -> None:
    """Held-out mel L1 against step, mean over seeds, one panel per family, as SVG (no
    plotting package needed; Markdown shows it)."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
              "#17becf"]
    panels = []
    for family in ("edm", "cfm"):
        lines = {}
        for name, runs in curves.items():
            if name.startswith(family):
                n = min(len(c) for c in runs)
                lines[name] = [(runs[0][i]["step"], statistics.fmean(c[i]["mel_l1"] for c in runs)) for i in range(n)]
        if lines:
            panels.append((family, lines))
    if not panels:
        return
    w, h, pad = 520, 340, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(panels)}" height="{h}" '
             'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']
    for p_i, (family, lines) in enumerate(panels):
        x0 = p_i * w
        pts = [pt for line in lines.values() for pt in line]
        smax = max(p[0] for p in pts) or 1
        ylo, yhi = min(p[1] for p in pts), max(p[1] for p in pts)
        yhi = yhi if yhi > ylo else ylo + 1

        def xy(step, y):
            return x0 + pad + (w - 2 * pad) * step / smax, h - pad - (h - 2 * pad) * (y - ylo) / (yhi - ylo)

        parts.append(f'<text x="{x0 + pad}" y="20">{family}: held-out log-mel L1 (lower is better) vs step</text>')
        parts.append(f'<line x1="{x0 + pad}" y1="{h - pad}" x2="{x0 + w - pad}" y2="{h - pad}" stroke="black"/>')
        parts.append(f'<line x1="{x0 + pad}" y1="{pad}" x2="{x0 + pad}" y2="{h - pad}" stroke="black"/>')
        for v in (ylo, (ylo + yhi) / 2, yhi):
            _, y = xy(0, v)
            parts.append(f'<text x="{x0 + 4}" y="{y + 4:.1f}">{v:.3f}</text>')
        parts.append(f'<text x="{x0 + w - pad - 30}" y="{h - pad + 16}">{smax}</text>')
        for k, (name, line) in enumerate(sorted(lines.items())):
            color = colors[k % len(colors)]
            path_pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (xy(*pt) for pt in line))
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{path_pts}"/>')
            parts.append(f'<text x="{x0 + w - pad - 120}" y="{pad + 14 * k}" fill="{color}">{name}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-items", type=int, default=12)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--variants", default="all", help=f"comma separated, or all: {', '.join(VARIANTS)}")
    ap.add_argument("--out", default="runs/convergence")
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--report", default="", help="only rebuild the table and plot of this output folder")
    ap.add_argument("--wer", type=int, default=0, metavar="N",
                    help="with --report: first score every finished run's final weights on the first N held-out "
                         "sentences of --corpus with pocketsphinx (cached per run)")
    ap.add_argument("--corpus", default="", help="corpus folder (heldout.txt, heldout_manifest.csv) for --wer")
    ap.add_argument("--speaker", default="slt", help="voice for --wer (default slt)")
    args = ap.parse_args(argv)
    if args.report:
        if args.wer:
            configure_threads(args.threads)
            wer_pass(Path(args.report), Path(args.corpus), args.wer, args.speaker)
        print(report(Path(args.report)))
        return 0
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not args.data:
        print(f"error: {'unknown variant ' + repr(unknown[0]) + '; valid: ' + ', '.join(VARIANTS) if unknown else '--data is required'}",
              file=sys.stderr)
        return 2
    threads = configure_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.time()
    for seed in seeds:  # seeds outermost: a first complete picture early, the spread later
        for name in names:
            run_one(name, seed, args, out)
    print(f"wall time {time.time() - started:.0f} s at {threads} thread(s)")
    print(report(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
