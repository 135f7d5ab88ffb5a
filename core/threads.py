"""How many CPU threads torch uses, chosen deliberately by every entry point.

On a small machine torch's default (one thread per core) collapses as soon as another
busy process shares the cores: its OpenMP workers spin at every barrier waiting for a
sibling that the scheduler has taken away.  Measured on a 2-core machine: 10-25x
slower at 2 threads with one other busy process, about 1.3x at 1 thread.  A studio
server always shares the cores (the web server, the browser, a stimulus render), so
it, the ``python -m core`` commands and the benchmarks call :func:`configure_threads`.

The choice, in order: the ``threads`` argument, ``$FLOWTTS_THREADS``, else
:func:`default_threads`: one thread on a machine with at most 2 cores, else the cores
less one (for the server, the browser and the OS), at most 8.
"""

from __future__ import annotations

import os
from typing import Optional, Union

__all__ = ["ENV_THREADS", "default_threads", "configure_threads", "resolve_threads"]

ENV_THREADS = "FLOWTTS_THREADS"
MAX_AUTO_THREADS = 8


def default_threads(cores: Optional[int] = None) -> int:
    """Threads for ``cores`` available cores (default: those this process may use)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= 2 else min(cores - 1, MAX_AUTO_THREADS)


def resolve_threads(threads: Union[int, str, None] = None) -> int:
    """The thread count to use: ``threads`` (an int >= 1, or ``"auto"``/None), else
    ``$FLOWTTS_THREADS``, else :func:`default_threads`.  A bad value is a
    :class:`core.config.ConfigError` naming where it came from."""
    from .config import ConfigError

    source = "threads"
    if threads is None or threads == "auto":
        env = os.environ.get(ENV_THREADS, "").strip()
        if not env or env == "auto":
            return default_threads()
        threads, source = env, f"${ENV_THREADS}"
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise ConfigError(f"{source} must be a whole number >= 1 or 'auto', got {threads!r}") from None
    if isinstance(threads, bool) or n < 1 or n > 1024 or (isinstance(threads, float) and threads != n):
        raise ConfigError(f"{source} must be a whole number in 1..1024 or 'auto', got {threads!r}")
    return n


def configure_threads(threads: Union[int, str, None] = None) -> int:
    """Set torch's intra-op thread count (see :func:`resolve_threads`); returns it.
    Threads started later (a studio's background jobs) use the same count."""
    import torch

    n = resolve_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
