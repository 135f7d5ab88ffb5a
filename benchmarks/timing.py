"""Timing helpers the benchmarks share: the median of repeated calls after a warm-up."""

from __future__ import annotations

import statistics
import time
from typing import Callable

__all__ = ["median_call_seconds"]


def median_call_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Call ``fn`` once (warm-up: caches, lazy allocation, compilation of a new shape),
    then ``repeats`` times; the median wall time of those, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
