"""The TTS model: text encoder, prior, alignment, duration predictor and DiT velocity net.

Time convention: t = 0 is Gaussian noise, t = 1 is the (normalised) mel spectrogram.
Mel tensors are (B, n_mels, T); token tensors (B, L); masks bool, True = real,
right-padded.  The network works on normalised mel ``x = (mel - mel_mean) / mel_std``
(scalar buffers saved in the state dict; the trainer sets them from data statistics).

Training (``conditioning``):
    encode tokens -> hidden (B, L, D), prior mean ``mu`` (B, L, n_mels), ``log d`` (B, L);
    monotonic alignment search maximises ``sum log N(x1[:, t]; mu_l, I)`` (Matcha-TTS);
    losses: ``prior`` = Gaussian NLL of x1 under the aligned mu with unit variance,
    averaged over real frames and mel channels, *without* the constant 0.5 log(2 pi)
    (i.e. 0.5 * masked MSE); ``duration`` = masked MSE of log d against log of the
    found durations;
    the aligned text features ``cond`` (B, T, D) condition the velocity net; in training
    mode each row is dropped (null text condition) with probability ``cond_drop_prob``.
Inference (``inference_conditioning``): durations predicted (or given), expanded the
same way, nothing dropped.  Then ``predict(x, t, cond, ...)`` is the network call (its raw
output; the objective turns it into a velocity).

Gradients: the text encoder learns from the prior loss and, through ``cond``, from the
flow loss the caller computes; the duration predictor sees detached text features.
At initialisation the velocity is exactly 0 (adaLN-Zero blocks, zero output layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .alignment import monotonic_alignment_search
from .dit import VelocityDiT
from .duration import DurationPredictor, duration_loss, durations_from_log
from .layers import check_attention
from .mel_scale import MelScaled
from .text_encoder import TextEncoder

__all__ = ["TTSModel", "Encoded", "Alignment", "Conditioning", "aligned_conditioning", "gaussian_log_likelihood"]


@dataclass
class Encoded:
    """Text side of the model: hidden (B, L, text_dim), mu (B, L, n_mels) prior means in
    normalised-mel space, log_durations (B, L), speaker_emb (B, speaker_dim) (zeros for a
    single-speaker model), token_mask (B, L) bool."""

    hidden: Tensor
    mu: Tensor
    log_durations: Tensor
    speaker_emb: Tensor
    token_mask: Tensor


@dataclass
class Alignment:
    """attn (B, L, T) 0/1: frame t belongs to token l; durations (B, L) long frames per token."""

    attn: Tensor
    durations: Tensor


@dataclass
class Conditioning:
    """Everything the velocity net needs besides (x, t, r).

    cond (B, T, text_dim) aligned text features; mel_mask (B, T) bool; drop (B,) bool rows
    that use the null text condition; speaker_emb (B, S); attn (B, L, T) and durations
    (B, L) of the alignment used; losses: scalar auxiliary losses ("duration", "prior")
    in training, empty at inference.
    """

    cond: Tensor
    mel_mask: Tensor
    drop: Tensor
    speaker_emb: Tensor
    attn: Tensor
    durations: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)

    def repeat(self, n: int) -> "Conditioning":
        """The batch repeated ``n`` times along dim 0 (e.g. n=2 for one batched CFG pass);
        losses are not carried."""
        rep = lambda x: x.repeat(n, *([1] * (x.dim() - 1)))  # noqa: E731
        return Conditioning(cond=rep(self.cond), mel_mask=rep(self.mel_mask), drop=rep(self.drop),
                            speaker_emb=rep(self.speaker_emb), attn=rep(self.attn),
                            durations=rep(self.durations))


def gaussian_log_likelihood(mu: Tensor, x: Tensor) -> Tensor:
    """log N(x[:, :, t]; mu[:, l], I) up to the constant -n_mels/2 log(2 pi).

    mu (B, L, C), x (B, C, T) -> (B, L, T), computed in float32 with autocast off as
    ``-0.5 |x|^2 + mu . x - 0.5 |mu|^2``.
    """
    with torch.autocast(device_type=mu.device.type, enabled=False):
        mu = mu.float()
        x = x.float()
        return (-0.5 * (x * x).sum(1, keepdim=True) + mu @ x - 0.5 * (mu * mu).sum(-1, keepdim=True))


def aligned_conditioning(hidden: Tensor, log_durations: Tensor, speaker_emb: Tensor, token_mask: Tensor,
                         duration_scale: float = 1.0, durations: Tensor | None = None) -> Conditioning:
    """Sampling conditioning from the text side's outputs: hidden (B, L, D), log_durations
    (B, L), speaker_emb (B, S), token_mask (B, L) bool.  Durations (B, L) are
    ``clamp(round(exp(log_d) * duration_scale), min=1)`` on real tokens unless given; the
    hidden features are expanded to frames by them; nothing dropped.  Shared by
    :meth:`TTSModel.inference_conditioning` and the ONNX backend
    (:mod:`core.sampling.onnx_backend`), so both align text to frames the same way."""
    token_mask = token_mask.bool()
    if durations is None:
        durations = durations_from_log(log_durations, token_mask, duration_scale)
    else:
        if durations.shape != token_mask.shape:
            raise ValueError(f"durations must have the tokens' shape {tuple(token_mask.shape)}, "
                             f"got {tuple(durations.shape)}")
        durations = durations.long() * token_mask.long()
    attn, mel_mask = TTSModel.attn_from_durations(durations)
    drop = torch.zeros(token_mask.shape[0], dtype=torch.bool, device=token_mask.device)
    return Conditioning(cond=TTSModel.expand(hidden, attn), mel_mask=mel_mask, drop=drop,
                        speaker_emb=speaker_emb, attn=attn, durations=durations)


class TTSModel(MelScaled):
    """Flow-matching TTS model; see the module docstring for the pieces and conventions."""

    def __init__(self, model: ModelConfig, n_mels: int = 100, meanflow: bool = False) -> None:
        super().__init__()
        model.validate()
        self.config = model
        self.n_mels = n_mels
        self.meanflow = meanflow
        self.speaker_embedding = nn.Embedding(model.n_speakers, model.speaker_dim) if model.n_speakers > 1 else None
        self.text_encoder = TextEncoder(model)
        self.prior = nn.Linear(model.text_dim, n_mels)
        self.duration_predictor = DurationPredictor(model)
        self.velocity_net = VelocityDiT(model, n_mels, meanflow)

    # ------------------------------------------------------------------ text side
    def _speaker(self, speakers: Tensor | None, batch: int, device: torch.device) -> Tensor:
        if self.speaker_embedding is None:
            return torch.zeros(batch, self.config.speaker_dim, device=device)
        if speakers is None:
            raise ValueError(f"this model has {self.config.n_speakers} speakers: pass speakers (B,) ids")
        if speakers.shape != (batch,):
            raise ValueError(f"speakers must have shape ({batch},), got {tuple(speakers.shape)}")
        if bool(((speakers < 0) | (speakers >= self.config.n_speakers)).any()):
            raise ValueError(f"speaker ids must be in [0, {self.config.n_speakers}), got {speakers.tolist()}")
        return self.speaker_embedding(speakers.long())

    def encode(self, tokens: Tensor, token_mask: Tensor, speakers: Tensor | None = None,
               attention: str | None = None) -> Encoded:
        """tokens (B, L) long (0 = padding), token_mask (B, L) bool, speakers (B,) long
        (None allowed for a single-speaker model) -> :class:`Encoded`."""
        if tokens.dim() != 2 or token_mask.shape != tokens.shape:
            raise ValueError(f"tokens and token_mask must both be (batch, tokens), got "
                             f"{tuple(tokens.shape)} and {tuple(token_mask.shape)}")
        attention = check_attention(attention or self.config.attention)
        if bool(((tokens < 0) | (tokens >= self.config.vocab_size)).any()):
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size}) (model.vocab_size); "
                             "the tokenizer and the model config disagree")
        token_mask = token_mask.bool()
        spk = self._speaker(speakers, tokens.shape[0], tokens.device)
        use_spk = spk if self.speaker_embedding is not None else None
        hidden = self.text_encoder(tokens, token_mask, use_spk, attention)
        mu = self.prior(hidden) * token_mask[..., None].to(hidden.dtype)
        log_d = self.duration_predictor(hidden, token_mask, use_spk)
        return Encoded(hidden=hidden, mu=mu, log_durations=log_d, speaker_emb=spk, token_mask=token_mask)

    @torch.no_grad()
    def align(self, encoded: Encoded, x1: Tensor, mel_mask: Tensor) -> Alignment:
        """Monotonic alignment of normalised mel x1 (B, n_mels, T) to the tokens, maximising
        the total log-likelihood under N(mu_token, I).  Needs T_b >= L_b for every item."""
        mel_mask = mel_mask.bool()
        log_p = gaussian_log_likelihood(encoded.mu.detach(), x1.detach())
        attn = monotonic_alignment_search(log_p, encoded.token_mask.sum(1), mel_mask.sum(1))
        return Alignment(attn=attn, durations=attn.sum(-1).long())

    @staticmethod
    def expand(hidden: Tensor, attn: Tensor) -> Tensor:
        """Token features (B, L, D) -> frame features (B, T, D) = attn^T @ hidden."""
        return attn.transpose(1, 2).to(hidden.dtype) @ hidden

    @staticmethod
    def attn_from_durations(durations: Tensor, max_frames: int | None = None) -> tuple[Tensor, Tensor]:
        """Hard alignment from frames per token.

        durations (B, L) long (0 on padding) -> (attn (B, L, T) float 0/1, mel_mask (B, T)
        bool), token l owning frames ``[sum d_<l, sum d_<=l)``.  ``T`` is ``max_frames`` or
        the longest total (one host sync); frames beyond ``max_frames`` are cut off.
        """
        d = durations.long().clamp(min=0)
        ends = d.cumsum(dim=1)                                   # (B, L)
        starts = ends - d
        total = ends[:, -1]                                      # (B,)
        n = int(total.max()) if max_frames is None else int(max_frames)
        frames = torch.arange(n, device=d.device)
        attn = (frames[None, None, :] >= starts[..., None]) & (frames[None, None, :] < ends[..., None])
        mel_mask = frames[None, :] < total[:, None]
        return attn.float(), mel_mask

    # ------------------------------------------------------------------ conditioning
    def conditioning(self, tokens: Tensor, token_mask: Tensor, speakers: Tensor | None, x1: Tensor,
                     mel_mask: Tensor, generator: torch.Generator | None = None,
                     durations: Tensor | None = None) -> Conditioning:
        """Training conditioning from tokens and the normalised target mel x1 (B, n_mels, T).

        Returns cond (B, T, text_dim), losses {"duration", "prior"}, and ``drop`` sampled
        with ``cond_drop_prob`` when the module is in training mode (all False in eval
        mode); pass ``generator`` for a reproducible draw.  ``durations`` (B, L) long,
        frames per token summing to each row's frame count, replace the alignment search
        (external durations, :mod:`core.durations`).
        """
        if x1.dim() != 3 or x1.shape[1] != self.n_mels or mel_mask.shape != (x1.shape[0], x1.shape[2]):
            raise ValueError(f"x1 must be (batch, {self.n_mels}, frames) and mel_mask (batch, frames), got "
                             f"{tuple(x1.shape)} and {tuple(mel_mask.shape)}")
        mel_mask = mel_mask.bool()
        enc = self.encode(tokens, token_mask, speakers)
        if durations is None:
            ali = self.align(enc, x1, mel_mask)
        else:
            if durations.shape != token_mask.shape:
                raise ValueError(f"durations must have the tokens' shape {tuple(token_mask.shape)}, got "
                                 f"{tuple(durations.shape)}")
            durations = durations.long() * token_mask.long()
            if not torch.equal(durations.sum(1), mel_mask.sum(1)):
                raise ValueError(f"durations sum to {durations.sum(1).tolist()} frames, the mels have "
                                 f"{mel_mask.sum(1).tolist()}")
            attn, _ = self.attn_from_durations(durations, max_frames=x1.shape[2])
            ali = Alignment(attn=attn, durations=durations)
        frame_mask = mel_mask[:, None, :].float()
        mu_frames = self.expand(enc.mu, ali.attn).transpose(1, 2).float()         # (B, C, T)
        prior = 0.5 * (((x1.float() - mu_frames) ** 2) * frame_mask).sum() / (frame_mask.sum() * self.n_mels)
        dur = duration_loss(enc.log_durations, ali.durations, enc.token_mask)
        b = tokens.shape[0]
        if self.training and self.config.cond_drop_prob > 0:
            gen_device = generator.device if generator is not None else x1.device
            u = torch.rand(b, generator=generator, device=gen_device).to(x1.device)
            drop = u < self.config.cond_drop_prob
        else:
            drop = torch.zeros(b, dtype=torch.bool, device=x1.device)
        return Conditioning(cond=self.expand(enc.hidden, ali.attn), mel_mask=mel_mask, drop=drop,
                            speaker_emb=enc.speaker_emb, attn=ali.attn, durations=ali.durations,
                            losses={"duration": dur, "prior": prior})

    @torch.no_grad()
    def inference_conditioning(self, tokens: Tensor, token_mask: Tensor, speakers: Tensor | None = None,
                               duration_scale: float = 1.0, durations: Tensor | None = None) -> Conditioning:
        """Conditioning for sampling: durations (B, L) predicted with
        ``clamp(round(exp(log_d) * duration_scale), min=1)`` unless given; nothing dropped."""
        enc = self.encode(tokens, token_mask, speakers)
        return aligned_conditioning(enc.hidden, enc.log_durations, enc.speaker_emb, enc.token_mask,
                                    duration_scale, durations)

    # ------------------------------------------------------------------ the network
    def predict(self, x: Tensor, t: Tensor, cond: Conditioning, r: Tensor | None = None,
                drop: Tensor | None = None, attention: str | None = None) -> Tensor:
        """The network's raw output for x (B, n_mels, T) at time t (B,) in [0, 1]
        (t = 0 noise, t = 1 data).  What it means is the objective's: a velocity v (cfm),
        EDM's preconditioned output F (edm), an average velocity u (meanflow).  Turn it
        into a velocity with the objective's ``velocity(net)`` (``average_velocity`` for
        MeanFlow's jumps); never use it as one directly.

        Plain model: passing ``r`` raises.  MeanFlow model: x is the state at time r and
        the output is the average velocity u(x, r, t) over [r, t] (``r=None`` means r = t,
        the instantaneous velocity).  ``drop`` (B,) bool overrides
        ``cond.drop`` (True rows use the null text condition, for CFG); ``attention``
        ("sdpa" or "math") overrides the config — use "math" inside ``torch.func.jvp``.
        Returns (B, n_mels, T), padded frames zero.  No host syncs.
        """
        attention = check_attention(attention or self.config.attention)
        # a drop tensor is always passed (all False when nothing is dropped), so the null
        # condition is in every graph: DDP never sees it as an unused parameter
        spk = cond.speaker_emb if self.speaker_embedding is not None else None
        return self.velocity_net(x, t, cond.cond, cond.mel_mask, spk, r=r,
                                 drop=cond.drop if drop is None else drop, attention=attention)
