"""Periodic audio samples during training: the first validation sentence (else the first
training sentence), EMA weights, Griffin-Lim vocoder (offline and fast), written to
``<run>/samples/step_XXXXXXXX.wav``.  Flow-matching and EDM runs sample 10 Euler steps
on the sway grid; a MeanFlow run samples as it is meant to be used, one average-velocity
jump ``x1 = x0 + u(x0, 0, 1)`` (t = 0 noise, t = 1 data).  A LeWM run free-runs its
predictor (:func:`core.lewm.generate`, seed 0, the config's temperature and length limits)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch


@torch.no_grad()
def write_sample(trainer, steps: int = 10) -> Optional[Path]:
    from ..flow import meanflow_sample
    from ..sampling import integrate, time_grid

    data = trainer.data
    dataset = data.val_set if data.val_set is not None and len(data.val_set) else data.train_set
    item = dataset[0]
    if item is None:
        return None
    model = trainer.ema.model
    device = trainer.device
    tokens = item.tokens[None].to(device)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    speakers = torch.tensor([item.speaker], device=device)
    if trainer.config.model.family == "lewm":
        from ..lewm import generate

        lc = trainer.config.lewm
        mel = generate(model, tokens, mask, speakers, generators=[torch.Generator().manual_seed(0)],
                       temperature=lc.temperature, min_length_ratio=lc.min_length_ratio,
                       max_length_ratio=lc.max_length_ratio).mel
        return _save(trainer, mel)
    cond = model.inference_conditioning(tokens, mask, speakers)
    gen = torch.Generator(device=device).manual_seed(0)
    x0 = torch.randn(1, trainer.config.audio.n_mels, cond.mel_mask.shape[1], generator=gen, device=device)
    def net(x, t, r=None):
        return model.predict(x, t, cond, r=r)

    if trainer.config.objective.name == "meanflow":
        x1 = meanflow_sample(trainer.objective.average_velocity(net), x0, time_grid(1, "linear").to(device))
    else:
        x1 = integrate(trainer.objective.velocity(net), x0, time_grid(steps, "sway", -1.0).to(device),
                       method="euler")
    return _save(trainer, model.denormalize_mel(x1))


def _save(trainer, mel: torch.Tensor) -> Path:
    """Vocode mel (1, n_mels, T) with Griffin-Lim and write ``samples/step_XXXXXXXX.wav``."""
    from ..audio import save_wav
    from ..vocoders import GriffinLimVocoder

    vocoder = GriffinLimVocoder(trainer.config.audio)
    audio = vocoder.decode(mel.float().cpu())[0]
    path = trainer.out / "samples" / f"step_{trainer.step:08d}.wav"
    save_wav(path, audio.numpy(), trainer.config.audio.sample_rate)
    return path
