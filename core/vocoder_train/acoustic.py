"""``--acoustic CHECKPOINT``: the mels an acoustic model generates for the training
utterances, on the frames of their real recordings, so that audio and mel still align
and the vocoder learns to undo the acoustic model's own errors.

For an utterance with real log-mel ``(n_mels, T)`` the model encodes its text, monotonic
alignment search on the real (normalised) mel gives the ground-truth durations (summing
to ``T``), and the flow is sampled from noise under that conditioning with the checkpoint's own
recommended settings (its config's ``sampling`` section: steps, solver, time grid, sway,
guidance, temperature; :data:`SAMPLER` for a checkpoint that stores none), a seed per
utterance.  So the vocoder learns the mels the voice is heard with: the bundled demo
voice samples with classifier-free guidance 2, whose mels differ from unguided ones.
Time runs from noise (t = 0) to the mel (t = 1).  Each generated mel is
cached as ``.npy`` under a folder keyed by the checkpoint's sha256 and the sampler
settings, file name the sha256 of (audio bytes, text, speaker), so it is computed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..config import AudioConfig, ConfigError
from ..data import MelCache, Utterance

__all__ = ["AcousticMels", "SAMPLER"]

SAMPLER = {"steps": 10, "solver": "euler", "schedule": "sway", "sway": -1.0, "cfg": 0.0, "temperature": 1.0}
"""The settings of a checkpoint with the default ``sampling`` section."""


class AcousticMels:
    """Callable mel source ``utterance -> (n_mels, T)`` float32 (``T`` = real mel frames)."""

    def __init__(self, checkpoint: str | os.PathLike, audio: AudioConfig, cache_root: str | os.PathLike,
                 real: MelCache, seed: int = 0):
        from ..sampling.synthesizer import Synthesizer, check_options

        self.synth = Synthesizer.from_checkpoint(checkpoint, device="cpu", vocoder="griffin-lim")
        theirs = self.synth.config.audio.mel_settings()
        if theirs != audio.mel_settings():
            diff = [f"{k}: acoustic {theirs.get(k)!r} vs vocoder {v!r}" for k, v in audio.mel_settings().items()
                    if theirs.get(k) != v]
            raise ConfigError(f"--acoustic {checkpoint}: its mel settings differ from the vocoder's: "
                              + "; ".join(diff))
        self.real, self.seed = real, int(seed)
        d = self.synth.config.sampling
        self.sampler = s = {name: getattr(d, name) for name in SAMPLER}
        self.options = check_options(s["steps"], s["solver"], s["schedule"], s["sway"], 1.0, s["cfg"],
                                     s["temperature"], 0)
        key = json.dumps({"checkpoint": self.synth.checkpoint_sha256, "seed": self.seed, **s}, sort_keys=True)
        self.root = Path(cache_root) / f"acoustic_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "settings.json").write_text(key + "\n", encoding="utf-8")
        self.checkpoint_sha256 = self.synth.checkpoint_sha256

    def _entry(self, utt: Utterance) -> Path:
        h = hashlib.sha256(Path(utt.audio_path).read_bytes())
        h.update(json.dumps([utt.text, utt.speaker]).encode())
        digest = h.hexdigest()
        return self.root / digest[:2] / f"{digest}.npy"

    def __call__(self, utt: Utterance) -> torch.Tensor:
        entry = self._entry(utt)
        if entry.exists():
            try:
                mel = np.load(entry, allow_pickle=False)
                if mel.ndim == 2 and mel.dtype == np.float32:
                    return torch.from_numpy(mel)
            except Exception:  # damaged entry: generate again
                pass
        mel = self.generate(utt).numpy()
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{entry.stem}.", suffix=".tmp", dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, mel, allow_pickle=False)
            os.replace(tmp, entry)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return torch.from_numpy(mel)

    @torch.inference_mode()
    def generate(self, utt: Utterance) -> torch.Tensor:
        """The model's log-mel ``(n_mels, T)`` for ``utt`` on its real mel's ``T`` frames."""
        from ..sampling.guidance import model_net
        from ..sampling.solvers import integrate

        synth, model = self.synth, self.synth.model
        real = self.real.get(utt.audio_path)                                     # (n_mels, T)
        ids = synth.front_end(utt.text)
        if len(ids) > real.shape[1]:
            raise ConfigError(f"{utt.id}: {len(ids)} tokens but only {real.shape[1]} mel frames; "
                              "it cannot be aligned")
        tokens = torch.tensor([ids], dtype=torch.long)
        token_mask = torch.ones_like(tokens, dtype=torch.bool)
        speakers = torch.tensor([synth.speaker_id(utt.speaker or None)], dtype=torch.long)
        x1 = model.normalize_mel(real[None].float())
        mel_mask = torch.ones(1, real.shape[1], dtype=torch.bool)
        enc = model.encode(tokens, token_mask, speakers)
        durations = model.align(enc, x1, mel_mask).durations                   # (1, L), sums to T
        cond = model.inference_conditioning(tokens, token_mask, speakers, durations=durations)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(utt.id.encode()))
        x0 = torch.randn(1, real.shape[0], real.shape[1], generator=gen) * self.sampler["temperature"]
        net = model_net(model, cond, self.sampler["cfg"])
        grid = self.options.grid
        if synth.objective_name == "meanflow":
            from ..flow import meanflow_sample

            x = meanflow_sample(synth.objective.average_velocity(net), x0, grid)
        else:
            x = integrate(synth.objective.velocity(net), x0, grid, self.sampler["solver"])
        return model.denormalize_mel(x.float())[0].contiguous().clone()
