"""Time grids for sampling a flow: ``steps + 1`` times from 0 (noise) to 1 (data).

Time convention: ``t = 0`` is Gaussian noise, ``t = 1`` is the mel spectrogram, so a
schedule that puts more points near 0 spends more steps where the noise is being
shaped into coarse structure.

Schedules, with ``u = linspace(0, 1, steps + 1)``:

* ``linear`` -- ``t = u``; takes no ``coef``.
* ``power``  -- ``t = u ** coef`` with ``coef > 0`` (default 2.0); ``coef > 1`` puts
  more steps near the noise end ``t = 0``, ``coef < 1`` near the data end.
* ``sway``   -- F5-TTS sway sampling ``t = u + coef * (cos(pi/2 u) - 1 + u)`` with
  ``coef`` in ``[-1, 1]`` (default -1.0, F5-TTS's default); ``coef < 0`` puts more
  steps near ``t = 0``.  Its derivative ``1 + coef * (1 - pi/2 sin(pi/2 u))`` is
  linear in ``coef``; at ``coef = 1`` it is ``>= 2 - pi/2 > 0`` and at ``coef = -1``
  it is ``pi/2 sin(pi/2 u)``, zero only at ``u = 0``.  So the grid is strictly
  increasing for every ``coef`` in ``[-1, 1]`` (at ``coef = -1`` it is
  ``1 - cos(pi/2 u)``, which starts quadratically: ``t_1 ~ pi^2 / (8 steps^2)``).
* ``epss``   -- F5-TTS's empirically pruned step schedules: fixed grids on a lattice
  of 1/32 for 5, 6, 7, 10, 12 and 16 steps only; takes no ``coef``.

Every grid starts at exactly 0.0, ends at exactly 1.0 and is strictly increasing in
the returned dtype (checked; a grid that collapses in low precision is an error).
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch

from ..config import ConfigError, choice_error
from .options import EPSS_STEPS, OPTION, SCHEDULE_NAMES

__all__ = ["SCHEDULES", "SWAY_RANGE", "EPSS_STEPS", "time_grid"]

SCHEDULES: tuple[str, ...] = SCHEDULE_NAMES

SWAY_RANGE: tuple[float, float] = (OPTION["sway"].low, OPTION["sway"].high)

_DEFAULT_COEF = {"power": 2.0, "sway": -1.0}

# F5-TTS (SWivid/F5-TTS, src/f5_tts/model/utils.py, get_epss_timesteps): grid points
# as integers on a lattice of 1/32, keyed by the number of steps.
_EPSS_LATTICE = 32
_EPSS_TABLE: dict[int, tuple[int, ...]] = {
    5: (0, 2, 4, 8, 16, 32),
    6: (0, 2, 4, 6, 8, 16, 32),
    7: (0, 2, 4, 6, 8, 16, 24, 32),
    10: (0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32),
    12: (0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32),
    16: (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32),
}
assert EPSS_STEPS == tuple(sorted(_EPSS_TABLE)), "core.sampling.options.EPSS_STEPS must list the table's keys"


def time_grid(steps: int, schedule: str = "linear", coef: Optional[float] = None, *,
              dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The sampling times for ``steps`` solver steps.

    Args:
        steps: number of solver steps (>= 1); the grid has ``steps + 1`` points.
        schedule: one of :data:`SCHEDULES`.
        coef: the schedule's coefficient (``power``: exponent > 0, default 2.0;
            ``sway``: in ``[-1, 1]``, default -1.0); must be ``None`` for ``linear``
            and ``epss``, which have none.
        dtype, device: of the returned tensor (computed in float64, then cast).

    Returns:
        ``(steps + 1,)`` tensor, ``t[0] == 0.0``, ``t[-1] == 1.0``, strictly increasing.

    Raises:
        ConfigError (a ``ValueError``): unknown schedule, ``steps < 1``, a coefficient
        out of range or given to a schedule without one, an ``epss`` step count F5-TTS
        does not define, or a grid that is not strictly increasing in ``dtype``.
    """
    if schedule not in SCHEDULES:
        raise choice_error("time schedule", schedule, SCHEDULES)
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if not dtype.is_floating_point:
        raise ConfigError(f"time grid dtype must be a floating point type, got {dtype}")
    coef = _check_coef(schedule, coef)

    if schedule == "epss":
        if steps not in _EPSS_TABLE:
            raise ConfigError(f"the epss schedule is defined for steps {', '.join(map(str, EPSS_STEPS))} "
                              f"only, got steps={steps}; use one of those or another schedule")
        t = torch.tensor(_EPSS_TABLE[steps], dtype=torch.float64) / _EPSS_LATTICE
    else:
        u = torch.arange(steps + 1, dtype=torch.float64) / steps
        if schedule == "linear":
            t = u
        elif schedule == "power":
            t = u ** coef
        else:  # sway; cos(x) - 1 written as -2 sin^2(x / 2) to keep precision near u = 0
            t = u + coef * (u - 2.0 * torch.sin(u * (math.pi / 4)) ** 2)
        t[0], t[-1] = 0.0, 1.0

    out = t.to(dtype=dtype, device=device)
    if not bool((out[1:] > out[:-1]).all()):
        raise ConfigError(f"the {schedule} grid with steps={steps}, coef={coef} is not strictly increasing "
                          f"in {dtype}; use fewer steps, a milder coef or a wider dtype")
    return out


def _check_coef(schedule: str, coef: Optional[float]) -> Optional[float]:
    """Validate ``coef`` for ``schedule``; return it as a float (default filled in) or None."""
    if schedule not in _DEFAULT_COEF:
        if coef is not None:
            raise ConfigError(f"the {schedule} schedule takes no coef, got coef={coef!r}; "
                              f"coef applies to: {', '.join(_DEFAULT_COEF)}")
        return None
    if coef is None:
        return _DEFAULT_COEF[schedule]
    if isinstance(coef, bool) or not isinstance(coef, numbers.Real) or not math.isfinite(coef):
        raise ConfigError(f"{schedule} coef must be a finite number, got {coef!r}")
    coef = float(coef)
    if schedule == "power" and coef <= 0:
        raise ConfigError(f"power coef must be > 0 (valid range: (0, inf)), got {coef}")
    lo, hi = SWAY_RANGE
    if schedule == "sway" and not lo <= coef <= hi:
        raise ConfigError(f"sway coef must be in [{lo}, {hi}], got {coef}")
    return coef
