"""LeWM text encoder: byte (or char) embeddings, an optional speaker embedding and a
pre-norm transformer.

``LeWMTextEncoder(lewm, vocab_size, n_speakers)(tokens (B, L) long, mask (B, L) bool,
speakers (B,) long | None) -> (B, L, text_dim)``, padded positions zero.  Token id 0 is
padding; rows are right-padded, so a real token's output does not depend on the padding
after it (keys are masked, positions are rotary).  With ``n_speakers > 1`` a learned
speaker vector (text_dim) is added to every token embedding.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..config import LeWMConfig
from ..models.layers import rotary_tables, zero_padding
from ..models.text_encoder import TransformerLayer

__all__ = ["LeWMTextEncoder"]


class LeWMTextEncoder(nn.Module):
    """Tokens -> text features (B, L, text_dim); see the module docstring."""

    def __init__(self, lewm: LeWMConfig, vocab_size: int, n_speakers: int = 1) -> None:
        super().__init__()
        d = lewm.text_dim
        self.vocab_size = vocab_size
        self.n_speakers = n_speakers
        self.head_dim = d // lewm.text_heads
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.speaker = nn.Embedding(n_speakers, d) if n_speakers > 1 else None
        self.layers = nn.ModuleList(TransformerLayer(d, lewm.text_heads, lewm.ff_mult, lewm.dropout)
                                    for _ in range(lewm.text_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: Tensor, mask: Tensor, speakers: Tensor | None = None) -> Tensor:
        if tokens.dim() != 2 or mask.shape != tokens.shape:
            raise ValueError(f"tokens and token_mask must both be (batch, tokens), got {tuple(tokens.shape)} "
                             f"and {tuple(mask.shape)}")
        if bool(((tokens < 0) | (tokens >= self.vocab_size)).any()):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}) (model.vocab_size); the tokenizer "
                             "and the model config disagree")
        mask = mask.bool()
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every row needs at least one real token (token_mask is all False in a row)")
        x = self.embed(tokens)
        if self.speaker is not None:
            if speakers is None or speakers.shape != (tokens.shape[0],):
                raise ValueError(f"this model has {self.n_speakers} speakers: pass speakers as ({tokens.shape[0]},) ids")
            if bool(((speakers < 0) | (speakers >= self.n_speakers)).any()):
                raise ValueError(f"speaker ids must be in [0, {self.n_speakers}), got {speakers.tolist()}")
            x = x + self.speaker(speakers.long())[:, None, :]
        x = zero_padding(x, mask)
        rope = rotary_tables(x.shape[1], self.head_dim, x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, mask, "sdpa", rope)
        return zero_padding(self.norm(x), mask)
