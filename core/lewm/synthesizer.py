"""The Synthesizer of a LeWM checkpoint: text -> latents (autoregressive, KV cache) ->
mel (the decoder) -> waveform (any vocoder of the project).

Built by :meth:`core.Synthesizer.from_checkpoint` when the checkpoint's
``model.family`` is ``lewm``; it is a :class:`core.sampling.synthesizer.Synthesizer`
(same text handling, speakers, long-text chunking, vocoding and :class:`Synthesis`
record) whose ``synthesize`` takes the LeWM options:

``temperature``       >= 0 (None: ``lewm.temperature`` of the checkpoint).  With the
                      ``point`` predictor head: std of the noise added to each generated
                      latent before it is fed back.  With the ``gaussian`` head: the scale
                      of the predicted std when each latent is sampled (0: the mean; 1:
                      the predicted distribution); see :mod:`core.lewm.generate`
``min_length_ratio``, ``max_length_ratio``: mel frames per text token a chunk may not
                      stop before / may not run past (None: the checkpoint's)
``seed``, ``speaker`` as for flow matching.
``prompt_audio``, ``prompt_text``, ``prompt_sample_rate``: a voice prompt (see
                      :mod:`core.lewm.prompt`): a reference clip (file path, or a 1-D
                      float array with its rate) and its transcript.  The clip is
                      resampled to the checkpoint's rate, encoded to latents by the audio
                      encoder and fed to the predictor as its prefix; the transcript is
                      read before each text chunk ("<transcript> <chunk>"), and the length
                      ratios count the chunk's tokens only.  The clip returned is the
                      continuation alone, without the prompt.  ``settings`` records
                      ``prompt_audio`` (the path, or ``"array"``), ``prompt_text`` and
                      ``prompt_sha256`` (of the resampled samples).

Stopping follows the checkpoint: its stop head, and with ``lewm.stop_on_attention`` the
attention stop too (margin ``lewm.attention_stop_margin``; :mod:`core.lewm.generate`).

The flow-matching options (steps, solver, schedule, sway, duration_scale, cfg) and
``return_trajectory`` do not apply: giving one is a ConfigError saying so.

Reproducibility: chunk ``j`` of item ``k`` draws its noise and prenet-dropout masks from
its own CPU generator seeded ``seed + k + j * 2**32``, so an item renders the same alone
(with ``seed=settings["seed"]``) as inside a batch.  ``nfe`` is the number of predictor
steps the batch took (one network evaluation each, with the KV cache).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..config import ConfigError
from ..sampling.options import check_seed
from ..sampling.synthesizer import Synthesis, Synthesizer, _AcousticRun
from ..text import TextError
from .generate import encode_prompt, generate
from .prompt import VoicePrompt, read_prompt

__all__ = ["LeWMSynthesizer", "LEWM_OPTION_NAMES", "SEED_STRIDE", "MAX_TEMPERATURE", "TEMPERATURE_HELP"]

LEWM_OPTION_NAMES = ("temperature", "min_length_ratio", "max_length_ratio", "seed", "speaker", "prompt_audio",
                     "prompt_text")
"""The ``synthesize`` options a LeWM ``Synthesis.settings`` records (with the text); a
prompt given as an array is recorded as ``"array"`` and must be passed again."""
FLOW_ONLY = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg")
SEED_STRIDE = 2 ** 32
MAX_TEMPERATURE = 10.0
TEMPERATURE_HELP = ("LeWM: with a point predictor head, the std of the noise added to each generated latent before "
                    "it is fed back (the decoded latent stays the prediction); with a Gaussian head, the scale of "
                    "the predicted std when each latent is sampled (0: the mean, 1: the predicted distribution)")
"""Help text of the LeWM ``temperature`` (CLI, studio)."""


class LeWMSynthesizer(Synthesizer):
    """See the module docstring.  ``model`` is a :class:`core.lewm.LeWMModel`."""

    @property
    def objective_name(self) -> str:
        return "lewm"

    @property
    def attention_stop(self) -> Optional[float]:
        """The attention stop's margin in tokens from the checkpoint's config (None: off)."""
        d = self.config.lewm
        return float(d.attention_stop_margin) if d.stop_on_attention else None

    def synthesize(self, text: Union[str, Sequence[str]], *, temperature: Optional[float] = None,
                   min_length_ratio: Optional[float] = None, max_length_ratio: Optional[float] = None,
                   seed: Optional[int] = None, speaker: Union[str, int, None] = None,
                   prompt_audio: Union[str, Path, np.ndarray, None] = None, prompt_text: Optional[str] = None,
                   prompt_sample_rate: Optional[int] = None, return_trajectory: bool = False,
                   steps: Optional[int] = None, solver: Optional[str] = None,
                   schedule: Optional[str] = None, sway: Optional[float] = None,
                   duration_scale: Optional[float] = None,
                   cfg: Optional[float] = None) -> Union[Synthesis, list[Synthesis]]:
        """Synthesise ``text`` (a string -> :class:`Synthesis`; a list -> a list, in ONE
        batched generation).  Raises ConfigError / TextError on a bad option or text
        before any network call."""
        total_start = time.perf_counter()
        given = {k: v for k, v in dict(steps=steps, solver=solver, schedule=schedule, sway=sway,
                                       duration_scale=duration_scale, cfg=cfg).items() if v is not None}
        if given:
            raise ConfigError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to flow-matching "
                              f"checkpoints only; a LeWM checkpoint takes: {', '.join(LEWM_OPTION_NAMES)}")
        if return_trajectory:
            raise ConfigError("return_trajectory applies to flow-matching checkpoints only (a LeWM model "
                              "generates frame by frame, there is no sampling trajectory)")
        d = self.config.lewm
        options = self._check(d.temperature if temperature is None else temperature,
                              d.min_length_ratio if min_length_ratio is None else min_length_ratio,
                              d.max_length_ratio if max_length_ratio is None else max_length_ratio)
        check_seed(seed)
        prompt = self.read_prompt(prompt_audio, prompt_text, prompt_sample_rate)
        items = [text] if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else None
        if items is None or not items or not all(isinstance(t, str) for t in items):
            raise TextError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
        sid = self.speaker_id(speaker)
        chunks, token_lists, readings = self.read_texts(items)
        flat = [c for cs in chunks for c in cs]
        prefix_tokens = None
        if prompt is not None:
            token_lists, prefix_tokens = self._with_transcript(prompt.transcript, flat)
        base_seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
        run, wav, timings = self._timed(lambda: self._generate(
            token_lists, [len(cs) for cs in chunks], base_seed, sid, options, prompt, prefix_tokens), total_start)
        out = self._assemble(items, chunks, readings, run, wav, timings, base_seed, sid, options,
                             isinstance(text, str))
        for clip in [out] if isinstance(out, Synthesis) else out:
            clip.settings.update(family="lewm", prompt_audio=None if prompt is None else prompt.source,
                                 prompt_text=None if prompt is None else prompt.transcript,
                                 prompt_sha256=None if prompt is None else prompt.sha256)
        return out

    def read_prompt(self, audio, text: Optional[str], sample_rate: Optional[int]) -> Optional[VoicePrompt]:
        """The checked voice prompt at the checkpoint's rate, or None when none is given."""
        if audio is None:
            if text is not None or sample_rate is not None:
                raise ConfigError("prompt_text / prompt_sample_rate given without prompt_audio: a voice prompt is "
                                  "a reference clip plus its transcript")
            return None
        return read_prompt(audio, text, sample_rate, self.sample_rate)

    def _with_transcript(self, transcript: str, chunks: list[str]) -> tuple[list[list[int]], list[int]]:
        """Token ids of "<transcript> <chunk>" per chunk, and the number of leading ids
        that are the transcript (its ids read alone; at least 1 id is left for the chunk)."""
        limit = self.config.text.max_chars
        joined = [f"{transcript} {c}" for c in chunks]
        for j in joined:
            if len(j) > limit:
                raise TextError(f"the prompt transcript plus a text chunk is {len(j)} characters, over the limit "
                                f"of {limit} (text.max_chars); shorten the transcript")
        read = self.front_end.read_batch([transcript, *joined])
        n_transcript = len(read[0][0])
        token_lists = [ids for ids, _ in read[1:]]
        return token_lists, [min(n_transcript, len(ids) - 1) for ids in token_lists]

    def prompt_latents(self, prompt: VoicePrompt) -> torch.Tensor:
        """The prompt's latents (P, latent_dim) on the device: its mel through the audio encoder."""
        from ..audio import mel_spectrogram

        wav = torch.from_numpy(prompt.samples)[None].to(self.device)
        mel = mel_spectrogram(wav, self.config.audio)[0]
        return encode_prompt(self.model, mel)

    @staticmethod
    def _check(temperature: float, min_ratio: float, max_ratio: float) -> dict:
        for name, value in (("temperature", temperature), ("min_length_ratio", min_ratio),
                            ("max_length_ratio", max_ratio)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"{name} must be a number, got {value!r}")
        if not 0.0 <= temperature <= MAX_TEMPERATURE:
            raise ConfigError(f"temperature must be in [0, {MAX_TEMPERATURE}], got {temperature}")
        if not 0.0 <= min_ratio < max_ratio <= 1000.0:
            raise ConfigError(f"min_length_ratio/max_length_ratio (mel frames per text token) must satisfy "
                              f"0 <= min < max <= 1000, got {min_ratio}, {max_ratio}")
        return {"temperature": float(temperature), "min_length_ratio": float(min_ratio),
                "max_length_ratio": float(max_ratio)}

    @torch.inference_mode()
    def _generate(self, token_lists: list[list[int]], n_chunks: list[int], base_seed: int, sid: int,
                  options: dict, prompt: Optional[VoicePrompt] = None,
                  prefix_tokens: Optional[list[int]] = None) -> _AcousticRun:
        """Tokens of every chunk -> mel batch, one batched generation."""
        dev = self.device
        lengths = [len(ids) for ids in token_lists]
        tokens = torch.zeros(len(token_lists), max(lengths), dtype=torch.long)
        for row, ids in enumerate(token_lists):
            tokens[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        token_mask = torch.arange(tokens.shape[1])[None] < torch.tensor(lengths)[:, None]
        speakers = torch.full((len(token_lists),), sid, dtype=torch.long, device=dev)
        generators = [torch.Generator().manual_seed(base_seed + k + j * SEED_STRIDE)
                      for k, count in enumerate(n_chunks) for j in range(count)]
        prefix = None if prompt is None else self.prompt_latents(prompt)
        with self.autocast():
            out = generate(self.model, tokens.to(dev), token_mask.to(dev), speakers, generators=generators,
                           temperature=options["temperature"], min_length_ratio=options["min_length_ratio"],
                           max_length_ratio=options["max_length_ratio"], prefix=prefix, prefix_tokens=prefix_tokens,
                           attention_stop=self.attention_stop)
        mel = out.mel.float()
        frames = out.mel_lengths.tolist()
        return _AcousticRun(mel=mel.cpu().numpy(), frames=frames, nfe=out.steps, mel_device=mel,
                            trajectory=None, times=np.zeros(0, np.float32))
