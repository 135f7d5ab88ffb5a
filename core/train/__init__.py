"""Training: the loop, EMA, metrics log, callbacks, checkpoints and distributed helpers.

Inference never imports this package.
"""

from .callbacks import Callback, ProgressBar
from .ema import EMA
from .metrics import MetricsLog, TimeBins
from .loop import Trainer, TrainingError

__all__ = ["Callback", "ProgressBar", "EMA", "MetricsLog", "TimeBins", "Trainer", "TrainingError"]
