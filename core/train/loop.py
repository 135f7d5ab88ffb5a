"""The training loop: AdamW with warm-up and decay, gradient clipping, EMA, autocast on
GPU, a NaN/inf and spike guard, ``metrics.jsonl`` with the per-timestep loss curve,
validation, audio samples, atomic checkpoints with exact resume, and DDP under torchrun.

Time convention: t = 0 is Gaussian noise, t = 1 is the (normalised) mel spectrogram.

Saving a checkpoint and resuming from one (bit-identical on one process) live in
:mod:`core.train.resume`; the step's inputs and outputs are the typed records of
:mod:`core.train.records`.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from ..config import Config, ConfigError
from ..flow.base import Unconditional
from . import resume as run_files
from .callbacks import Callback, ProgressBar
from .distributed import World, all_mean, all_true, average_gradients, init_from_env
from .ema import EMA
from .guard import is_spike, running_mean
from .metrics import MetricsLog, TimeBins
from .records import LossTerms, StepResult
from .init_from import apply_init, check_run_fits, read_init_source
from .setup import RunData, build_run_data, lr_factor

log = logging.getLogger("core.train")

CHECKPOINT_GLOB = run_files.CHECKPOINT_GLOB


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many consecutive non-finite steps)."""


class LossModule(nn.Module):
    """Model + objective as one module, so DDP sees a single ``forward``.

    ``forward`` returns a plain dict with :class:`~core.train.records.LossTerms`' fields
    (DistributedDataParallel traverses dicts); the trainer turns it into the record.
    """

    def __init__(self, model: nn.Module, objective, duration_weight: float, attention: Optional[str] = None):
        super().__init__()
        self.model = model
        self.objective = objective
        self.duration_weight = duration_weight
        self.attention = attention

    def forward(self, tokens, token_mask, speakers, mel, mel_mask, generator: Optional[torch.Generator] = None,
                durations=None):
        model = self.model
        x1 = model.normalize_mel(mel) * mel_mask.unsqueeze(1)
        cond = model.conditioning(tokens, token_mask, speakers, x1, mel_mask, generator=generator,
                                  durations=durations)
        def net(x, t, r=None):
            return model.predict(x, t, cond, r=r, attention=self.attention)

        extra = {}
        if self.objective.wants_unconditional:      # guidance trained in (MeanFlow with objective.cfg > 0)
            null = torch.ones_like(cond.drop)

            def unconditional(x, t, r=None):
                return model.predict(x, t, cond, r=r, drop=null, attention=self.attention)

            extra["unconditional"] = Unconditional(unconditional, cond.drop)
        out = self.objective.loss(net, x1, mel_mask, generator=generator, **extra)
        duration = cond.losses["duration"]
        prior = cond.losses["prior"]
        loss = out.loss + self.duration_weight * duration + prior
        mse = out.terms.get("mse", out.per_example.mean())
        return {"loss": loss, "flow": out.loss.detach(), "mse": torch.as_tensor(mse).detach(),
                "duration": duration.detach(), "prior": prior.detach(),
                "per_example": out.per_example.detach(), "t": out.t.detach()}


def _resolve_device(device: Optional[str], world: World) -> torch.device:
    from ..devices import resolve_device

    return resolve_device(device, cuda_index=world.local_rank)


def _amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype: fp32 on CPU always; on CUDA 'auto' picks bf16 where supported."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


