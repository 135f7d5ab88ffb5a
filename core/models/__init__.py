"""Models: text encoder (ConvNeXt + transformer), DiT velocity network (adaLN on t, or
(r, t) for MeanFlow), duration predictor, monotonic alignment search, and the TTS model
that ties them.  Time convention: t = 0 is Gaussian noise, t = 1 is data (mel)."""

from .alignment import AlignmentError, monotonic_alignment_search
from .dit import VelocityDiT
from .duration import DurationPredictor, duration_loss, durations_from_log
from .layers import ATTENTION_MODES
from .text_encoder import TextEncoder
from .tts import Alignment, Conditioning, Encoded, TTSModel

__all__ = ["ATTENTION_MODES", "Alignment", "AlignmentError", "Conditioning", "DurationPredictor", "Encoded",
           "TTSModel", "TextEncoder", "VelocityDiT", "duration_loss", "durations_from_log",
           "monotonic_alignment_search"]
