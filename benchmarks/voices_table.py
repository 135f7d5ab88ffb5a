"""Issue 17's Measure table: the flite recordings and every voice at every setting, on
held-out everyday sentences, in one run; the issue's two bars at the end.

    python benchmarks/voices_table.py --corpus corpus_everyday \\
        --voice old=assets/demo.pt --voice new=assets/demo_everyday.pt \\
        --voice meanflow=assets/demo_meanflow.pt --flow-voice new \\
        [--set eval] [--speaker slt] [--cfg 2] [--vocoder auto] [--limit 100] [--out runs/voices_table]

Sentences: ``--set eval`` (default) is the corpus's hand-written ``eval.txt`` with its
flite recordings ``eval_manifest.csv`` (``python -m core corpus --eval-sentences``);
``--set heldout`` its generated ``heldout.txt`` / ``heldout_manifest.csv``.

Rows (each a ``python -m core eval`` call through ``benchmarks/demo_voice_table.score``,
so a report already in ``--out`` for the same arguments is reused on a rerun):

- the flite recordings, and the same copy-synthesised through ``--vocoder`` (the ceiling
  for a model heard through that vocoder);
- each ``--voice LABEL=CHECKPOINT`` (repeatable; the objective is read from the
  checkpoint's config): a flow-matching voice at 1, 2, 4, 10 and 32 Euler steps, without
  guidance and with ``--cfg``; a MeanFlow voice at 1 and 2 steps.  Every other sampler
  option is the checkpoint's own default (its config's ``sampling`` section).  The row
  that is the checkpoint's default setting is marked; if no row is, one more row scores
  the voice at its defaults.

Columns: WER (pocketsphinx, pooled over all words), WER as a multiple of the flite
recordings' ("x flite"), DNSMOS overall, MCD (DTW against the flite recording), RTF (the
synthesizer's whole time, vocoder included, over the audio length) and the acoustic
model's time (text to mel, no vocoder) per sentence, in ms.

The bars (issue 17, "Done when"): the flow voice (``--flow-voice``; needed when several
are given) at its default settings has WER <= 1.5x flite's; the MeanFlow voice
(``--meanflow-voice``) at one step has WER <= 1.3x that flow voice's and an acoustic
model >= 5x faster than it.  Each is reported as met or not met.  The table goes to
stdout and ``<out>/table.md``, the numbers to ``<out>/table.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo_voice_table import Row, fmt, score  # noqa: E402

FLOW_STEPS = (1, 2, 4, 10, 32)
MEANFLOW_STEPS = (1, 2)
FLOW_WER_X_FLITE = 1.5        # flow voice at its defaults: WER <= 1.5x flite's
MEANFLOW_WER_X_FLOW = 1.3     # MeanFlow at one step: WER <= 1.3x the flow voice's ...
MEANFLOW_SPEEDUP = 5.0        # ... and an acoustic model >= 5x faster
SETS = {"eval": ("eval.txt", "eval_manifest.csv"), "heldout": ("heldout.txt", "heldout_manifest.csv")}
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Voice:
    """A ``--voice LABEL=CHECKPOINT``: its objective and its sampling defaults (the
    config's ``sampling`` section as a dict)."""

    label: str
    checkpoint: str
    objective: str
    defaults: dict

    @property
    def meanflow(self) -> bool:
        return self.objective == "meanflow"


@dataclass(frozen=True)
class Planned:
    """One row to score: the ``core eval`` row, its voice (None for the recordings), the
    sampler options it sets (the rest are the checkpoint's) and whether they are the
    checkpoint's default setting."""

    row: Row
    voice: Optional[Voice] = None
    options: tuple = ()
    default: bool = False


def read_voice(spec: str) -> Voice:
    """``LABEL=CHECKPOINT`` -> :class:`Voice`; ValueError says what is wrong."""
    from core.checkpoint import load_checkpoint
    from core.config import to_dict

    label, sep, path = spec.partition("=")
    if not sep or not path or not LABEL.fullmatch(label):
        raise ValueError(f"--voice {spec!r}: expected LABEL=CHECKPOINT with a label of letters, digits, "
                         "'_', '-' or '.' (e.g. new=runs/demo2/checkpoints/step_00016000.pt)")
    if not Path(path).is_file():
        raise ValueError(f"--voice {spec}: no such checkpoint file {path}")
    config = load_checkpoint(path).config
    if config.model.family != "flow":
        raise ValueError(f"--voice {spec}: a {config.model.family} checkpoint; this table scores "
                         "flow-matching and MeanFlow voices")
    return Voice(label, path, config.objective.name, to_dict(config.sampling))


def _flags(options: dict) -> tuple[str, ...]:
    out: list[str] = []
    for key, value in options.items():
        out += [f"--{key.replace('_', '-')}", format(value, "g") if isinstance(value, float) else str(value)]
    return tuple(out)


def voice_rows(voice: Voice, cfg: float, vocoder: str) -> list[Planned]:
    """The rows of one voice: flow matching at :data:`FLOW_STEPS` Euler steps with CFG 0
    and ``cfg``, MeanFlow at :data:`MEANFLOW_STEPS` (its own CFG default); plus a row at
    the checkpoint's defaults when none of these is that setting."""
    from core.sampling.options import EPSS_STEPS

    d = voice.defaults
    if voice.meanflow:
        grid = [{"solver": "euler", "steps": s} for s in MEANFLOW_STEPS]
    else:
        grid = [{"solver": "euler", "steps": s, "cfg": c} for c in (0.0, cfg) for s in FLOW_STEPS]
    out = []
    for options in grid:
        if d["schedule"] == "epss" and options["steps"] not in EPSS_STEPS:
            options["schedule"] = "sway"  # F5-TTS's pruned grids exist for a few step counts only
        stem = f"{voice.label}_euler{options['steps']}" + (f"_cfg{options['cfg']:g}" if "cfg" in options else "")
        row = Row(voice.label, stem, (*_flags(options), "--vocoder", vocoder), "euler", options["steps"],
                  None, options.get("cfg", d["cfg"]))
        out.append(Planned(row, voice, tuple(options.items()),
                           all(d[k] == v for k, v in options.items())))
    if not any(p.default for p in out):
        out.append(Planned(Row(voice.label, f"{voice.label}_default", ("--vocoder", vocoder), d["solver"],
                               d["steps"], None, d["cfg"]), voice, (), True))
    return out


def plan(voices: list[Voice], cfg: float, vocoder: str) -> list[Planned]:
    """Every row of the table, in order: the recordings, their copy synthesis, each voice."""
    out = [Planned(Row("flite recordings", "ref_raw", ("--references-only",))),
           Planned(Row("flite -> mel -> vocoder", "ref_resynth",
                       ("--references-only", "--resynthesize", "--vocoder", vocoder)))]
    for voice in voices:
        out += voice_rows(voice, cfg, vocoder)
    return out


def table_entry(p: Planned, report: dict) -> dict:
    """One table row's numbers from a ``core eval`` report (``x_flite`` filled by :func:`add_x_flite`)."""
    m, s = report["means"], report["settings"]
    acoustic = m.get("acoustic_seconds")
    model = p.voice is not None
    return {"row": p.row.label, "stem": p.row.stem, "voice": p.voice.label if model else None,
            "objective": p.voice.objective if model else None, "default": p.default,
            "steps": s.get("steps") if model else None, "cfg": s.get("cfg") if model else None,
            "nfe": s.get("nfe") if model else None, "schedule": s.get("schedule") if model else None,
            "vocoder": s.get("vocoder"), "n": s.get("n"), "wer": m.get("wer"), "dnsmos": m.get("dnsmos_ovrl"),
            "mcd": m.get("mcd"), "rtf": m.get("rtf"),
            "acoustic_ms": None if acoustic is None else 1000.0 * acoustic}


def add_x_flite(table: list[dict]) -> None:
    """``x_flite``: each row's WER over the flite recordings' (the ``ref_raw`` row)."""
    flite = next(r["wer"] for r in table if r["stem"] == "ref_raw")
    for r in table:
        r["x_flite"] = r["wer"] / flite if flite and r["wer"] is not None else None


@dataclass(frozen=True)
class Bar:
    """One of the issue's bars: ``met`` is None when it could not be judged."""

    name: str
    met: Optional[bool]
    text: str

    def line(self) -> str:
        verdict = {True: "met", False: "NOT met", None: "not judged"}[self.met]
        return f"- {self.name}: {self.text}: **{verdict}**"


def _default(table: list[dict], label: str) -> dict:
    return next(r for r in table if r["voice"] == label and r["default"])


def _one_step(table: list[dict], label: str) -> dict:
    return next(r for r in table if r["voice"] == label and r["steps"] == 1)


def bars(table: list[dict], flow: Optional[str], meanflow: Optional[str]) -> list[Bar]:
    """Issue 17's two bars on a table (entries of :func:`table_entry` with ``x_flite``)."""
    name1 = f"flow voice at its default settings, WER <= {FLOW_WER_X_FLITE:g}x flite's"
    name2 = (f"MeanFlow voice at 1 step, WER <= {MEANFLOW_WER_X_FLOW:g}x the flow voice's and "
             f"acoustic model >= {MEANFLOW_SPEEDUP:g}x faster")
    flite = next(r for r in table if r["stem"] == "ref_raw")
    if flow is None:
        return [Bar(name1, None, "no flow-matching voice given"), Bar(name2, None, "no flow-matching voice given")]
    f = _default(table, flow)
    if f["x_flite"] is None:
        first = Bar(name1, None, f"flite's WER is {fmt(flite['wer'])}: no multiple of it to judge")
    else:
        first = Bar(name1, f["x_flite"] <= FLOW_WER_X_FLITE,
                    f"`{flow}` ({f['steps']} steps, CFG {f['cfg']:g}) WER {fmt(f['wer'])} = {f['x_flite']:.2f}x "
                    f"flite's {fmt(flite['wer'])}")
    if meanflow is None:
        return [first, Bar(name2, None, "no MeanFlow voice given")]
    m = _one_step(table, meanflow)
    if f["acoustic_ms"] is None or m["acoustic_ms"] is None:
        return [first, Bar(name2, None, "no acoustic-model time in the reports (score them again with --fresh)")]
    ratio = m["wer"] / f["wer"] if f["wer"] else (1.0 if m["wer"] == 0 else float("inf"))
    speedup = f["acoustic_ms"] / m["acoustic_ms"]
    return [first, Bar(name2, ratio <= MEANFLOW_WER_X_FLOW and speedup >= MEANFLOW_SPEEDUP,
                       f"`{meanflow}` WER {fmt(m['wer'])} = {ratio:.2f}x `{flow}`'s {fmt(f['wer'])}; acoustic "
                       f"model {m['acoustic_ms']:.1f} ms vs {f['acoustic_ms']:.1f} ms a sentence = "
                       f"{speedup:.1f}x faster")]


def _cell(value, digits: int) -> str:
    return "—" if value is None else fmt(value, digits)


def render(table: list[dict], bar_list: list[Bar], header: list[str]) -> str:
    lines = header + ["", "| audio | default | steps | NFE | CFG | WER | x flite | DNSMOS | MCD (dB) | RTF "
                      "| acoustic (ms/sentence) |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        model = r["voice"] is not None
        audio = f"{r['voice']} ({r['objective']})" if model else r["row"]
        cells = [audio, "yes" if r["default"] else "", r["steps"] if model else "—", r["nfe"] if model else "—",
                 format(r["cfg"], "g") if model else "—", _cell(r["wer"], 3), _cell(r["x_flite"], 2),
                 _cell(r["dnsmos"], 2), _cell(r["mcd"], 2), _cell(r["rtf"], 3), _cell(r["acoustic_ms"], 1)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", "Issue 17's bars:"] + [b.line() for b in bar_list]
    return "\n".join(lines) + "\n"


def _pick(p: argparse.ArgumentParser, voices: list[Voice], given: Optional[str], meanflow: bool, flag: str
          ) -> Optional[str]:
    """The label of the voice a bar judges: ``given`` (checked), or the only one of its kind."""
    labels = [v.label for v in voices if v.meanflow == meanflow]
    kind = "MeanFlow" if meanflow else "flow-matching"
    if given is not None:
        if given not in labels:
            p.error(f"{flag} {given}: not a {kind} voice of this run; valid: {', '.join(labels) or 'none'}")
        return given
    if len(labels) > 1:
        p.error(f"several {kind} voices ({', '.join(labels)}): name the one the bars judge with {flag}")
    return labels[0] if labels else None


def main(argv=None) -> int:
    from core.config import ConfigError
    from core.sampling.options import OPTION

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voice", action="append", default=[], metavar="LABEL=CHECKPOINT",
                   help="a voice to score (repeatable), e.g. new=assets/demo_everyday.pt")
    p.add_argument("--flow-voice", default=None, help="the flow-matching voice the bars judge (when several)")
    p.add_argument("--meanflow-voice", default=None, help="the MeanFlow voice the bars judge (when several)")
    p.add_argument("--corpus", default="corpus_everyday", help="corpus folder (python -m core corpus)")
    p.add_argument("--set", default="eval", choices=sorted(SETS),
                   help="eval: eval.txt + eval_manifest.csv (default); heldout: heldout.txt + heldout_manifest.csv")
    p.add_argument("--speaker", default="slt", help="voice to synthesise and to compare with (default slt)")
    p.add_argument("--cfg", type=float, default=2.0, help="guidance of the guided flow rows (default 2)")
    p.add_argument("--limit", type=int, default=100, help="sentences to score (default 100)")
    p.add_argument("--vocoder", default="auto", help="vocoder for the models and the copy synthesis")
    p.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (~1 s a clip on CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/voices_table")
    p.add_argument("--fresh", action="store_true", help="score every row again")
    args = p.parse_args(argv)

    if not args.voice:
        p.error("give at least one --voice LABEL=CHECKPOINT")
    try:
        if OPTION["cfg"].check(args.cfg) <= 0:
            p.error(f"--cfg must be above 0 (the guided rows), got {args.cfg:g}")
        voices = [read_voice(spec) for spec in args.voice]
    except (ConfigError, ValueError) as exc:
        p.error(str(exc))
    labels = [v.label for v in voices]
    if len(set(labels)) < len(labels):
        p.error(f"--voice labels must differ: {', '.join(labels)}")
    if args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
    flow = _pick(p, voices, args.flow_voice, False, "--flow-voice")
    meanflow = _pick(p, voices, args.meanflow_voice, True, "--meanflow-voice")
    sentences, references = (Path(args.corpus) / name for name in SETS[args.set])
    for path in (sentences, references):
        if not path.is_file():
            p.error(f"{path} not found: build the corpus with `python -m core corpus --out {args.corpus}"
                    f"{' --eval-sentences assets/everyday_sentences.txt' if args.set == 'eval' else ''}`")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--sentences", str(sentences), "--references", str(references), "--speaker", args.speaker,
              "--reference-speaker", args.speaker, "--limit", str(args.limit), "--device", args.device,
              "--seed", "0", *(["--no-dnsmos"] if args.no_dnsmos else [])]
    table = []
    for planned in plan(voices, args.cfg, args.vocoder):
        checkpoint = planned.voice.checkpoint if planned.voice is not None else None
        table.append(table_entry(planned, score(planned.row, common, checkpoint, out, args.fresh)))
    add_x_flite(table)
    bar_list = bars(table, flow, meanflow)

    import torch

    header = [f"{table[0]['n']} sentences of {sentences}, voice {args.speaker}, vocoder {table[-1]['vocoder']}, "
              f"seed 0; RTF and acoustic time on {platform.machine()} with {torch.get_num_threads()} torch "
              "threads.", ""]
    for v in voices:
        d = v.defaults
        header.append(f"- `{v.label}`: {v.checkpoint} ({v.objective}); checkpoint defaults: {d['steps']} "
                      f"{d['solver']} steps, {d['schedule']} schedule (sway {d['sway']:g}), CFG {d['cfg']:g}, "
                      f"temperature {d['temperature']:g}, duration scale {d['duration_scale']:g}")
    text = render(table, bar_list, header)
    (out / "table.md").write_text(text, encoding="utf-8")
    (out / "table.json").write_text(json.dumps(
        {"settings": {"sentences": str(sentences), "references": str(references), "speaker": args.speaker,
                      "cfg": args.cfg, "limit": args.limit, "flow_voice": flow, "meanflow_voice": meanflow,
                      "voices": {v.label: {"checkpoint": v.checkpoint, "objective": v.objective,
                                           "defaults": v.defaults} for v in voices}},
         "rows": table, "bars": [{"bar": b.name, "met": b.met, "text": b.text} for b in bar_list]},
        indent=2), encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
