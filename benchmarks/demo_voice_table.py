"""Score a voice against the flite references on held-out sentences, side by side in one run.

    python benchmarks/demo_voice_table.py [--checkpoint assets/demo.pt] [--corpus corpus]
                                          [--speaker slt] [--limit 100] [--out runs/demo_table]

Rows (each one ``python -m core eval`` call, its JSON report kept in ``--out``):

- the flite recordings themselves, and the same recordings copy-synthesised through the
  vocoder (reference -> Vocos-exact mel -> vocoder: the best a model heard through that
  vocoder can sound);
- the checkpoint with Euler at 2, 4, 10 and 32 steps, each with sway -1 and sway 0;
- the checkpoint with the midpoint solver at 4 and 10 steps (twice the network calls), sway -1;
- Euler at 4 and 10 steps, sway -1, with classifier-free guidance 2 (both passes in one
  batched forward, so twice the batch per network call).

Every model row sets all its sampler options (the sway grid, guidance 0 unless stated,
duration scale 1, temperature 1), whatever the checkpoint's ``sampling`` section says.
For issue 17's table of several voices at their own defaults, see ``voices_table.py``.

WER is pooled over all words of the held-out sentences (pocketsphinx, see ``core.eval``),
DNSMOS is the mean overall score, MCD is mel-cepstral distortion with DTW against the
flite recording, RTF the synthesizer's own timing over the audio length on this machine.
A report already in ``--out`` for the same settings is reused, so an interrupted run
resumes; ``--fresh`` scores everything again.  The table goes to stdout and
``<out>/table.md``, the numbers to ``<out>/table.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cli import main as core_main  # noqa: E402


@dataclass(frozen=True)
class Row:
    """One line of the table: a label, a file stem and the ``core eval`` arguments."""

    label: str
    stem: str
    args: tuple[str, ...]
    solver: str = ""
    steps: int = 0
    sway: float | None = None
    cfg: float = 0.0


# what every model row fixes besides its own solver, steps, sway and guidance (core eval would
# otherwise take these from the checkpoint's sampling section, which may differ)
FIXED = ("--schedule", "sway", "--duration-scale", "1", "--temperature", "1")


def rows(vocoder: str) -> list[Row]:
    out = [Row("flite recordings", "ref_raw", ("--references-only",)),
           Row("flite -> mel -> vocoder", "ref_resynth",
               ("--references-only", "--resynthesize", "--vocoder", vocoder))]
    for sway in (-1.0, 0.0):
        for steps in (2, 4, 10, 32):
            out.append(Row("demo", f"euler_{steps}_sway{sway:g}",
                           ("--solver", "euler", "--steps", str(steps), "--sway", str(sway), "--cfg", "0", *FIXED,
                            "--vocoder", vocoder), "euler", steps, sway))
    for steps in (4, 10):
        out.append(Row("demo", f"midpoint_{steps}_sway-1",
                       ("--solver", "midpoint", "--steps", str(steps), "--sway", "-1", "--cfg", "0", *FIXED,
                        "--vocoder", vocoder), "midpoint", steps, -1.0))
    for steps in (4, 10):
        out.append(Row("demo", f"euler_{steps}_sway-1_cfg2",
                       ("--solver", "euler", "--steps", str(steps), "--sway", "-1", "--cfg", "2", *FIXED,
                        "--vocoder", vocoder), "euler", steps, -1.0, 2.0))
    return out


def score(row: Row, common: list[str], checkpoint: str | None, out: Path, fresh: bool) -> dict:
    report = out / f"{row.stem}.json"
    args = ["eval", *common, *row.args, "--out", str(report)]
    if "--references-only" not in row.args and checkpoint is not None:
        args += ["--checkpoint", checkpoint]
    stamp = out / f"{row.stem}.args.json"
    if not fresh and report.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == args:
        return json.loads(report.read_text())
    start = time.perf_counter()
    rc = core_main(args)
    if rc != 0:
        raise SystemExit(f"core eval failed for {row.stem} (exit {rc}): {' '.join(args)}")
    stamp.write_text(json.dumps(args))
    result = json.loads(report.read_text())
    sys.stderr.write(f"  {row.stem}: {time.perf_counter() - start:.0f} s\n")
    return result


def fmt(value, digits=3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the bundled demo voice)")
    p.add_argument("--corpus", default="corpus", help="corpus folder with heldout.txt and heldout_manifest.csv")
    p.add_argument("--speaker", default="slt", help="voice to synthesise and to compare with (default slt)")
    p.add_argument("--limit", type=int, default=100, help="held-out sentences to score (default 100)")
    p.add_argument("--vocoder", default="auto", help="vocoder for the model and the copy synthesis")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs/demo_table")
    p.add_argument("--fresh", action="store_true", help="score every row again")
    args = p.parse_args(argv)

    corpus = Path(args.corpus)
    for name in ("heldout.txt", "heldout_manifest.csv"):
        if not (corpus / name).is_file():
            p.error(f"{corpus / name} not found: build the corpus with `python -m core corpus --out {corpus}`")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vocoder = args.vocoder  # "auto" resolves the same way for every row; the reports name the result
    common = ["--sentences", str(corpus / "heldout.txt"), "--references", str(corpus / "heldout_manifest.csv"),
              "--speaker", args.speaker, "--reference-speaker", args.speaker, "--limit", str(args.limit),
              "--device", args.device]
    table = []
    for row in rows(vocoder):
        rep = score(row, common, args.checkpoint, out, args.fresh)
        m, s = rep["means"], rep["settings"]
        table.append({"row": row.label, "stem": row.stem, "solver": row.solver, "steps": row.steps,
                      "sway": row.sway, "cfg": row.cfg, "nfe": row.steps * (2 if row.solver == "midpoint" else 1) or None,
                      "vocoder": s.get("vocoder"), "n": s.get("n"), "wer": m.get("wer"),
                      "dnsmos": m.get("dnsmos_ovrl"), "mcd": m.get("mcd"), "rtf": m.get("rtf")})

    import torch

    ref_wer = table[0]["wer"]
    lines = [f"{table[0]['n']} held-out sentences, voice {args.speaker}, vocoder {table[-1]['vocoder']}; "
             f"RTF on {platform.machine()} with {torch.get_num_threads()} torch threads.", "",
             "| audio | solver | steps | NFE | sway | CFG | WER | WER / flite | DNSMOS | MCD (dB) | RTF |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        model = bool(r["solver"])
        cells = [r["row"], r["solver"] if model else "—", r["steps"] if model else "—", r["nfe"] if model else "—",
                 format(r["sway"], "g") if model else "—", format(r["cfg"], "g") if model else "—",
                 fmt(r["wer"]), fmt(r["wer"] / ref_wer if ref_wer else None, 2), fmt(r["dnsmos"], 2),
                 fmt(r["mcd"], 2), fmt(r["rtf"], 3)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text, encoding="utf-8")
    (out / "table.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
