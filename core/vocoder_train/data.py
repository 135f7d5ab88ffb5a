"""Training data for the vocoder: (audio segment, mel segment) pairs cut from whole
utterances, in an order that depends only on (seed, epoch, batch), so a resumed run
sees exactly the batches an uninterrupted one would.

Each utterance has a waveform ``(L,)`` at the mel's rate and a full log-mel
``(n_mels, T)`` with ``T = L // hop + 1`` (``center=True``): the real mel
(:class:`core.data.MelCache`) for copy synthesis, or the mel an acoustic model generated
on the same frames (:mod:`core.vocoder_train.acoustic`).  A segment of ``N`` frames
starting at frame ``f`` is ``audio[f * hop:(f + N) * hop]`` ``(N * hop,)`` with mel
frames ``[f, f + N]`` ``(n_mels, N + 1)``: the generator's ``(N + 1) * hop`` output
samples are cut to the first ``N * hop``.  Utterances with fewer than ``N + 1`` frames
are skipped (counted in ``report``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..config import AudioConfig
from ..data import LoadReport, Utterance, audio_info

__all__ = ["Clip", "ClipSet", "EpochSampler", "segment_batch", "SegmentBatch"]

log = logging.getLogger("core.vocoder_train")

MelSource = Callable[[Utterance], torch.Tensor]


@dataclass
class Clip:
    """A whole utterance: ``audio`` ``(L,)`` float32, ``mel`` ``(n_mels, T)`` float32."""

    id: str
    audio: torch.Tensor
    mel: torch.Tensor


class ClipSet:
    """Utterances usable for segments of ``min_frames`` mel frames; ``clip(i)`` decodes one.

    The scan reads file headers only (``soundfile.info``) and skips missing, unreadable,
    too long (``max_seconds``) and too short files with a counted reason.
    """

    def __init__(self, utterances: list[Utterance], audio: AudioConfig, mel_source: MelSource,
                 min_frames: int, max_seconds: float):
        from ..audio import mel_frames

        self.audio, self.mel_source = audio, mel_source
        self.report = LoadReport()
        self.utterances: list[Utterance] = []
        for utt in utterances:
            row = f"{utt.id} ({utt.audio_path})"
            info = audio_info(utt, self.report)
            if info is None:
                continue
            seconds = info.frames / max(info.samplerate, 1)
            if seconds > max_seconds:
                self.report.skip(row, "too long", f"{seconds:.2f} s > {max_seconds} s")
                continue
            n = -(-info.frames * audio.sample_rate // max(info.samplerate, 1))
            if info.frames <= 0 or mel_frames(n, audio) < min_frames:
                self.report.skip(row, "shorter than one segment", f"{seconds:.2f} s")
                continue
            self.utterances.append(utt)
        self.report.kept = len(self.utterances)

    def __len__(self) -> int:
        return len(self.utterances)

    def clip(self, i: int) -> Clip:
        """Utterance ``i``: its waveform (resampled to the mel rate) and its full mel; a
        waveform shorter than ``(T - 1) * hop`` samples is zero-padded to that length."""
        from ..audio import load_wav

        utt = self.utterances[i]
        wav = load_wav(utt.audio_path, self.audio.sample_rate)
        mel = self.mel_source(utt)
        need = (mel.shape[1] - 1) * self.audio.hop_length
        if wav.shape[0] < need:
            wav = torch.nn.functional.pad(wav, (0, need - wav.shape[0]))
        return Clip(utt.id, wav, mel)


class EpochSampler:
    """Batches of ``batch_size`` clip indices: a permutation per epoch from a generator
    seeded with ``(seed, epoch)``; an incomplete last batch is dropped.  ``batch(epoch,
    position)`` is a pure function, so the data position ``(epoch, position)`` is the
    whole state."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise ValueError(f"{n} usable clips is fewer than one batch of {batch_size}; lower "
                             "training.batch_size or training.segment_frames, or add data")
        self.n, self.batch_size, self.seed = n, batch_size, seed

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def batch(self, epoch: int, position: int) -> list[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n, generator=gen)
        return order[position * self.batch_size:(position + 1) * self.batch_size].tolist()


@dataclass
class SegmentBatch:
    """``audio`` ``(B, N * hop)``, ``mel`` ``(B, n_mels, N + 1)``."""

    audio: torch.Tensor
    mel: torch.Tensor

    def to(self, device) -> "SegmentBatch":
        return SegmentBatch(self.audio.to(device), self.mel.to(device))


def segment_batch(clips: list[Clip], frames: int, hop: int, generator: Optional[torch.Generator]) -> SegmentBatch:
    """One random segment of ``frames`` frames per clip (start frame uniform over the
    ``T - frames`` possible starts, drawn from ``generator``)."""
    audio, mel = [], []
    for clip in clips:
        starts = clip.mel.shape[1] - frames
        f = int(torch.randint(0, starts, (1,), generator=generator)) if starts > 0 else 0
        audio.append(clip.audio[f * hop:(f + frames) * hop])
        mel.append(clip.mel[:, f:f + frames + 1])
    return SegmentBatch(torch.stack(audio), torch.stack(mel))
