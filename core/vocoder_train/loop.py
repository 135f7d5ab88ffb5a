"""The vocoder training loop: data, validation, samples, ``metrics.jsonl``, atomic
checkpoints with bit-identical resume, and the exported Vocos folder.

Run folder ``out``::

    config.json                 the resolved :class:`VocoderConfig`
    metrics.jsonl               one JSON object per logged step (losses, lr, grad norms,
                                s_per_step, eta_s, bad_steps); validation rows carry
                                val_mel_l1 / val_stft (and, once, griffin_lim_val_mel_l1)
    checkpoints/vocoder_XXXXXXXX.pt   the newest ``keep_checkpoints`` (weights, optimisers,
                                RNG, data position; loaded with weights_only=True)
    vocos/                      the generator as a Vocos folder (config.yaml +
                                pytorch_model.bin, fp32), rewritten at every checkpoint
    samples/step_XXXXXXXX_<id>.wav    validation clips through the generator
    mel_cache/, acoustic mels   cached features

Resume is bit-identical on one process: the batch order and segment offsets are pure
functions of (seed, epoch, position), learning rates of the step, and the checkpoint
carries weights, optimiser moments, the torch RNG and the spike guard's running mean.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Optional

import torch

from ..checkpoint import atomic_write, file_sha256
from ..train.resume import newest_readable, prune
from ..config import ConfigError
from .config import VocoderConfig
from .data import ClipSet, EpochSampler, segment_batch
from .step import BadStep, VocoderLearner

__all__ = ["VocoderTrainer", "VocoderTrainingError", "load_training_checkpoint", "CHECKPOINT_FORMAT"]

log = logging.getLogger("core.vocoder_train")

CHECKPOINT_FORMAT = "flowtts-vocoder-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_GLOB = "vocoder_*.pt"


class VocoderTrainingError(RuntimeError):
    """Training cannot go on (too many consecutive bad steps)."""


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A vocoder training checkpoint as a dict (``torch.load(weights_only=True)``: no
    code runs); a missing, damaged or foreign file raises :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such vocoder checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a readable vocoder checkpoint (truncated, corrupt or holding code): "
                          f"{text}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a vocoder training checkpoint of this project (no {CHECKPOINT_FORMAT!r} "
                          "marker); pass a file from <run>/checkpoints/vocoder_*.pt")
    if int(payload.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise ConfigError(f"{path}: vocoder checkpoint format {payload.get('format_version')} is newer than this code")
    return payload


class VocoderTrainer:
    """Train a Vocos generator as ``config`` says into run folder ``out``.

    ``init``: a Vocos folder or ``hub:<id>`` to start from (its backbone size replaces
    ``config.generator``; its mel settings must match).  ``acoustic``: a TTS checkpoint
    whose generated mels (aligned to the real ones) replace the real mels as input.
    ``resume``: continue from the newest readable checkpoint in ``out/checkpoints``; its
    stored config wins over ``config`` (so a changed preset never changes a running
    recipe).  ``steps`` overrides ``training.steps`` (fresh or resumed; the learning-rate
    curve follows the new total).
    """

    def __init__(self, config: VocoderConfig, out: str | os.PathLike, *, init: Optional[str] = None,
                 acoustic: Optional[str] = None, resume: bool = False, steps: Optional[int] = None,
                 device: str = "cpu", progress: bool = True):
        self.out = Path(out)
        self.progress = progress
        resume_from = self.latest_checkpoint() if resume else None
        if resume and resume_from is None:
            log.warning("--resume given but %s has no readable checkpoint: starting fresh", self.out / "checkpoints")
        if resume_from is not None:
            config = VocoderConfig.from_dict(resume_from["config"])
            if steps is not None:
                config.training.steps = max(int(steps), int(resume_from["step"]))
            acoustic = resume_from["extra"].get("acoustic") or None
            if acoustic is not None and not Path(acoustic).is_file():
                raise ConfigError(f"this run was trained on mels of {acoustic}, which is no longer there")
        elif steps is not None:
            config = dataclasses.replace(config, training=dataclasses.replace(config.training, steps=int(steps)))
        config.validate()
        self.init_spec = None
        if init and resume_from is None:
            config, init_model = self._load_init(config, init)
        else:
            init_model = None
        self.config = config
        self.acoustic = str(acoustic) if acoustic else None
        t = config.training
        torch.manual_seed(t.seed)
        self.learner = VocoderLearner(config, device)
        if init_model is not None:
            self.learner.generator.load_state_dict(init_model.state_dict())
        self.step, self.epoch, self.position = 0, 0, 0
        self.bad_total, self.bad_consecutive = 0, 0
        self._build_data()
        from ..train.metrics import MetricsLog

        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        if resume_from is not None:
            self._load_state(resume_from)
            self.metrics.truncate_after(self.step)
        self.out.mkdir(parents=True, exist_ok=True)
        config.save(self.out / "config.json")
        self._stop = False

    # ------------------------------------------------------------------ setup
    def _load_init(self, config: VocoderConfig, init: str):
        import dataclasses

        from ..vocoders import VocosVocoder, check_compatible
        from .model import generator_config_of

        voc = VocosVocoder.from_hub(init[4:]) if init.startswith("hub:") else VocosVocoder.from_folder(init)
        check_compatible(voc, config.audio)
        gen = generator_config_of(voc.model)
        self.init_spec = init
        return dataclasses.replace(config, generator=gen), voc.model

    def _mel_source(self):
        from ..data import MelCache

        t = self.config.training
        cache = MelCache(Path(t.cache_dir) if t.cache_dir else self.out / "mel_cache", self.config.audio)
        self.mel_cache = cache
        if self.acoustic is None:
            return lambda utt: cache.get(utt.audio_path)
        from .acoustic import AcousticMels

        return AcousticMels(self.acoustic, self.config.audio, cache.root.parent, cache, seed=t.seed)

    def _build_data(self) -> None:
        from ..data import read_dataset, split_validation

        t = self.config.training
        if not t.data:
            raise ConfigError("no training data: pass --data (a manifest .csv/.jsonl or an LJSpeech folder)")
        rows = read_dataset(t.data)
        if t.val_data:
            val_rows = read_dataset(t.val_data)
        else:
            rows, val_rows = split_validation(rows, 0.05, t.seed)
        source = self._mel_source()
        self.train_set = ClipSet(list(rows), self.config.audio, source, t.segment_frames + 1, t.max_audio_seconds)
        log.info("vocoder training data: %s", self.train_set.report.summary())
        if len(self.train_set) == 0:
            raise ConfigError(f"no usable training clips in {t.data}: {self.train_set.report.summary()}")
        self.sampler = EpochSampler(len(self.train_set), t.batch_size, t.seed)
        val_rows = list(val_rows)  # val_clips rows spread evenly (a manifest sorted by speaker: all speakers)
        picked = val_rows[:: max(1, len(val_rows) // t.val_clips)][: t.val_clips] if t.val_clips else []
        self.val_set = ClipSet(picked, self.config.audio, source, 2, t.max_audio_seconds) if picked else None

    # ------------------------------------------------------------------ data
    def next_batch(self):
        """The batch at (epoch, position), then advance the position."""
        t = self.config.training
        if self.position >= self.sampler.batches_per_epoch:
            self.epoch, self.position = self.epoch + 1, 0
        indices = self.sampler.batch(self.epoch, self.position)
        gen = torch.Generator().manual_seed((t.seed * 1_000_003 + self.epoch) * 1_000_033 + self.position)
        self.position += 1
        clips = [self.train_set.clip(i) for i in indices]
        return segment_batch(clips, t.segment_frames, self.config.audio.hop_length, gen)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, write_samples: bool = True) -> Optional[dict[str, float]]:
        """Mean mel L1 and MR-STFT distance of the generator's output on the held-out clips
        (whole utterances), and the first ``sample_clips`` written to ``samples/``."""
        if self.val_set is None or len(self.val_set) == 0:
            return None
        from ..audio import save_wav

        g = self.learner.generator
        g.eval()
        mel_sum, stft_sum = 0.0, 0.0
        for i in range(len(self.val_set)):
            clip = self.val_set.clip(i)
            y = clip.audio[None]
            y_hat = g.head(g.backbone(clip.mel[None].to(self.learner.device))).cpu()
            y_hat = torch.nn.functional.pad(y_hat, (0, max(0, y.shape[1] - y_hat.shape[1])))[:, : y.shape[1]]
            mel_sum += float(self.learner.mel_loss(y_hat, y))
            stft_sum += float(self.learner.stft_loss(y_hat, y)[0])
            if write_samples and i < self.config.training.sample_clips:
                name = "".join(c if c.isalnum() or c in "-_." else "_" for c in clip.id)
                save_wav(self.out / "samples" / f"step_{self.step:08d}_{name}.wav", y_hat[0],
                         self.config.audio.sample_rate)
        n = len(self.val_set)
        row = {"step": self.step, "val_mel_l1": mel_sum / n, "val_stft": stft_sum / n}
        self.metrics.write(row)
        return row

    @torch.no_grad()
    def griffin_lim_reference(self) -> Optional[float]:
        """Validation mel L1 of Griffin-Lim on the same clips (logged once, at step 0)."""
        if self.val_set is None or len(self.val_set) == 0:
            return None
        from ..vocoders import GriffinLimVocoder

        gl = GriffinLimVocoder(self.config.audio)
        total = 0.0
        for i in range(len(self.val_set)):
            clip = self.val_set.clip(i)
            y = clip.audio[None]
            y_hat = gl.decode(clip.mel[None])
            y_hat = torch.nn.functional.pad(y_hat, (0, max(0, y.shape[1] - y_hat.shape[1])))[:, : y.shape[1]]
            total += float(self.learner.mel_loss(y_hat, y))
        value = total / len(self.val_set)
        self.metrics.write({"step": self.step, "event": "reference", "griffin_lim_val_mel_l1": value})
        return value

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def save(self) -> Path:
        """Write ``checkpoints/vocoder_XXXXXXXX.pt`` atomically, prune old ones, and
        re-export ``vocos/``."""
        from .model import export_vocos_folder

        path = self.checkpoint_dir() / f"vocoder_{self.step:08d}.pt"
        payload = {
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(), "step": self.step,
            "learner": self.learner.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "data": {"epoch": self.epoch, "position": self.position},
            "guard": {"bad_total": self.bad_total},
            "extra": {"acoustic": self.acoustic or "", "init": self.init_spec or "",
                      "acoustic_sha256": file_sha256(self.acoustic) if self.acoustic else ""},
        }
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
        prune(self.checkpoint_dir(), CHECKPOINT_GLOB, self.config.training.keep_checkpoints)
        export_vocos_folder(self.learner.generator, self.config.audio, self.config.generator, self.out / "vocos")
        return path

    def latest_checkpoint(self) -> Optional[dict[str, Any]]:
        """The newest checkpoint in ``out/checkpoints`` that loads (its payload, with
        ``path`` added), or ``None``."""
        def load(path: Path) -> dict[str, Any]:
            return {**load_training_checkpoint(path), "path": str(path)}

        return newest_readable(self.checkpoint_dir(), CHECKPOINT_GLOB, load, (ConfigError,))

    def _load_state(self, ck: dict[str, Any]) -> None:
        self.learner.load_state_dict(ck["learner"])
        self.step = int(ck["step"])
        self.epoch, self.position = int(ck["data"]["epoch"]), int(ck["data"]["position"])
        self.bad_total = int(ck["guard"]["bad_total"])
        torch.set_rng_state(ck["rng"]["torch"])
        self.init_spec = ck["extra"].get("init") or None
        log.info("resumed from %s at step %d", ck["path"], self.step)

    # ------------------------------------------------------------------ the loop
    def request_stop(self) -> None:
        """End after the current step (a checkpoint is written first)."""
        self._stop = True

    def fit(self) -> Path:
        """Train to ``training.steps`` (or a stop request, e.g. SIGTERM); returns the last checkpoint."""
        t = self.config.training
        main_thread = _is_main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main_thread else None
        if main_thread:
            signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=t.steps, initial=self.step, desc="vocoder", dynamic_ncols=True)
        last_path: Optional[Path] = None
        window: dict[str, float] = {}
        n_window = 0
        started, t0, last_save = time.perf_counter(), time.perf_counter(), time.perf_counter()
        step_at_start = self.step
        try:
            if self.step == 0 and t.val_every:
                self.griffin_lim_reference()
                self.validate()
            while self.step < t.steps and not self._stop:
                batch = self.next_batch()
                try:
                    out = self.learner.train_step(batch, self.step)
                except BadStep as exc:
                    self._bad_step(str(exc))
                    continue
                self.step += 1
                self.bad_consecutive = 0
                for k, v in out.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        window[k] = window.get(k, 0.0) + float(v)
                window["adversarial_steps"] = window.get("adversarial_steps", 0.0) + float(out["adversarial"])
                n_window += 1
                if bar is not None:
                    bar.update(self.step - bar.n)
                if self.step % t.log_every == 0 or self.step == t.steps:
                    now = time.perf_counter()
                    row = {"step": self.step, "epoch": self.epoch,
                           **{k: v / n_window for k, v in window.items() if k != "adversarial_steps"},
                           "adversarial_steps": int(window.get("adversarial_steps", 0)),
                           "s_per_step": (now - t0) / n_window,
                           "eta_s": (now - started) / max(1, self.step - step_at_start) * (t.steps - self.step),
                           "bad_steps": self.bad_total}
                    # the lr of the window's last step, not an average
                    row["lr"] = out["lr"]
                    self.metrics.write(row)
                    if bar is not None:
                        bar.set_postfix(mel=f"{row.get('mel', math.nan):.3f}", s_step=f"{row['s_per_step']:.2f}")
                    window, n_window, t0 = {}, 0, now
                if t.val_every and self.step % t.val_every == 0:
                    self.validate()
                due = t.checkpoint_every and self.step % t.checkpoint_every == 0
                late = t.checkpoint_minutes and time.perf_counter() - last_save >= 60 * t.checkpoint_minutes
                if due or late:
                    last_path, last_save = self.save(), time.perf_counter()
            if last_path is None or not last_path.name.endswith(f"{self.step:08d}.pt"):
                last_path = self.save()
        finally:
            if main_thread and previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if bar is not None:
                bar.close()
        return last_path

    def _bad_step(self, reason: str) -> None:
        self.bad_total += 1
        self.bad_consecutive += 1
        log.warning("step %d skipped: %s", self.step + 1, reason)
        self.metrics.write({"step": self.step, "event": "bad_step", "reason": reason})
        if self.bad_consecutive >= self.config.training.max_bad_steps:
            raise VocoderTrainingError(
                f"stopped after {self.bad_consecutive} consecutive bad steps (last: {reason}); the last good "
                f"checkpoint is in {self.checkpoint_dir()}. Lower the learning rate or check the data.")


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