class Trainer:
    """Train ``config`` into run folder ``out``.

    ``callbacks`` receive the hooks in :class:`Callback`; a console progress bar is added
    unless ``progress=False``.  ``resume=True`` continues from the newest readable
    checkpoint in ``out/checkpoints`` (a torn or corrupt newest file falls back to the
    one before it).  ``config.training.init`` names a checkpoint whose weights a new
    run starts from (:mod:`core.train.init_from`; ignored when resuming).
    """

    def __init__(self, config: Config, out: str | Path, *, device: Optional[str] = None,
                 callbacks: Sequence[Callback] = (), progress: bool = True, resume: bool = False,
                 world: Optional[World] = None):
        config.validate()
        self.out = Path(out)
        self.world = world or World()
        self.device = _resolve_device(device, self.world)
        self.callbacks: list[Callback] = list(callbacks)
        if progress:
            self.callbacks.append(ProgressBar())
        self._stop = False
        self.step = 0
        self.epoch = 0
        self.position = 0
        self.bad_total = 0
        self.bad_consecutive = 0
        self.loss_avg: Optional[float] = None          # the spike guard's running means (core.train.guard)
        self.loss_abs_avg: Optional[float] = None

        resume_from = self.latest_checkpoint() if resume else None
        if resume and resume_from is None:
            log.warning("--resume given but %s has no readable checkpoint: starting fresh", self.out / "checkpoints")
        if resume_from is not None:
            config = run_files.resumed_config(resume_from.config, config, self.out, resume_from.step)
            if config.training.init:
                log.info("resuming: training.init (%s) applied when the run started", config.training.init)
        # a new run from another checkpoint's weights (core.train.init_from)
        init_source = read_init_source(config.training.init, config) \
            if resume_from is None and config.training.init else None
        tokenizer_state = resume_from.extra.get("tokenizer") if resume_from else \
            init_source.tokenizer_state if init_source else None
        self.data: RunData = build_run_data(config, self.out, self.world, tokenizer_state=tokenizer_state)
        self.config = self.data.config
        if init_source is not None:
            check_run_fits(init_source, self.config, self.data.speakers)
        cfg = self.config
        torch.manual_seed(cfg.training.seed)
        random.seed(cfg.training.seed)

        from ..families import build_model

        self.family = cfg.model.family
        self.model = build_model(cfg).to(self.device)
        if resume_from is None:
            mean, std = self.data.mel_stats
            self.model.mel_mean.fill_(mean)
            self.model.mel_std.fill_(std)
        # where the weights came from (None: random or resumed); the EMA below copies them
        self.initialized_from: Optional[dict] = None
        if init_source is not None:
            self.initialized_from = init_source.record(apply_init(self.model, init_source))
        if self.family == "lewm":
            from ..lewm.learner import TERMS

            self.objective = None
            self.terms = TERMS
            self.uses_jvp = False
            self.attention = None
        else:
            from ..flow import build_objective
            from .records import FLOW_TERMS

            self.objective = build_objective(cfg.objective)
            self.terms = FLOW_TERMS
            if cfg.objective.name == "edm":
                self._check_sigma_data()
            # MeanFlow differentiates through the network with torch.func.jvp: fused SDPA
            # kernels have no forward-mode AD, so the explicit math attention path is used.
            self.uses_jvp = cfg.objective.name == "meanflow"
            self.attention = "math" if self.uses_jvp else None
        self.loss_module = self.build_loss_module(self.model)
        self.ddp_module = None
        if self.world.distributed and not self.uses_jvp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_module = DistributedDataParallel(self.loss_module, device_ids=ids, find_unused_parameters=True)
        elif self.world.distributed:
            # MeanFlow: torch.func.jvp cannot run through the DDP wrapper; call the plain
            # module and all-reduce gradients by hand.  Start every rank from rank 0's weights.
            import torch.distributed as dist

            for p in self.model.state_dict().values():
                dist.broadcast(p, src=0)

        t = cfg.training
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
        # a run continued from an export (training.init_step) counts on from that step, and
        # the schedule with it; a resumed run's scheduler state is restored below
        start = t.init_step if resume_from is None and init_source is not None else 0
        if start:
            for group in self.optimizer.param_groups:
                group["initial_lr"] = group["lr"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, t.warmup_steps, t.steps, t.decay), last_epoch=start - 1)
        self.step = start
        self.amp_dtype = _amp_dtype(t.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = EMA(self.model, t.ema_decay)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(t.seed * 1000 + self.world.rank)
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        self.bins = TimeBins()
        if resume_from is not None:
            run_files.restore(self, resume_from)
            self.initialized_from = resume_from.extra.get("initialized_from")
            if self.world.is_main:
                self.metrics.truncate_after(self.step)
        elif self.initialized_from is not None and self.world.is_main:
            self.metrics.write({"step": self.step, "event": "init", "init": self.initialized_from})
        if self.world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.config.save(self.out / "config.json")

    def build_loss_module(self, model: nn.Module) -> nn.Module:
        """Model + its family's loss as one module (the trainer's and validation's forward):
        :class:`LossModule` (flow, with the objective) or :class:`core.lewm.learner.LeWMLoss`
        (whose schedules follow this trainer's step)."""
        if self.family == "lewm":
            from ..lewm.learner import LeWMLoss

            return LeWMLoss(model, self.config.training.steps, step_fn=lambda: self.step)
        return LossModule(model, self.objective, self.config.objective.duration_weight, self.attention)

    def _check_sigma_data(self) -> None:
        """EDM's preconditioning assumes data of std sigma_data: measure the std of the
        normalised mels this run feeds (the stats sample) and refuse a sigma_data more
        than 10 % away from it (None takes the measured value's design, 1.0)."""
        sd = self.objective.sigma_data
        mean, std = self.data.mel_stats
        sample = [self.data.train_set[i] for i in range(min(16, len(self.data.train_set)))]
        mels = torch.cat([((it.mel.double() - mean) / std).flatten() for it in sample if it is not None])
        measured = float(mels.std()) if mels.numel() > 1 else 1.0
        if abs(sd - measured) > 0.1 * measured:
            raise ConfigError(f"objective.sigma_data is {sd} but the mels this run feeds the objective have std "
                              f"{measured:.2f} (normalised by the training set's statistics); leave sigma_data "
                              "unset (null) to use it, or set it near that value")

    # ------------------------------------------------------------------ properties
    @property
    def is_main(self) -> bool:
        return self.world.is_main

    def request_stop(self) -> None:
        """Ask the loop to end after the current step; it writes a checkpoint first."""
        self._stop = True

    def _emit(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ------------------------------------------------------------------ data
    def batches(self) -> Iterator:
        """Yield training batches forever, tracking (epoch, position) for exact resume."""
        sampler = self.data.train_sampler
        while True:
            sampler.load_state_dict({"epoch": self.epoch, "position": self.position})
            for indices in sampler:
                self.position += 1
                batch = self.data.make_batch(self.data.train_set, indices)
                if batch is not None:
                    yield batch.to(self.device)
            self.epoch += 1
            self.position = 0

    # ------------------------------------------------------------------ one step
    def _forward(self, batch, module=None, generator: Optional[torch.Generator] = None) -> LossTerms:
        module = module or self.ddp_module or self.loss_module
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            extra = {} if batch.durations is None else {"durations": batch.durations}  # external durations
            out = module(batch.tokens, batch.token_mask, batch.speakers, batch.mel, batch.mel_mask,
                         generator or self.generator, **extra)
        return LossTerms.from_module_output(out, self.terms)

    def accumulate(self, batch, scale: float = 1.0) -> LossTerms:
        """Forward and backward of one batch, gradients scaled by ``scale`` and added to
        ``.grad``.  Returns the batch's losses."""
        self.model.train()
        out = self._forward(batch)
        self.scaler.scale(out.loss * scale).backward()
        return out

    def train_step(self, batch) -> StepResult:
        """Forward, backward, gradient sync, guard, optimizer update.  Returns the losses."""
        self.optimizer.zero_grad(set_to_none=True)
        out = self.accumulate(batch)
        if self.world.distributed and self.ddp_module is None:
            average_gradients(self.model.parameters(), self.world)
        return self.apply_update(out, int(batch.tokens.shape[0]))

    def apply_update(self, out: LossTerms, batch_size: int) -> StepResult:
        """Clip, check, and take the optimizer step with the gradients in ``.grad``
        (already averaged over ranks); a non-finite or spiking step is skipped."""
        loss = out.loss
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.training.grad_clip)
        loss_value = float(loss.detach())
        norm_value = float(grad_norm)
        reason = ""
        if not math.isfinite(loss_value):
            reason = f"loss is {loss_value}"
        elif not math.isfinite(norm_value):
            reason = f"gradient norm is {norm_value}"
        elif self.step >= 20 and is_spike(loss_value, self.loss_avg, self.loss_abs_avg, self.config.training.spike_factor):
            reason = (f"loss spike {loss_value:.4g}: {loss_value - self.loss_avg:.4g} above the running mean "
                      f"{self.loss_avg:.4g}, over {self.config.training.spike_factor - 1:g} x its typical size "
                      f"{abs(self.loss_avg) if self.loss_abs_avg is None else self.loss_abs_avg:.4g}")
        ok = all_true(not reason, self.world, self.device)
        if not ok:
            reason = reason or "another rank had a bad step"
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()
            self.bad_total += 1
            self.bad_consecutive += 1
            log.warning("step %d skipped: %s", self.step + 1, reason)
            if self.is_main:
                self.metrics.write({"step": self.step, "event": "bad_step", "reason": reason})
            self._emit("on_bad_step", self.step, reason)
            if self.bad_consecutive >= self.config.training.max_bad_steps:
                raise TrainingError(
                    f"stopped after {self.bad_consecutive} consecutive bad steps (last: {reason}); the last good "
                    f"checkpoint is in {self.out / 'checkpoints'}. Lower the learning rate or check the data.")
            return StepResult(skipped=True, reason=reason, batch_size=batch_size)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        self.bad_consecutive = 0
        self.loss_avg = running_mean(self.loss_avg, loss_value)
        self.loss_abs_avg = running_mean(self.loss_abs_avg, abs(loss_value))
        if out.t is not None:
            self.bins.add(out.t, out.per_example)
        return StepResult(skipped=False, loss=loss_value, grad_norm=norm_value, batch_size=batch_size,
                          terms={k: float(v) for k, v in out.terms.items()})

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, max_batches: int = 50) -> Optional[float]:
        """Mean total loss of the EMA model on the held-out split with a fixed generator
        (so values are comparable across steps).  ``None`` without a validation split.
        ``metrics.jsonl`` gets it as ``val_loss``, with the per-timestep bins
        (``val_t_bins``) and the mean of each logged term (``val_terms``; for LeWM, e.g.
        ``pred`` / ``copy`` and the diagonality ``align``)."""
        if self.data.val_set is None:
            return None
        module = self.build_loss_module(self.ema.model)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(12345)
        total, count = 0.0, 0
        terms: dict[str, float] = {}
        bins = TimeBins()
        for i, indices in enumerate(self.data.val_batches):
            if i >= max_batches:
                break
            batch = self.data.make_batch(self.data.val_set, indices)
            if batch is None:
                continue
            out = self._forward(batch.to(self.device), module, gen)
            n = batch.tokens.shape[0]
            total += float(out.loss) * n
            for name, v in out.terms.items():
                terms[name] = terms.get(name, 0.0) + float(v) * n
            count += n
            if out.t is not None:
                bins.add(out.t, out.per_example)
        if count == 0:
            return None
        value = all_mean(total / count, self.world, self.device)
        val_terms = {name: all_mean(v / count, self.world, self.device) for name, v in terms.items()}
        if self.is_main:
            self.metrics.write({"step": self.step, "val_loss": value, "val_t_bins": bins.means(),
                                "val_terms": val_terms})
        self._emit("on_validation", self.step, value)
        return value

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dir(self) -> Path:
        return run_files.checkpoint_dir(self.out)

    def save(self) -> Optional[Path]:
        """Write ``checkpoints/step_XXXXXXXX.pt`` atomically (rank 0) and prune old ones
        (see :mod:`core.train.resume`)."""
        if not self.is_main:
            return None
        path = run_files.save_run(self)
        self._emit("on_checkpoint", self.step, path)
        return path

    def latest_checkpoint(self):
        """The newest checkpoint in the run folder that loads and can be resumed, or ``None``."""
        return run_files.latest_checkpoint(self.out)

    # ------------------------------------------------------------------ samples
    def write_sample(self) -> Optional[Path]:
        """Synthesise the first validation (else training) sentence with the EMA model."""
        if not self.is_main:
            return None
        from .samples import write_sample

        path = write_sample(self)
        if path is not None:
            self._emit("on_sample", self.step, path)
        return path

    # ------------------------------------------------------------------ the loop
    def fit(self) -> Optional[Path]:
        """Train until ``training.steps`` (or a stop request); returns the last checkpoint."""
        t = self.config.training
        previous = signal.getsignal(signal.SIGTERM) if self.is_main_thread() else None
        if previous is not None:
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        self._emit("on_train_start")
        last_path = None
        window: dict[str, float] = {}
        n_window = 0
        examples = 0
        t0 = time.perf_counter()
        started = time.perf_counter()
        step_at_start = self.step
        try:
            batches = self.batches()
            while self.step < t.steps and not self._stop:
                out = self.train_step(next(batches))
                if out.skipped:
                    continue
                for k, v in out.logged().items():
                    window[k] = window.get(k, 0.0) + v
                n_window += 1
                examples += out.batch_size
                self._emit("on_step_end", self.step, out)
                if self.step % t.log_every == 0 or self.step == t.steps:
                    now = time.perf_counter()
                    rate = examples * self.world.size / max(now - t0, 1e-9)
                    done = self.step - step_at_start
                    eta = (now - started) / max(done, 1) * (t.steps - self.step)
                    row = {"step": self.step, "epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0],
                           "examples_per_s": rate, "eta_s": eta, "bad_steps": self.bad_total,
                           **{k: v / n_window for k, v in window.items()}, "t_bins": self.bins.means()}
                    if self.is_main:
                        self.metrics.write(row)
                    self._emit("on_log", row)
                    window, n_window, examples, t0 = {}, 0, 0, now
                    self.bins.reset()
                if t.val_every and self.step % t.val_every == 0:
                    self.validate()
                if t.sample_every and self.step % t.sample_every == 0:
                    self.write_sample()
                if t.checkpoint_every and self.step % t.checkpoint_every == 0:
                    last_path = self.save()
            if last_path is None or not last_path.name.endswith(f"{self.step:08d}.pt"):
                last_path = self.save()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self._emit("on_train_end")
        return last_path

    @staticmethod
    def is_main_thread() -> bool:
        import threading

        return threading.current_thread() is threading.main_thread()


def train(config: Config, out: str | Path, *, device: Optional[str] = None, resume: bool = False,
          progress: bool = True) -> Optional[Path]:
    """Train with the process group from the environment (torchrun) or alone."""
    dev_type = "cuda" if (device in (None, "auto") and torch.cuda.is_available()) or str(device).startswith("cuda") else "cpu"
    world = init_from_env(dev_type)
    try:
        trainer = Trainer(config, out, device=device, resume=resume, progress=progress, world=world)
        return trainer.fit()
    finally:
        from .distributed import cleanup

        cleanup(world)
