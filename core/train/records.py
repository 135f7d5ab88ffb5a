"""Typed records the training loop passes around instead of string-keyed dicts.

* :class:`LossTerms` — one forward pass of model + objective: tensors, still on the
  device (``loss`` carries the graph; the rest is detached).
* :class:`StepResult` — what one optimizer step did: skipped (and why) or the losses as
  Python floats.  Callbacks' ``on_step_end`` receives it.

Time convention: t = 0 is Gaussian noise, t = 1 is the (normalised) mel spectrogram.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from torch import Tensor

# the per-step losses the loop averages over a logging window (metrics.jsonl columns)
LOGGED_TERMS = ("loss", "flow", "mse", "duration", "prior", "grad_norm")


@dataclass(frozen=True)
class LossTerms:
    """Losses of one batch.

    ``loss``: scalar to back-propagate (flow + duration_weight * duration + prior).
    ``flow``: the objective's loss; ``mse``: its unweighted mean squared error (equal to
    ``flow`` for unweighted objectives); ``duration``, ``prior``: the text side's terms.
    ``per_example`` (B,) and ``t`` (B,): each example's objective loss and its time, for
    the per-timestep loss curve.
    """

    loss: Tensor
    flow: Tensor
    mse: Tensor
    duration: Tensor
    prior: Tensor
    per_example: Tensor
    t: Tensor

    @classmethod
    def from_module_output(cls, out: Mapping[str, Tensor]) -> "LossTerms":
        """The loss module returns a plain dict (what DistributedDataParallel's output
        handling traverses); this is the one place its keys are read."""
        return cls(**{name: out[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class StepResult:
    """One optimizer step.  ``skipped``: the guard refused it (non-finite loss or
    gradient, a loss spike, or another rank's bad step) and ``reason`` says why; the
    loss fields are then NaN.  ``batch_size``: examples on this rank."""

    skipped: bool
    reason: str = ""
    loss: float = float("nan")
    flow: float = float("nan")
    mse: float = float("nan")
    duration: float = float("nan")
    prior: float = float("nan")
    grad_norm: float = float("nan")
    batch_size: int = 0

    def logged(self) -> dict[str, float]:
        """The values the loop averages into ``metrics.jsonl`` (see LOGGED_TERMS)."""
        return {name: getattr(self, name) for name in LOGGED_TERMS}
