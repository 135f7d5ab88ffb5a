"""Fuzz the text front end with tests/text_fuzz.py's hostile strings and count crashes
(any exception but TextError) and slow calls (over 2 s) per entry point.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_text.py --n 3000 --seed 0 [--phonemes 300]

Entry points: normalize_text, split_sentences(text, 300), the bytes, chars and (when
espeak-ng is installed) phonemes front ends.  Each crash is printed with the first 80
characters of its input; ``--save FILE`` writes the crashing and slow inputs as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's core, and the generator

from core.config import TextConfig  # noqa: E402
from core.text import TextError, TextFrontEnd, build_tokenizer, normalize_text, split_sentences  # noqa: E402
from text_fuzz import nasty_strings  # noqa: E402

SLOW_S = 2.0


def entry_points(with_phonemes: bool) -> dict:
    points = {"normalize": normalize_text, "split": lambda t: split_sentences(t, 300)}
    kinds = ["bytes", "chars"] + (["phonemes"] if with_phonemes else [])
    for kind in kinds:
        cfg = TextConfig(tokenizer=kind, max_chars=2000)
        points[kind] = TextFrontEnd(cfg, build_tokenizer(cfg))
    return points


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--phonemes", type=int, default=300, help="how many strings also go through espeak-ng")
    ap.add_argument("--save", type=Path)
    args = ap.parse_args()
    texts = nasty_strings(args.seed, args.n)
    points = entry_points(shutil.which("espeak-ng") is not None)
    calls, clean, crashes, slow = Counter(), Counter(), Counter(), Counter()
    found = []
    t_all = time.perf_counter()
    for k, text in enumerate(texts):
        for name, fn in points.items():
            if name == "phonemes" and k >= args.phonemes:
                continue
            calls[name] += 1
            t0 = time.perf_counter()
            try:
                fn(text)
            except TextError:
                clean[name] += 1
            except Exception as exc:  # noqa: BLE001 - counting them is the point
                crashes[name] += 1
                found.append({"entry": name, "error": f"{type(exc).__name__}: {str(exc)[:100]}", "text": text})
                print(f"CRASH {name}: {type(exc).__name__}: {str(exc)[:80]} <- {text[:80]!r}")
            dt = time.perf_counter() - t0
            if dt > SLOW_S:
                slow[name] += 1
                found.append({"entry": name, "error": f"slow {dt:.1f} s", "text": text})
                print(f"SLOW {name}: {dt:.1f} s <- {text[:80]!r}")
    total = time.perf_counter() - t_all
    print(f"{len(texts)} strings, {sum(calls.values())} calls, {sum(clean.values())} clean TextErrors, "
          f"{sum(crashes.values())} crashes, {sum(slow.values())} over {SLOW_S} s, {total:.1f} s")
    for name in points:
        print(f"  {name:10s} calls {calls[name]:6d}  TextError {clean[name]:5d}  crashes {crashes[name]:4d}  "
              f"slow {slow[name]:4d}")
    if args.save:
        args.save.write_text(json.dumps(found, ensure_ascii=True, indent=1))
    return 1 if crashes or slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
