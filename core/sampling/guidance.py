"""Classifier-free guidance (CFG) with the conditional and unconditional passes in ONE
batched forward.

Convention (F5-TTS's): with strength ``cfg >= 0``

    out = out_cond + cfg * (out_cond - out_uncond)

so ``cfg = 0`` is plain conditional sampling and costs a single forward of the batch
(no unconditional pass at all).  This equals the other common form
``out_uncond + w (out_cond - out_uncond)`` with ``w = 1 + cfg``.

``out`` is whatever the network returns, and guidance is applied there, before any
objective turns it into a flow velocity:

* CFM: the velocity v(x, t) itself.
* EDM: the backbone output F; the EDM flow velocity ``v = a(t) x + b(t) F`` is affine in
  F with coefficients shared by both passes, so guiding F is exactly guiding v.
* MeanFlow: the average velocity u(z, r, t).

With ``cfg > 0`` the guided net doubles the batch: rows ``[0, B)`` are conditional,
rows ``[B, 2B)`` use the model's learned null text condition (``drop=True``), and the
two halves are combined after one forward.  Time convention: t = 0 noise, t = 1 data;
tensors are ``(B, n_mels, T)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional

import torch
from torch import Tensor

from ..config import ConfigError

__all__ = ["ConditionalNet", "check_cfg", "combine_guidance", "guided_net", "model_net"]

ConditionalNet = Callable[[Tensor, Tensor, Optional[Tensor], Optional[Tensor]], Tensor]
"""``net(x, t, r, drop) -> out``: x (B, C, T), t (B,), r (B,) or None, drop (B,) bool or
None (True rows use the null text condition; None: the conditioning's own setting)."""

Net = Callable[..., Tensor]
"""``net(x, t, r=None) -> out`` as the objectives call it (see :mod:`core.flow.base`)."""


def check_cfg(cfg: float) -> float:
    """Validate a guidance strength: a finite number ``>= 0``; returns it as a float."""
    if isinstance(cfg, bool) or not isinstance(cfg, numbers.Real) or not math.isfinite(cfg):
        raise ConfigError(f"cfg must be a finite number >= 0 (0 = no guidance), got {cfg!r}")
    if cfg < 0:
        raise ConfigError(f"cfg must be >= 0 (0 = no guidance), got {cfg}")
    return float(cfg)


def combine_guidance(out_cond: Tensor, out_uncond: Tensor, cfg: float) -> Tensor:
    """``out_cond + cfg * (out_cond - out_uncond)``, shapes (B, C, T)."""
    return out_cond + cfg * (out_cond - out_uncond)


def _double(t: Optional[Tensor]) -> Optional[Tensor]:
    """A time for the doubled batch: None and 0-d stay as they are, (B,) is repeated."""
    if t is None or not isinstance(t, Tensor) or t.dim() == 0:
        return t
    return torch.cat([t, t])


def guided_net(net: ConditionalNet, cfg: float, batch: int, device: torch.device | str) -> Net:
    """``net(x, t, r=None)`` with classifier-free guidance of strength ``cfg``.

    Args:
        net: the conditional network ``net(x, t, r, drop)``; with ``cfg > 0`` it is called
            on a batch of ``2 * batch`` rows, so its conditioning must already be repeated
            twice (e.g. :meth:`core.models.tts.Conditioning.repeat`).
        cfg: guidance strength ``>= 0``; 0 gives ``net(x, t, r, None)``, one forward.
        batch: B, the batch size of the states the solver passes in.
        device: where the drop mask lives (made once, not per call).

    Returns:
        ``guided(x, t, r=None) -> out`` with x (B, C, T); the output is float32 when x is
        (a network run under bf16/fp16 autocast is combined in float32).
    """
    cfg = check_cfg(cfg)
    if cfg == 0.0:
        def plain(x: Tensor, t: Tensor, r: Optional[Tensor] = None) -> Tensor:
            return net(x, t, r, None).to(x.dtype)

        return plain

    drop = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)]).to(device)

    def guided(x: Tensor, t: Tensor, r: Optional[Tensor] = None) -> Tensor:
        if x.shape[0] != batch:
            raise ValueError(f"guided net was built for batch {batch}, got x of shape {tuple(x.shape)}")
        out = net(torch.cat([x, x]), _double(t), _double(r), drop).to(x.dtype)
        out_cond, out_uncond = out[:batch], out[batch:]
        return combine_guidance(out_cond, out_uncond, cfg)

    return guided


def model_net(model, cond, cfg: float, attention: Optional[str] = None) -> Net:
    """Guided ``net(x, t, r=None)`` of a :class:`core.models.TTSModel` under conditioning
    ``cond`` (a :class:`~core.models.tts.Conditioning` of batch B), ready for
    ``objective.velocity(net)`` / ``objective.average_velocity(net)``.

    With ``cfg > 0`` the conditioning is repeated once here (``cond.repeat(2)``) and every
    call is one forward of ``2B`` rows.
    """
    cfg = check_cfg(cfg)
    batch = cond.cond.shape[0]
    both = cond.repeat(2) if cfg > 0 else cond

    def net(x: Tensor, t: Tensor, r: Optional[Tensor], drop: Optional[Tensor]) -> Tensor:
        return model.predict(x, t, both, r=r, drop=drop, attention=attention)

    return guided_net(net, cfg, batch, cond.cond.device)
