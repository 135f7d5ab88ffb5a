"""Saving a training run and resuming it: the one module that owns both.

A run folder holds ``config.json``, ``metrics.jsonl`` and ``checkpoints/step_XXXXXXXX.pt``.
Each training checkpoint carries the sampling (EMA) weights, the raw weights and a
:class:`TrainState` (optimizer, scheduler, grad scaler, EMA update count, every RNG, the
data order, the bad-step guard), so a resumed run on one process continues
bit-identically.  Under DDP each rank re-seeds its RNGs from (seed, rank, step): a
resumed multi-process run continues correctly but not bit-identically.

Resuming takes the newest checkpoint that loads (a torn or corrupt newest file falls
back to the one before it) and the run's *own* config: the config given on the command
line may differ only in ``training.steps`` (and in settings the run never read, such as
another objective's keys), else :func:`resumed_config` refuses with the first
difference.  The vocoder trainer (``core.vocoder_train``) uses the same folder helpers.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import torch

from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..checkpoint_checks import check_fits_model
from ..config import Config, ConfigError, differences

log = logging.getLogger("core.train")

CHECKPOINT_GLOB = "step_*.pt"
T = TypeVar("T")


# ---------------------------------------------------------------------- run folders
def checkpoint_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def newest_readable(folder: Path, pattern: str, load: Callable[[Path], Optional[T]],
                    errors: tuple[type[BaseException], ...]) -> Optional[T]:
    """``load`` of the newest file in ``folder`` matching ``pattern`` that loads without
    one of ``errors`` (logged and skipped) and is not ``None``; ``None`` if none does."""
    for path in sorted(Path(folder).glob(pattern), reverse=True):
        try:
            value = load(path)
        except errors as exc:
            log.warning("skipping unreadable checkpoint: %s", exc)
            continue
        if value is not None:
            return value
    return None


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the ``keep`` newest files matching ``pattern`` (``keep`` <= 0 keeps all)."""
    if keep <= 0:
        return
    for path in sorted(Path(folder).glob(pattern))[:-keep]:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------- the state
@dataclass
class TrainState:
    """Everything beyond the weights that a bit-identical resume needs.

    Stored in a checkpoint's ``train_state`` field as plain dicts, lists, numbers and
    tensors (:meth:`to_dict`), so ``torch.load(weights_only=True)`` reads it back.
    """

    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    ema_updates: int
    torch_rng: torch.Tensor
    generator_rng: torch.Tensor        # the objective's noise/time generator
    python_rng: tuple
    cuda_rng: list[torch.Tensor]       # empty on CPU
    epoch: int                         # data order: epoch and batches consumed in it
    position: int
    loss_avg: Optional[float]          # the spike guard's running mean
    bad_total: int
    loss_abs_avg: Optional[float] = None   # ... and of the loss's magnitude (absent before 2026-12-04)

    def to_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler,
                "ema": {"updates": self.ema_updates},
                "rng": {"torch": self.torch_rng, "generator": self.generator_rng, "python": self.python_rng,
                        "cuda": self.cuda_rng},
                "data": {"epoch": self.epoch, "position": self.position},
                "guard": {"loss_avg": self.loss_avg, "bad_total": self.bad_total, "loss_abs_avg": self.loss_abs_avg}}

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: Path | str = "checkpoint") -> "TrainState":
        """Read :meth:`to_dict`'s layout; a missing or mistyped entry is a CheckpointError
        naming it."""
        def get(*keys: str, kind: type | tuple[type, ...] = object):
            value: Any = state
            for k in keys:
                if not isinstance(value, dict) or k not in value:
                    raise CheckpointError(f"{path}: train_state has no {'.'.join(keys)!r}; it cannot be resumed "
                                          "(train into a new --out, or --init from it)")
                value = value[k]
            if not isinstance(value, kind):
                raise CheckpointError(f"{path}: train_state.{'.'.join(keys)} has the wrong type "
                                      f"({type(value).__name__})")
            return value

        python = get("rng", "python", kind=(list, tuple))
        loss_avg = get("guard", "loss_avg", kind=(float, int, type(None)))
        guard = state.get("guard")
        loss_abs_avg = (get("guard", "loss_abs_avg", kind=(float, int, type(None)))
                        if isinstance(guard, dict) and "loss_abs_avg" in guard else None)
        if loss_abs_avg is None and loss_avg is not None:   # saved before it was kept: |mean| is its value
            loss_abs_avg = abs(loss_avg)                     # for a loss that never went negative
        return cls(optimizer=get("optimizer", kind=dict), scheduler=get("scheduler", kind=dict),
                   scaler=get("scaler", kind=dict), ema_updates=int(get("ema", "updates", kind=int)),
                   torch_rng=get("rng", "torch", kind=torch.Tensor),
                   generator_rng=get("rng", "generator", kind=torch.Tensor),
                   python_rng=(python[0], tuple(python[1]), python[2]), cuda_rng=list(get("rng", "cuda", kind=list)),
                   epoch=int(get("data", "epoch", kind=int)), position=int(get("data", "position", kind=int)),
                   loss_avg=None if loss_avg is None else float(loss_avg),
                   bad_total=int(get("guard", "bad_total", kind=int)),
                   loss_abs_avg=None if loss_abs_avg is None else float(loss_abs_avg))


