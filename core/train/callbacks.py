"""Trainer hooks.  The console progress bar and the notebook dashboard are two users of
the same hooks; a callback may ask the trainer to stop (it then writes a checkpoint)."""

from __future__ import annotations

from typing import Any, Optional

from .records import StepResult


class Callback:
    """Override any of these; each receives the trainer.  ``on_step_end`` follows every
    optimizer step taken (a skipped one calls ``on_bad_step`` instead)."""

    def on_train_start(self, trainer) -> None: ...

    def on_step_end(self, trainer, step: int, result: StepResult) -> None: ...

    def on_log(self, trainer, row: dict[str, Any]) -> None: ...

    def on_validation(self, trainer, step: int, val_loss: float) -> None: ...

    def on_checkpoint(self, trainer, step: int, path) -> None: ...

    def on_sample(self, trainer, step: int, path) -> None: ...

    def on_bad_step(self, trainer, step: int, reason: str) -> None: ...

    def on_train_end(self, trainer) -> None: ...


class ProgressBar(Callback):
    """tqdm progress bar with loss and rate (only on rank 0)."""

    def __init__(self, disable: Optional[bool] = None):
        self.disable = disable
        self.bar = None

    def on_train_start(self, trainer) -> None:
        from tqdm.auto import tqdm

        if not trainer.is_main:
            return
        self.bar = tqdm(total=trainer.config.training.steps, initial=trainer.step, desc="train",
                        dynamic_ncols=True, disable=self.disable)

    def on_step_end(self, trainer, step: int, result: StepResult) -> None:
        if self.bar is None:
            return
        self.bar.update(step - self.bar.n)

    def on_log(self, trainer, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}",
                                 ex_s=f"{row.get('examples_per_s', 0.0):.1f}")

    def on_train_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
