"""Streaming synthesis: audio pieces of one text as soon as each is ready.

``stream_synthesis(synth, text, ...)`` (``Synthesizer.stream``) renders what
``synth.synthesize(text, chunking=chunking, same options)`` renders, in this order:

1. the text side of every chunk in one batch (cheap), so the frame counts are known and
   the initial noise is drawn exactly as ``synthesize`` draws it (one CPU generator
   seeded ``seed``, the chunks one after another);
2. per chunk (``chunking="sentence"``, the default: one sentence each), the flow
   sampling of that chunk alone (the batch of one is the padded batch's row without
   padding, so equal to float round-off), then its mel vocoded in windows of
   ``window_frames``, twice that, four times that ... frames, each with
   ``context_frames`` frames of mel either side that are vocoded and cut away, so a
   window's samples equal the whole-mel vocoding's wherever the vocoder's receptive
   field fits in the context (Vocos: ``3 + 3 * layers`` frames of ConvNeXt plus 2 of
   the inverse STFT, 29 for the 8-layer 24 kHz model; Griffin-Lim's phase iterations
   could reach further, but its windows measured within 1e-5 of whole-mel vocoding);
   ``window_frames=None`` vocodes a chunk whole;
3. the chunk waveforms joined by the same equal-power cross-fade as
   :func:`core.sampling.synthesizer.crossfade_join`, computed incrementally: the last
   ``CROSSFADE_SECONDS`` of a chunk are held back until the next chunk's start is there.

Only the peak handling differs: ``synthesize`` scales a whole clip whose peak exceeds 1
down to peak 1, which a stream cannot know in advance, so a stream clips each sample to
[-1, 1] instead (the two agree whenever the clip's peak is at most 1).
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

import numpy as np
import torch

from ..config import ConfigError
from .synthesizer import CROSSFADE_SECONDS

__all__ = ["stream_synthesis", "CrossfadeStream", "WINDOW_FRAMES", "CONTEXT_FRAMES"]

WINDOW_FRAMES = 64
"""Mel frames of a chunk's first streamed window (0.68 s at 24 kHz / hop 256); the next
windows double in size."""
CONTEXT_FRAMES = 32
"""Mel frames of context vocoded and cut away on each side of a window."""


class CrossfadeStream:
    """:func:`~core.sampling.synthesizer.crossfade_join` fed piece by piece, in parts.

    Call :meth:`start` with each piece's full length (known before its samples), then
    :meth:`feed` its samples in order, each call returning the output samples that are
    final; :meth:`finish` returns the rest.  The concatenated outputs equal
    ``crossfade_join(pieces, overlap)`` (float64 arithmetic, the same ramps).
    """

    def __init__(self, overlap: int) -> None:
        self.overlap = int(overlap)
        self.out_len = 0           # length of the joined output so far (pieces started)
        self.emitted = 0           # output samples handed out
        self.pending = np.zeros(0)  # output[emitted : base + pos], not handed out yet
        self.mix = np.zeros(0)     # the previous output's tail that this piece fades into
        self.n = 0                 # cross-fade length with the previous piece
        self.pos = 0               # samples of the current piece fed
        self.length = 0            # the current piece's length

    def start(self, length: int) -> None:
        """Begin a piece of ``length`` samples (the previous one must be fed completely)."""
        if self.pos != self.length:
            raise ValueError(f"the previous piece got {self.pos} of its {self.length} samples")
        n = min(self.overlap, self.out_len, int(length)) if self.out_len else 0
        keep = len(self.pending) - n
        self.mix, self.pending = self.pending[keep:], self.pending[:keep]
        self.n, self.pos, self.length = n, 0, int(length)
        self.out_len += int(length) - n

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Next samples of the current piece -> the output samples now final (float64)."""
        seg = np.asarray(samples, dtype=np.float64).copy()
        if self.pos + len(seg) > self.length:
            raise ValueError(f"piece of {self.length} samples fed {self.pos + len(seg)}")
        m = max(0, min(self.n - self.pos, len(seg)))
        if m:
            u = (np.arange(self.pos, self.pos + m) + 0.5) / self.n
            seg[:m] = self.mix[self.pos:self.pos + m] * np.cos(0.5 * np.pi * u) + seg[:m] * np.sin(0.5 * np.pi * u)
        self.pos += len(seg)
        self.pending = np.concatenate([self.pending, seg])
        # the last `overlap` samples may still be faded into the next piece
        final = self.out_len - min(self.overlap, self.out_len)
        ready = max(0, min(final - self.emitted, len(self.pending)))
        out, self.pending = self.pending[:ready], self.pending[ready:]
        self.emitted += ready
        return out

    def finish(self) -> np.ndarray:
        """The held-back rest once no piece follows."""
        out, self.pending = self.pending, np.zeros(0)
        self.emitted += len(out)
        return out


