"""The loss-spike rule of the trainers' bad-step guard (acoustic and vocoder trainers).

A step is a spike when its loss exceeds the running mean by more than ``factor - 1``
times the running mean of the loss's magnitude::

    loss - mean > (factor - 1) * mean_abs

For a loss that is never negative, ``mean_abs == mean`` and the rule is ``loss > factor *
mean``.  A loss that can be negative (LeWM's Gaussian negative log-likelihood) is measured
against its typical size, so a *lower* loss is never a spike; compared as ``loss > factor
* mean``, every step was one once the running mean went below zero (a LeWM run with the
Gaussian head stopped after 5 "spikes" such as -0.24 against a mean of -0.024).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["is_spike", "running_mean", "DECAY", "WEIGHT"]

DECAY, WEIGHT = 0.98, 0.02
"""Weights of the old mean and the new value in the running means (about the last 50 steps)."""


def is_spike(loss: float, mean: Optional[float], mean_abs: Optional[float], factor: float) -> bool:
    """True when ``loss - mean > (factor - 1) * mean_abs``; False before there is a mean.
    ``mean_abs`` None (a state saved before it was kept) is taken as ``|mean|``."""
    if mean is None:
        return False
    scale = abs(mean) if mean_abs is None else mean_abs
    return loss - mean > (factor - 1.0) * scale


def running_mean(mean: Optional[float], value: float) -> float:
    """The exponential running mean after ``value`` (the value itself to start)."""
    return value if mean is None else DECAY * mean + WEIGHT * value
