"""``python -m core corpus``: build the flite demo corpus (:mod:`core.corpus`)."""

from __future__ import annotations

import argparse

from ..corpus import DEFAULT_VOICES, CorpusError, build_corpus
from ..corpus_text import DEFAULT_TEXT, TEXT_SOURCES
from .types import int_range


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="corpus folder (created; an existing one is resumed)")
    parser.add_argument("--sentences", type=int_range(1, 10 ** 6), default=2000, help="training sentences (default 2000)")
    parser.add_argument("--voices", default=",".join(DEFAULT_VOICES),
                        help=f"comma-separated flite voices (default {','.join(DEFAULT_VOICES)}; "
                             "`flite -lv` lists them; kal is 8 kHz)")
    parser.add_argument("--text", default=DEFAULT_TEXT,
                        help=f"sentence source (default {DEFAULT_TEXT}): "
                             + "; ".join(f"{s.name}: {s.summary}" for s in TEXT_SOURCES.values()))
    parser.add_argument("--eval-sentences", default=None, metavar="FILE",
                        help="also record these sentences, one a line (e.g. assets/everyday_sentences.txt), "
                             "as eval.txt, eval_wavs/ and eval_manifest.csv; none may be a training sentence")
    parser.add_argument("--seed", type=int_range(0, 2 ** 62 - 1), default=0, help="sentence seed (default 0)")
    parser.add_argument("--heldout", type=int_range(0, 10 ** 5), default=100, help="held-out sentences (default 100)")
    parser.add_argument("--jobs", type=int_range(1, 256), default=None, help="parallel flite processes (default min(4, CPUs))")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from . import UsageError

    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    try:
        report = build_corpus(args.out, sentences=args.sentences, voices=voices, seed=args.seed,
                              heldout=args.heldout, jobs=args.jobs, progress=False if args.quiet else None,
                              text=args.text, eval_sentences=args.eval_sentences)
    except CorpusError as exc:
        raise UsageError(str(exc)) from None
    print(report.summary())
    return 0
