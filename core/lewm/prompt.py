"""Voice prompts for LeWM: a reference clip and its transcript, checked and brought to the
checkpoint's sample rate.

``read_prompt(audio, transcript, sample_rate, target_rate)`` -> :class:`VoicePrompt`.

``audio`` is a path to an audio file (any format libsndfile reads; its own rate is read
from the file) or a 1-D float array of samples in [-1, 1] with ``sample_rate`` given.
Audio at another rate than the checkpoint's is resampled (:func:`core.audio.resample`);
an array without ``sample_rate`` is an error, never silently taken as the checkpoint's
rate.  The clip must last between :data:`MIN_PROMPT_SECONDS` and
:data:`MAX_PROMPT_SECONDS`; the transcript must be a non-empty string (the predictor
reads it before the text, so it must say what the clip says).

The synthesizer then turns the samples into a mel (:func:`core.audio.mel_spectrogram`)
and the mel into latents (:func:`core.lewm.generate.encode_prompt`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..audio import load_wav_with_rate, resample
from ..config import ConfigError

__all__ = ["VoicePrompt", "read_prompt", "MIN_PROMPT_SECONDS", "MAX_PROMPT_SECONDS"]

MIN_PROMPT_SECONDS = 0.25
MAX_PROMPT_SECONDS = 15.0


@dataclass
class VoicePrompt:
    """samples (n,) float32 at ``sample_rate`` (the checkpoint's); transcript; source: the
    file path, or ``"array"``; sha256 of the samples (recorded in ``Synthesis.settings``)."""

    samples: np.ndarray
    sample_rate: int
    transcript: str
    source: str
    sha256: str

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def read_prompt(audio: Union[str, Path, np.ndarray], transcript: Optional[str], sample_rate: Optional[int],
                target_rate: int) -> VoicePrompt:
    """See the module docstring.  Raises :class:`ConfigError` (or ``core.audio.AudioError``
    for an unreadable file) saying what is wrong."""
    if not isinstance(transcript, str) or not transcript.strip():
        raise ConfigError("a voice prompt needs its transcript (prompt_text): the words the reference clip says")
    if isinstance(audio, (str, Path)):
        if sample_rate is not None:
            raise ConfigError("prompt_sample_rate is for an array prompt; a file's rate is read from the file")
        clip = load_wav_with_rate(audio)
        samples, rate, source = clip.samples, clip.sample_rate, str(audio)
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if sample_rate is None:
            raise ConfigError("an array voice prompt needs prompt_sample_rate (its samples per second); it is "
                              f"resampled to the checkpoint's {target_rate} Hz when different")
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ConfigError(f"prompt_sample_rate must be a positive integer, got {sample_rate!r}")
        samples = np.asarray(audio.detach().cpu() if isinstance(audio, torch.Tensor) else audio)
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise ConfigError(f"a voice prompt array must be 1-D float samples, got shape {samples.shape} "
                              f"dtype {samples.dtype}")
        if not np.isfinite(samples).all():
            raise ConfigError("the voice prompt has NaN or infinite samples")
        rate, source = int(sample_rate), "array"
    else:
        raise ConfigError(f"prompt_audio must be an audio file path or a 1-D float array, got {type(audio).__name__}")
    seconds = len(samples) / rate
    if seconds < MIN_PROMPT_SECONDS:
        raise ConfigError(f"the voice prompt lasts {seconds:.2f} s, shorter than {MIN_PROMPT_SECONDS} s")
    if seconds > MAX_PROMPT_SECONDS:
        raise ConfigError(f"the voice prompt lasts {seconds:.1f} s, over the limit of {MAX_PROMPT_SECONDS:g} s; "
                          "cut it to a sentence or two")
    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    wav = resample(wav, rate, target_rate).clamp(-1.0, 1.0)
    out = wav.numpy().astype(np.float32)
    return VoicePrompt(samples=out, sample_rate=int(target_rate), transcript=transcript.strip(), source=source,
                       sha256=hashlib.sha256(out.tobytes()).hexdigest())
