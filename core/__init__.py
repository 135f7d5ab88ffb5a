"""Flow-matching text-to-speech: front ends, models, objectives, trainer, samplers,
vocoders and evaluation.

Time convention: t = 0 is Gaussian noise, t = 1 is the mel spectrogram.
Public names are listed in ``shared/DESIGN.md``; ``Synthesizer`` is imported lazily so
that ``import core`` stays light.
"""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import Config, ConfigError
from .version import __version__

__all__ = ["Checkpoint", "CheckpointError", "Config", "ConfigError", "load_checkpoint", "save_checkpoint",
           "Synthesizer", "Synthesis", "__version__"]


def __getattr__(name):
    if name in ("Synthesizer", "Synthesis"):
        from .sampling import synthesizer

        return getattr(synthesizer, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
