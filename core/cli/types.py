"""Argument types for ``python -m core``: numbers checked against their valid range
where they are parsed, so that a bad value (``-1``, ``1e9``, ``nan``) is refused up
front, in one line naming the range, before any work starts (argparse exits 2)."""

from __future__ import annotations

import argparse
import math

from ..bundled import BUNDLED_VOICES

__all__ = ["int_range", "float_range", "speaker_arg", "checkpoint_arg", "BUNDLED_NAMES"]

BUNDLED_NAMES = f"a bundled voice's name ({', '.join(v.name for v in BUNDLED_VOICES)})"


def int_range(lo: int, hi: int):
    """An argparse ``type``: an integer in ``[lo, hi]`` (digits only; "1e9" is not an integer)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(lo: float = -math.inf, hi: float = math.inf):
    """An argparse ``type``: a finite number in ``[lo, hi]`` (nan and inf refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not lo <= value <= hi:
            where = "a finite number" + (f" in [{lo:g}, {hi:g}]" if math.isfinite(lo) and math.isfinite(hi)
                                         else f" >= {lo:g}" if math.isfinite(lo) else "")
            raise argparse.ArgumentTypeError(f"must be {where}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def speaker_arg(value: str):
    """A speaker given on the command line: an index when it is digits, else a name."""
    return int(value) if value.strip().isdigit() else value


def checkpoint_arg(text: str) -> str:
    """A ``--checkpoint`` value: a path, or a bundled voice's name (``everyday``,
    ``meanflow``, ``grammar``: :mod:`core.bundled`) turned into its file.  A file of that name in the
    working directory wins over the bundled name."""
    from ..bundled import resolve_checkpoint

    try:
        return str(resolve_checkpoint(text))
    except FileNotFoundError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
