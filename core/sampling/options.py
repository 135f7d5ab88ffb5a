"""The sampler options in one place: names, defaults, bounds, valid choices and a
one-line explanation each.

Everything that offers or checks a sampler option reads it from here: the ``sampling``
section of a config (:class:`core.config.SamplingConfig`), ``Synthesizer.synthesize``,
``python -m core synth`` / ``eval`` / ``bench``, the studio's Explorer and Compare
controls and the Experimenter's condition form.  So a bound is written once and every
page refuses the same values with the same message.

Time convention: t = 0 is Gaussian noise, t = 1 is the mel spectrogram.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

__all__ = ["SamplerOption", "SAMPLER_OPTIONS", "OPTION", "OPTION_ORDER", "SOLVER_NAMES", "SCHEDULE_NAMES",
           "EPSS_STEPS", "SEED_RANGE", "check_option", "check_seed", "check_sampler_options", "sampler_defaults"]

SOLVER_NAMES: tuple[str, ...] = ("euler", "midpoint", "heun", "rk4")
"""Fixed-step ODE solvers (network evaluations per step: 1, 2, 2, 4)."""

SCHEDULE_NAMES: tuple[str, ...] = ("linear", "power", "sway", "epss")
"""Time grids, see :mod:`core.sampling.grids`."""

EPSS_STEPS: tuple[int, ...] = (5, 6, 7, 10, 12, 16)
"""Step counts for which F5-TTS defines an ``epss`` grid."""

SEED_RANGE: tuple[int, int] = (0, 2 ** 31 - 1)
"""Valid seeds (inclusive): what a browser number box and every CLI accept alike."""


@dataclass(frozen=True)
class SamplerOption:
    """One sampler option.

    ``kind`` is ``int``, ``float`` or ``str``; numbers lie in ``[low, high]``
    (inclusive), strings in ``choices``.  ``help`` is one line for tooltips and
    ``--help`` texts.
    """

    name: str
    kind: type
    default: Any
    help: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple[str, ...] = ()

    @property
    def range_text(self) -> str:
        """``"1..1000"``, ``"[-1.0, 1.0]"`` or ``"euler, midpoint, ..."``."""
        if self.choices:
            return ", ".join(self.choices)
        if self.kind is int:
            return f"{int(self.low)}..{int(self.high)}"
        return f"[{self.low}, {self.high}]"

    def check(self, value: Any) -> Any:
        """``value`` as this option's type, or :class:`core.config.ConfigError` naming the
        option, what was given and the valid values."""
        from ..config import ConfigError, choice_error

        if self.choices:
            if not isinstance(value, str) or value not in self.choices:
                raise choice_error(self.name, value, self.choices)
            return value
        bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
        if self.kind is int:
            bad = bad or not (isinstance(value, numbers.Integral) or (isinstance(value, float)
                                                                      and value.is_integer()))
        if bad or not math.isfinite(value) or not self.low <= value <= self.high:
            what = "an integer" if self.kind is int else "a number"
            raise ConfigError(f"{self.name} must be {what} in {self.range_text}, got {value!r}")
        return int(value) if self.kind is int else float(value)


SAMPLER_OPTIONS: tuple[SamplerOption, ...] = (
    SamplerOption("steps", int, 10, "solver steps from noise (t = 0) to mel (t = 1); network evaluations = "
                  "steps x 1 (euler), 2 (midpoint, heun) or 4 (rk4)", 1, 1000),
    SamplerOption("solver", str, "euler", "ODE solver: euler (1 evaluation a step), midpoint and heun (2, "
                  "second order), rk4 (4, fourth order)", choices=SOLVER_NAMES),
    SamplerOption("schedule", str, "sway", "time grid: linear, power (t = u^2), sway (F5-TTS, see sway) or "
                  "epss (F5-TTS's pruned grids for 5, 6, 7, 10, 12 or 16 steps)", choices=SCHEDULE_NAMES),
    SamplerOption("sway", float, -1.0, "sway coefficient of the sway grid: below 0 spends more steps near the "
                  "noise end, where the coarse structure forms (F5-TTS uses -1)", -1.0, 1.0),
    SamplerOption("duration_scale", float, 1.0, "scales the predicted durations: above 1 speaks slower, "
                  "below 1 faster", 0.25, 4.0),
    SamplerOption("cfg", float, 0.0, "classifier-free guidance: pushes the output away from what the model "
                  "predicts without the text (0 = off, about 2 is typical; doubles the batch)", 0.0, 10.0),
    SamplerOption("temperature", float, 1.0, "scale of the initial noise: below 1 flatter and safer, above 1 "
                  "more varied", 0.0, 2.0),
)
OPTION: dict[str, SamplerOption] = {o.name: o for o in SAMPLER_OPTIONS}
OPTION_ORDER: tuple[str, ...] = tuple(OPTION)


def check_option(name: str, value: Any) -> Any:
    """Check one option by name (an unknown name lists the valid ones)."""
    from ..config import choice_error

    if name not in OPTION:
        raise choice_error("sampler option", name, OPTION_ORDER)
    return OPTION[name].check(value)


def check_seed(seed: Any, allow_none: bool = True) -> Optional[int]:
    """A seed in :data:`SEED_RANGE` (None allowed: a random seed is drawn and recorded)."""
    from ..config import ConfigError

    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise ConfigError(f"seed must be {'None or ' if allow_none else ''}an integer in "
                          f"{SEED_RANGE[0]}..{SEED_RANGE[1]}, got {seed!r}")
    return int(seed)


def check_sampler_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a full or partial set of options (missing ones are not filled in) and the
    rules between them: the ``epss`` grid exists only for :data:`EPSS_STEPS`.  Returns
    the checked values as their types."""
    from ..config import ConfigError

    out = {name: check_option(name, value) for name, value in values.items()}
    if out.get("schedule") == "epss" and "steps" in out and out["steps"] not in EPSS_STEPS:
        raise ConfigError(f"the epss schedule is defined for steps {', '.join(map(str, EPSS_STEPS))} only, "
                          f"got steps={out['steps']}; use one of those or another schedule")
    return out


def sampler_defaults() -> dict[str, Union[int, float, str]]:
    """The stated defaults of every option (what a page starts from)."""
    return {o.name: o.default for o in SAMPLER_OPTIONS}
