"""One training step of the vocoder: the generator, the discriminators, their losses and
optimisers, and the guard against non-finite or spiking steps.

Phases (``training.adversarial_start`` = A, ``training.disc_every`` = k):

* step < A: reconstruction only, ``mel_weight * mel L1 + stft_weight * MR-STFT``;
* step >= A: on every k-th step (``(step - A) % k == 0``) the discriminators take one
  hinge-loss update on (real, detached fake), then the generator loss adds
  ``adv_weight * adv + fm_weight * fm``; the other steps stay reconstruction-only.

Learning rates are a pure function of the step (:func:`core.train.setup.lr_factor`:
warm-up then decay), so no scheduler state needs saving; the discriminators follow
the same curve from ``disc_lr``.  Shapes: audio ``(B, N * hop)``, mel ``(B, n_mels, N + 1)``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from ..train.guard import is_spike, running_mean
from ..train.setup import lr_factor
from .config import VocoderConfig
from .data import SegmentBatch
from .discriminators import Discriminators
from .losses import MultiResolutionSTFTLoss, PhaseLoss
from .model import build_generator

__all__ = ["VocoderLearner", "BadStep"]


class BadStep(Exception):
    """A step whose loss or gradient norm was not finite or spiked; nothing was updated."""


class VocoderLearner:
    """Generator (+ discriminators), losses and optimisers on ``device``."""

    def __init__(self, config: VocoderConfig, device: torch.device | str = "cpu"):
        from vocos.loss import MelSpecReconstructionLoss

        self.config = config
        self.device = torch.device(device)
        a, t = config.audio, config.training
        self.generator = build_generator(a, config.generator).to(self.device)
        self.discriminators: Optional[Discriminators] = None
        if t.adversarial_start < t.steps and (config.discriminator.periods or config.discriminator.fft_sizes):
            self.discriminators = Discriminators(config.discriminator).to(self.device)
        self.mel_loss = MelSpecReconstructionLoss(a.sample_rate, a.n_fft, a.hop_length, a.n_mels).to(self.device)
        self.stft_loss = MultiResolutionSTFTLoss(config.loss.stft_resolutions).to(self.device)
        self.phase_loss = PhaseLoss(config.loss.phase_resolution, config.loss.phase_weighting).to(self.device) \
            if config.loss.phase_weight > 0 else None
        self.opt_g = torch.optim.AdamW(self.generator.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
        self.opt_d = None if self.discriminators is None else torch.optim.AdamW(
            self.discriminators.parameters(), lr=t.disc_lr, betas=t.betas, weight_decay=t.weight_decay)
        self.loss_avg: Optional[float] = None

    # ------------------------------------------------------------------ schedule
    def is_adversarial(self, step: int) -> bool:
        """Whether step ``step`` (0-based: the number of updates done before it) trains
        the discriminators and uses the adversarial terms."""
        t = self.config.training
        return self.discriminators is not None and step >= t.adversarial_start and \
            (step - t.adversarial_start) % t.disc_every == 0

    def _set_lr(self, step: int) -> float:
        t = self.config.training
        f = lr_factor(step, t.warmup_steps, t.steps, t.decay)
        for g in self.opt_g.param_groups:
            g["lr"] = t.lr * f
        if self.opt_d is not None:
            for g in self.opt_d.param_groups:
                g["lr"] = t.disc_lr * f
        return t.lr * f

    # ------------------------------------------------------------------ losses
    def generate(self, mel: Tensor, samples: int) -> Tensor:
        """``(B, n_mels, N + 1)`` -> ``(B, samples)`` (the generator's first samples).
        ``vocos.Vocos.decode`` runs under inference mode, so backbone and head are called."""
        return self.generator.head(self.generator.backbone(mel))[:, :samples]

    def reconstruction(self, y_hat: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``mel`` (L1 of log-mels), ``stft`` (MR-STFT), with ``phase_weight`` > 0 ``phase``
        (:class:`PhaseLoss`), and their weighted sum ``recon``."""
        lc = self.config.loss
        mel = self.mel_loss(y_hat, y)
        stft, parts = self.stft_loss(y_hat, y)
        out = {"mel": mel, "stft": stft, "sc": parts["sc"], "logmag": parts["mag"],
               "recon": lc.mel_weight * mel + lc.stft_weight * stft}
        if self.phase_loss is not None:
            phase, _ = self.phase_loss(y_hat, y)
            out["phase"] = phase
            out["recon"] = out["recon"] + lc.phase_weight * phase
        return out

    # ------------------------------------------------------------------ the step
    def train_step(self, batch: SegmentBatch, step: int) -> dict[str, Any]:
        """One update at global step ``step``; returns the losses (floats), or raises
        :class:`BadStep` (after zeroing gradients) when a loss or gradient norm is not
        finite or the reconstruction loss spikes over ``spike_factor`` x its running mean."""
        t, lc = self.config.training, self.config.loss
        lr = self._set_lr(step)
        batch = batch.to(self.device)
        y = batch.audio
        self.generator.train()
        y_hat = self.generate(batch.mel, y.shape[1])
        out: dict[str, Any] = {"lr": lr}
        adversarial = self.is_adversarial(step)
        if adversarial:
            self.discriminators.train()
            loss_d = self.discriminators.discriminator_loss(y, y_hat, lc.mrd_weight)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            norm_d = torch.nn.utils.clip_grad_norm_(self.discriminators.parameters(), t.grad_clip)
            self._check(float(loss_d.detach()), float(norm_d), "discriminator")
            self.opt_d.step()
            out.update(disc=float(loss_d.detach()), disc_grad_norm=float(norm_d))
        losses = self.reconstruction(y_hat, y)
        loss = losses["recon"]
        if adversarial:
            for p in self.discriminators.parameters():
                p.requires_grad_(False)
            try:
                adv = self.discriminators.generator_losses(y, y_hat, lc)
            finally:
                for p in self.discriminators.parameters():
                    p.requires_grad_(True)
            loss = loss + lc.adv_weight * adv["adv"] + lc.fm_weight * adv["fm"]
            out.update(adv=float(adv["adv"].detach()), fm=float(adv["fm"].detach()))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.generator.parameters(), t.grad_clip)
        recon = float(losses["recon"].detach())
        self._check(float(loss.detach()), float(norm), "generator", recon)
        self.opt_g.step()
        self.loss_avg = running_mean(self.loss_avg, recon)
        out.update(loss=float(loss.detach()), recon=recon, mel=float(losses["mel"].detach()),
                   stft=float(losses["stft"].detach()),
                   sc=float(losses["sc"]), logmag=float(losses["logmag"]), grad_norm=float(norm),
                   adversarial=adversarial)
        if "phase" in losses:
            out["phase"] = float(losses["phase"].detach())
        return out

    def _check(self, loss: float, norm: float, what: str, recon: Optional[float] = None) -> None:
        reason = ""
        if not math.isfinite(loss):
            reason = f"{what} loss is {loss}"
        elif not math.isfinite(norm):
            reason = f"{what} gradient norm is {norm}"
        elif recon is not None and is_spike(recon, self.loss_avg, None, self.config.training.spike_factor):
            # an L1 mel is never negative: the rule is recon > spike_factor x mean
            reason = (f"reconstruction loss spike {recon:.4g} > {self.config.training.spike_factor} x running "
                      f"mean {self.loss_avg:.4g}")
        if reason:
            self.opt_g.zero_grad(set_to_none=True)
            if self.opt_d is not None:
                self.opt_d.zero_grad(set_to_none=True)
            raise BadStep(reason)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(),
                "discriminators": None if self.discriminators is None else self.discriminators.state_dict(),
                "opt_g": self.opt_g.state_dict(),
                "opt_d": None if self.opt_d is None else self.opt_d.state_dict(),
                "loss_avg": self.loss_avg}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.discriminators is not None and state.get("discriminators") is not None:
            self.discriminators.load_state_dict(state["discriminators"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.loss_avg = state.get("loss_avg")
