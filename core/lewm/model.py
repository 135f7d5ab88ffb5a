"""The LeWM model: text encoder, audio encoder, JEPA predictor, stop head, mel decoder.

Conventions: mels (B, n_mels, T) log-mel as in :mod:`core.audio`, normalised inside as
``x = (mel - mel_mean) / mel_std`` (scalar buffers, set by the trainer from data
statistics); tokens (B, L) long, 0 = padding; masks bool, True = real, right-padded.
Latent frames (B, T', latent_dim) with ``T' = ceil(T / downsample_factor)``.

Teacher forcing (:meth:`LeWMModel.teacher_forced`): the predictor reads the start vector
then latents ``0 .. T'-2`` (the fed latents) and predicts latents ``0 .. T'-1`` and a stop
logit per frame.  The prediction target and the fed latents are the encoder means
``mu`` (z = mu for SIGReg; with KL the decoder learns from samples z).  Generation is
:func:`core.lewm.generate.generate`; the training losses :class:`core.lewm.learner.LeWMLoss`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..config import LeWMConfig, ModelConfig
from .audio_encoder import AudioEncoder, Posterior
from .decoder import MelDecoder
from .predictor import JEPAPredictor, KVCache, PredictorOutput
from ..models.mel_scale import MelScaled
from .text_encoder import LeWMTextEncoder

__all__ = ["LeWMModel"]


class LeWMModel(MelScaled):
    """See the module docstring.  ``model`` supplies ``vocab_size`` and ``n_speakers``."""

    family = "lewm"

    def __init__(self, model: ModelConfig, lewm: LeWMConfig, n_mels: int = 100) -> None:
        super().__init__()
        model.validate()
        lewm.validate()
        self.model_config = model
        self.config = lewm
        self.n_mels = n_mels
        self.factor = lewm.downsample_factor
        self.text_encoder = LeWMTextEncoder(lewm, model.vocab_size, model.n_speakers)
        self.audio_encoder = AudioEncoder(lewm, n_mels)
        self.predictor = JEPAPredictor(lewm)
        self.decoder = MelDecoder(lewm, n_mels)

    # ------------------------------------------------------------------ pieces
    def encode_text(self, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor] = None) -> Tensor:
        """(B, L) tokens -> (B, L, text_dim) features (see :class:`LeWMTextEncoder`)."""
        return self.text_encoder(tokens, token_mask, speakers)

    def encode_audio(self, x: Tensor, mel_mask: Tensor, generator: Optional[torch.Generator] = None) -> Posterior:
        """Normalised mel (B, n_mels, T) -> :class:`Posterior` over (B, T', latent_dim)."""
        return self.audio_encoder(x, mel_mask, generator)

    def teacher_forced(self, fed: Tensor, memory: Tensor, memory_mask: Tensor,
                       cache: Optional[KVCache] = None, attention_layers: Sequence[int] = ()) -> PredictorOutput:
        """fed (B, T'-1, latent_dim) latents 0 .. T'-2 -> predictions of frames 0 .. T'-1;
        with ``attention_layers``, those layers' cross-attention weights too."""
        return self.predictor(self.predictor.inputs(fed, with_start=True), memory, memory_mask, cache,
                              attention_layers)

    def decode(self, z: Tensor, mask: Tensor) -> Tensor:
        """Latents (B, T', latent_dim) -> normalised mel (B, n_mels, f T')."""
        return self.decoder(z, mask)
