"""The model families and the one place that builds a model from a config.

``flow``: :class:`core.models.TTSModel` (flow matching; its objective in
``config.objective``).  ``lewm``: :class:`core.lewm.LeWMModel` (JEPA; ``config.lewm``).
A checkpoint records its family in ``config.model.family``; the trainer, the checkpoint
shape check and the Synthesizer all build through :func:`build_model`.
"""

from __future__ import annotations

from torch import nn

from .config import FAMILIES, Config, choice_error

__all__ = ["build_model", "FAMILIES"]


def build_model(config: Config) -> nn.Module:
    """The (untrained) model ``config`` describes."""
    family = config.model.family
    if family == "lewm":
        from .lewm.model import LeWMModel

        return LeWMModel(config.model, config.lewm, n_mels=config.audio.n_mels)
    if family == "flow":
        from .models import TTSModel

        return TTSModel(config.model, n_mels=config.audio.n_mels, meanflow=config.objective.name == "meanflow")
    raise choice_error("model.family", family, FAMILIES)
