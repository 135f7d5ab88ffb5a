"""The LeWM training step as one module, so the trainer (and DDP) sees a single ``forward``.

``LeWMLoss(model, step_fn)(tokens, token_mask, speakers, mel, mel_mask, generator)``
returns a plain dict for :class:`core.train.records.LossTerms`: ``loss`` (with the
graph), ``per_example`` and ``t`` as None (LeWM has no flow time, so no per-timestep
curve) and detached scalar terms, which the trainer logs to ``metrics.jsonl``:

``pred``      latent MSE of the predictor on the pass it learns from (teacher-forced,
              or the last scheduled-sampling pass); with the Gaussian head, the MSE of
              its mean
``nll``       with the Gaussian head, the Gaussian negative log-likelihood of the
              latents (nats per dimension, :func:`core.lewm.losses.gaussian_nll`); 0 with
              the point head
``copy``      the copy baseline MSE(z_t, z_{t-1}) on the same latents; ``pred / copy``
              below 1 means the predictor beats copying the previous frame
``kl`` / ``sigreg``  the regulariser (unweighted); ``kl_weight`` its annealed weight
``recon``     L1 of the decoded mel (normalised space); ``spectral`` the
              multi-resolution spectral loss; ``stop`` the stop BCE
``ss_rate``   the scheduled-sampling rate used this step
``pred_mel``  L1 between the mel decoded from the predictor's latents and the target
              (normalised space), through the decoder with its parameters held fixed, so
              only the predictor learns from it: it asks for latents that decode to the
              right mel rather than only near ones in latent MSE (logged always; trained
              with weight ``lewm.predicted_mel_weight``)
``align``     the guided-attention penalty of the predictor's cross-attention
              (:mod:`core.lewm.alignment`; 0 on the diagonal, near 1 far from it), on the
              pass it learns from, whether or not it is trained on; rows whose text was
              dropped (``lewm.text_drop_prob``, for guidance) are left out of it

``loss = prediction_weight P + kl_weight(step) kl (or sigreg_weight sigreg)
+ reconstruction_weight recon + spectral_weight spectral + stop_weight stop
+ guided_attention_weight align + predicted_mel_weight pred_mel``, where the
prediction term ``P`` depends on ``lewm.predictor_head``:

* ``point``: ``P = pred``, the MSE; its gradient reaches the predictor and, through the
  target latents, the audio encoder.
* ``gaussian``: ``P = nll(mean, logvar; sg(target)) + MSE(sg(mean), target)`` (``sg``:
  stop-gradient).  The predictor learns its mean and variance by maximum likelihood of
  the encoder's latents, taken as fixed data; as prediction targets, the latents get the
  same gradient as from the point head's MSE (as the predictor's fed inputs they get the
  NLL's).  Without the stop-gradient the encoder could lower the NLL without end by
  shrinking its latents (the log-variance following them down), which the bounded
  log-variance limits but does not remove; with it, what pulls the targets is what
  pulls them with the point head.  The two heads' ``pred`` (MSE of the mean) and the
  copy baseline stay comparable; the NLL is logged as ``nll``.  At unit variance the
  NLL is ``0.5 MSE + 0.5 log 2 pi``, so ``P`` weighs the mean's error about 1.5 times
  the point head's there, and ``1 / (2 var) + 1`` times in general.
``step_fn()`` gives the optimizer steps taken so far (the trainer's ``step``): the KL
annealing and the scheduled-sampling rate follow it, so a resumed run continues them.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..config import LeWMConfig
from . import losses as L
from .alignment import guided_attention_loss
from .exposure import add_feedback_noise, mix_fed_latents, scheduled_sampling_rate
from .model import LeWMModel

__all__ = ["LeWMLoss", "TERMS"]

TERMS = ("pred", "nll", "copy", "kl", "sigreg", "kl_weight", "recon", "spectral", "stop", "ss_rate", "align", "pred_mel")


class LeWMLoss(nn.Module):
    """See the module docstring.  ``total_steps``: training length for the schedules."""

    def __init__(self, model: LeWMModel, total_steps: int, step_fn: Callable[[], int] = lambda: 0):
        super().__init__()
        self.model = model
        self.total_steps = int(total_steps)
        self.step_fn = step_fn

    @property
    def lewm(self) -> LeWMConfig:
        return self.model.config

    def forward(self, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor], mel: Tensor, mel_mask: Tensor,
                generator: Optional[torch.Generator] = None) -> dict:
        cfg, model = self.lewm, self.model
        step = int(self.step_fn())
        mel_mask = mel_mask.bool()
        x = model.normalize_mel(mel) * mel_mask[:, None, :].to(mel.dtype)
        memory = model.encode_text(tokens, token_mask, speakers)
        post = model.encode_audio(x, mel_mask, generator)
        mask, target = post.mask, post.mu
        kept = None                                       # rows that keep their text (guidance training)
        if model.training and cfg.text_drop_prob > 0:
            kept = text_kept(memory.shape[0], cfg.text_drop_prob, generator, memory.device)
            memory = memory * kept[:, None, None].to(memory.dtype)
        teacher = add_feedback_noise(target[:, :-1], cfg.feedback_noise, generator)
        rate = scheduled_sampling_rate(step, self.total_steps, cfg) if model.training else 0.0
        guided = range(-cfg.guided_attention_layers, 0)
        if rate > 0:
            # ss_passes passes: the first teacher-forced, each later one fed the previous
            # pass's predictions at ``rate``; only the last one is trained (the others run
            # without a graph: their predictions are fed back detached anyway)
            with torch.no_grad():
                pred = model.teacher_forced(teacher, memory, token_mask).pred
                for _ in range(cfg.ss_passes - 2):
                    mixed, _ = mix_fed_latents(teacher, pred[:, :-1], rate, generator)
                    pred = model.teacher_forced(mixed, memory, token_mask).pred
            mixed, _ = mix_fed_latents(teacher, pred[:, :-1], rate, generator)
            out = model.teacher_forced(mixed, memory, token_mask, attention_layers=guided)
        else:
            out = model.teacher_forced(teacher, memory, token_mask, attention_layers=guided)
        # rows without text have nothing to align to: the penalty is taken on the others
        align_rows = mask if kept is None else mask & kept[:, None]
        align = guided_attention_loss(out.cross_attention, align_rows, token_mask.bool(), cfg.guided_attention_sigma,
                                      cfg.guided_attention_heads)
        pred = L.prediction_mse(out.pred, target, mask)
        zero = pred.new_zeros(())
        if out.logvar is None:
            nll, prediction = zero, pred
        else:
            nll = L.gaussian_nll(out.pred, out.logvar, target.detach(), mask)
            prediction = nll + L.prediction_mse(out.pred.detach(), target, mask)
        copy = L.copy_baseline_mse(target.detach(), mask)
        stop = L.stop_bce(out.stop_logits, mask, cfg.stop_pos_weight)
        decoded = model.decode(post.z, mask)
        mel_target, dmask = _padded_target(x, mel_mask, decoded.shape[-1])
        recon = L.mel_l1(decoded, mel_target, dmask)
        with torch.set_grad_enabled(torch.is_grad_enabled() and cfg.predicted_mel_weight > 0):
            fixed = {name: p.detach() for name, p in model.decoder.named_parameters()}
            pred_decoded = torch.func.functional_call(model.decoder, fixed, (out.pred, mask))
            pred_mel = L.mel_l1(pred_decoded, mel_target, dmask)
        spectral = L.multi_resolution_spectral_loss(decoded, mel_target, dmask, cfg.spectral_scales)
        kl = L.gaussian_kl(post.mu, post.logvar, mask) if post.logvar is not None else zero
        kl_w = L.kl_weight_at(step, self.total_steps, cfg.kl_weight, cfg.kl_anneal_fraction) if cfg.regularizer == "kl" else 0.0
        sig = (L.sigreg(target, mask, cfg.sigreg_projections, cfg.sigreg_knots, generator)
               if cfg.regularizer == "sigreg" else zero)
        loss = (cfg.prediction_weight * prediction + kl_w * kl + cfg.sigreg_weight * sig
                + cfg.reconstruction_weight * recon + cfg.spectral_weight * spectral + cfg.stop_weight * stop
                + cfg.guided_attention_weight * align + cfg.predicted_mel_weight * pred_mel)
        terms = {"pred": pred, "nll": nll, "copy": copy, "kl": kl, "sigreg": sig, "kl_weight": torch.tensor(kl_w),
                 "recon": recon, "spectral": spectral, "stop": stop, "ss_rate": torch.tensor(rate),
                 "align": align, "pred_mel": pred_mel}
        return {"loss": loss, "per_example": None, "t": None, **{k: v.detach() for k, v in terms.items()}}


def text_kept(batch: int, drop_prob: float, generator: Optional[torch.Generator], device: torch.device) -> Tensor:
    """(B,) bool: True for the rows that keep their text features this step, each row
    dropped with probability ``drop_prob`` (drawn from ``generator``, so a resumed run
    drops the same rows)."""
    dev = generator.device if generator is not None else device
    return (torch.rand(batch, generator=generator, device=dev) >= drop_prob).to(device)


def _padded_target(x: Tensor, mel_mask: Tensor, frames: int) -> tuple[Tensor, Tensor]:
    """The normalised target mel and its mask padded (or cut) to the decoder's ``frames``."""
    extra = frames - x.shape[-1]
    if extra > 0:
        x = torch.nn.functional.pad(x, (0, extra))
        mel_mask = torch.nn.functional.pad(mel_mask, (0, extra), value=False)
    return x[..., :frames], mel_mask[:, :frames]