# ---------------------------------------------------------------------- resume checks
def resumed_config(saved: Config, given: Config, out: Path, saved_step: int) -> Config:
    """The config a resumed run continues with: the run's own (``saved``), with
    ``training.steps`` from ``given`` (never below the step reached).  Any other
    difference raises a ConfigError naming the first one; the vocabulary and speaker
    count (resolved from the data when a run starts), ``training.init`` and
    ``training.init_step`` (read only when a run starts) and settings the run's objective never reads are not compared."""
    obj = saved.objective
    unread = [f"objective.{f.name}" for f in dataclasses.fields(obj)
              if f.name not in obj.KEYS_OF[obj.name] + ("name", "duration_weight")]
    changed = differences(saved, given, ignore=("training.steps", "training.init", "training.init_step", "model.vocab_size",
                                                      "model.n_speakers", *unread))
    if changed:
        key, old, new = changed[0]
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise ConfigError(f"--resume: {out} was trained with {key}={old!r} but the config given says "
                          f"{new!r}{more}; resume with the run's own config ({Path(out) / 'config.json'}; "
                          "only training.steps may change) or train into a new --out")
    saved.training.steps = max(given.training.steps, saved_step)
    return saved


def _resumable(path: Path):
    ck = load_checkpoint(path)
    check_fits_model(ck)
    return ck if ck.train_state is not None and ck.model_weights is not None else None


def latest_checkpoint(out: Path):
    """The newest checkpoint of run folder ``out`` that loads and can be resumed, or ``None``."""
    return newest_readable(checkpoint_dir(out), CHECKPOINT_GLOB, _resumable, (CheckpointError,))


# ---------------------------------------------------------------------- save / restore
def capture(trainer) -> TrainState:
    """The trainer's state now."""
    return TrainState(
        optimizer=trainer.optimizer.state_dict(), scheduler=trainer.scheduler.state_dict(),
        scaler=trainer.scaler.state_dict(), ema_updates=trainer.ema.updates,
        torch_rng=torch.get_rng_state(), generator_rng=trainer.generator.get_state(), python_rng=random.getstate(),
        cuda_rng=torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else [],
        epoch=trainer.epoch, position=trainer.position, loss_avg=trainer.loss_avg, bad_total=trainer.bad_total,
        loss_abs_avg=trainer.loss_abs_avg)


def save_run(trainer) -> Path:
    """Write ``checkpoints/step_XXXXXXXX.pt`` of the trainer atomically and keep the
    newest ``training.keep_checkpoints``."""
    folder = checkpoint_dir(trainer.out)
    path = folder / f"step_{trainer.step:08d}.pt"
    extra = {"tokenizer": trainer.data.tokenizer.to_dict()}
    if trainer.initialized_from is not None:  # core.train.init_from's record
        extra["initialized_from"] = trainer.initialized_from
    save_checkpoint(path, config=trainer.config, weights=trainer.ema.model.state_dict(),
                    model_weights=trainer.model.state_dict(), step=trainer.step, speakers=trainer.data.speakers,
                    train_state=capture(trainer).to_dict(), extra=extra)
    prune(folder, CHECKPOINT_GLOB, trainer.config.training.keep_checkpoints)
    return path


def restore(trainer, ck) -> None:
    """Load checkpoint ``ck`` (from :func:`latest_checkpoint`) into a freshly built trainer."""
    s = TrainState.from_dict(ck.train_state, ck.path)
    trainer.model.load_state_dict(ck.model_weights)
    trainer.ema.model.load_state_dict(ck.weights)
    trainer.ema.updates = s.ema_updates
    trainer.optimizer.load_state_dict(s.optimizer)
    trainer.scheduler.load_state_dict(s.scheduler)
    trainer.scaler.load_state_dict(s.scaler)
    trainer.step = ck.step
    trainer.epoch, trainer.position = s.epoch, s.position
    trainer.loss_avg, trainer.bad_total, trainer.loss_abs_avg = s.loss_avg, s.bad_total, s.loss_abs_avg
    seed, world = trainer.config.training.seed, trainer.world
    if world.distributed:
        torch.manual_seed(seed + 7919 * world.rank + trainer.step)
        trainer.generator.manual_seed(seed * 1000 + world.rank + 104729 * trainer.step)
    else:
        torch.set_rng_state(s.torch_rng)
        trainer.generator.set_state(s.generator_rng)
        if s.cuda_rng and trainer.device.type == "cuda":
            torch.cuda.set_rng_state_all(s.cuda_rng)
    random.setstate(s.python_rng)
    log.info("resumed from %s at step %d", ck.path, trainer.step)
