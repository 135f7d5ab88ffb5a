"""Typed records the training loop passes around instead of string-keyed dicts.

* :class:`LossTerms` — one forward pass of model + objective: tensors, still on the
  device (``loss`` carries the graph; the rest is detached).
* :class:`StepResult` — what one optimizer step did: skipped (and why) or the losses as
  Python floats.  Callbacks' ``on_step_end`` receives it.

The named loss terms depend on the model family: a flow-matching run logs
:data:`LOGGED_TERMS` (``flow``, ``mse``, ``duration``, ``prior``), a LeWM run the terms of
:data:`core.lewm.learner.TERMS`.  ``loss`` and ``grad_norm`` are always logged.

Time convention: t = 0 is Gaussian noise, t = 1 is the (normalised) mel spectrogram.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from torch import Tensor

# the per-step losses a flow-matching run averages over a logging window (metrics.jsonl columns)
LOGGED_TERMS = ("loss", "flow", "mse", "duration", "prior", "grad_norm")
FLOW_TERMS = LOGGED_TERMS[1:-1]


@dataclass(frozen=True)
class LossTerms:
    """Losses of one batch.

    ``loss``: scalar to back-propagate (flow: flow + duration_weight * duration + prior).
    ``terms``: the family's named, detached scalar terms in logging order; flow:
    ``flow`` (the objective's loss), ``mse`` (its unweighted mean squared error, equal to
    ``flow`` for unweighted objectives), ``duration`` and ``prior`` (the text side's terms).
    ``per_example`` (B,) and ``t`` (B,): each example's objective loss and its time, for
    the per-timestep loss curve (None for a family without a flow time).
    """

    loss: Tensor
    per_example: Optional[Tensor]
    t: Optional[Tensor]
    terms: dict[str, Tensor] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Tensor:
        terms = self.__dict__.get("terms", {})
        if name in terms:
            return terms[name]
        raise AttributeError(f"LossTerms has no term {name!r}")

    @classmethod
    def from_module_output(cls, out: Mapping[str, Tensor], names: tuple[str, ...] = FLOW_TERMS) -> "LossTerms":
        """The loss module returns a plain dict (what DistributedDataParallel's output
        handling traverses): ``loss``, ``per_example``, ``t`` and the terms ``names``
        (the flow family's by default); this is the one place its keys are read."""
        return cls(loss=out["loss"], per_example=out["per_example"], t=out["t"],
                   terms={name: out[name] for name in names})


@dataclass(frozen=True)
class StepResult:
    """One optimizer step.  ``skipped``: the guard refused it (non-finite loss or
    gradient, a loss spike, or another rank's bad step) and ``reason`` says why; the
    loss fields are then NaN and ``terms`` empty.  ``terms``: the family's named loss
    terms (see :class:`LossTerms`).  ``batch_size``: examples on this rank."""

    skipped: bool
    reason: str = ""
    loss: float = float("nan")
    grad_norm: float = float("nan")
    batch_size: int = 0
    terms: dict[str, float] = field(default_factory=dict)

    def __getattr__(self, name: str) -> float:
        terms = self.__dict__.get("terms", {})
        if name in terms:
            return terms[name]
        raise AttributeError(f"StepResult has no term {name!r}")

    def logged(self) -> dict[str, float]:
        """The values the loop averages into ``metrics.jsonl``: loss, the terms, grad_norm
        (for a flow run: :data:`LOGGED_TERMS`)."""
        return {"loss": self.loss, **self.terms, "grad_norm": self.grad_norm}