def _windows(frames: int, window: Optional[int], context: int) -> list[tuple[int, int, int, int]]:
    """(a, b, a0, b0): emit frames [a, b) from vocoding [a0, b0) = [a - context, b + context]
    clipped to the chunk.  Window sizes double (window, 2 window, 4 window, ...): the first
    piece comes early, and the context vocoded twice stays a small part of a long chunk."""
    if window is None or window >= frames:
        return [(0, frames, 0, frames)]
    out, a, size = [], 0, window
    while a < frames:
        b = min(a + size, frames)
        out.append((a, b, max(0, a - context), min(frames, b + context)))
        a, size = b, 2 * size
    return out


def _safe(x: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0).astype(np.float32)


def stream_synthesis(synth, text: str, *, steps: Optional[int] = None, solver: Optional[str] = None,
                     schedule: Optional[str] = None, sway: Optional[float] = None,
                     duration_scale: Optional[float] = None, cfg: Optional[float] = None,
                     temperature: Optional[float] = None, seed: Optional[int] = None,
                     speaker: Union[str, int, None] = None, chunking: str = "sentence",
                     window_frames: Optional[int] = WINDOW_FRAMES,
                     context_frames: int = CONTEXT_FRAMES) -> Iterator[np.ndarray]:
    """Yield float32 mono pieces (1-D, in [-1, 1], at ``synth.sample_rate``) of ``text``;
    see the module docstring.  Options as :meth:`Synthesizer.synthesize` (one string
    only); ``seed=None`` draws one (pass a seed to be able to re-render).  Options and
    text are checked by this call, before any network call; the work happens as the
    pieces are taken."""
    if synth.config.model.family != "flow":
        raise ConfigError(f"streaming covers the flow-matching family, not {synth.config.model.family!r}; "
                          "use synthesize")
    if not isinstance(text, str):
        raise ConfigError(f"stream takes one text (a string), got {type(text).__name__}; "
                          "use synthesize for a list")
    if window_frames is not None and (isinstance(window_frames, bool) or not isinstance(window_frames, int)
                                      or window_frames < 1):
        raise ConfigError(f"window_frames must be None or an integer >= 1, got {window_frames!r}")
    if isinstance(context_frames, bool) or not isinstance(context_frames, int) or context_frames < 0:
        raise ConfigError(f"context_frames must be an integer >= 0, got {context_frames!r}")
    plan = synth._plan(text, dict(steps=steps, solver=solver, schedule=schedule, sway=sway,
                                  duration_scale=duration_scale, cfg=cfg, temperature=temperature),
                       seed, speaker, chunking)
    return _generate(synth, plan, window_frames, context_frames)


def _generate(synth, plan, window: Optional[int], context: int) -> Iterator[np.ndarray]:
    hop = synth.vocoder.hop_length
    with torch.inference_mode():
        cond = synth._condition(plan.token_lists, plan.sid, plan.opts.values["duration_scale"])
        frames = cond.mel_mask.sum(1).tolist()
        x0 = synth._initial_noise(frames, [len(plan.token_lists)], plan.base_seed,
                                  plan.opts.values["temperature"], cond.mel_mask.shape[1])
    join = CrossfadeStream(int(round(CROSSFADE_SECONDS * synth.sample_rate)))
    for row, n in enumerate(frames):
        with torch.inference_mode():
            one = _row(cond, row, n)
            states, _, _ = synth._sample(one, x0[row:row + 1, :, :n], plan.opts, False)
            mel = synth.model.denormalize_mel(states[-1].float())
        join.start(n * hop)
        for a, b, a0, b0 in _windows(n, window, context):
            with torch.inference_mode():
                wav = synth.vocoder.decode(mel[:, :, a0:b0]).float().cpu().numpy()[0]
            piece = join.feed(wav[(a - a0) * hop:(b - a0) * hop])
            if len(piece):
                yield _safe(piece)
    rest = join.finish()
    if len(rest):
        yield _safe(rest)


def _row(cond, row: int, frames: int):
    """Row ``row`` of a batched Conditioning, cut to its ``frames`` real frames."""
    from ..models.tts import Conditioning

    return Conditioning(cond=cond.cond[row:row + 1, :frames], mel_mask=cond.mel_mask[row:row + 1, :frames],
                        drop=cond.drop[row:row + 1], speaker_emb=cond.speaker_emb[row:row + 1],
                        attn=cond.attn[row:row + 1, :, :frames], durations=cond.durations[row:row + 1])
