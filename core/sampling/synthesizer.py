"""The Synthesizer: text -> mel (flow sampling) -> waveform (vocoder).

Time convention: t = 0 is Gaussian noise, t = 1 is the mel spectrogram.  Sampling
starts at ``x0 = temperature * N(0, I)`` in the model's normalised mel space, shape
``(B, n_mels, T)``, and follows the checkpoint's objective to t = 1:

* ``cfm`` / ``edm``: ``integrate(objective.velocity(net), x0, grid, solver)`` (EDM's
  velocity is its probability-flow ODE written in this time);
* ``meanflow``: average-velocity jumps ``z <- z + (t_{k+1} - t_k) u(z, t_k, t_{k+1})``
  over the grid (``steps=1``: ``x1 = x0 + u(x0, 0, 1)``).  Such a jump is already exact
  for the learned u, so there is no solver choice: the solver must be ``euler``.

Guidance (``cfg``) is applied to the network output in one batched forward, see
:mod:`core.sampling.guidance`.

Reproducibility.  Every text of a call is an *item*; item ``k`` of a list draws its
noise from its own CPU ``torch.Generator`` seeded with ``seed + k`` (a long text's
sentence chunks draw one after another from that generator), so an item renders the
same mel (to float round-off) alone with ``seed=settings["seed"]`` as inside the
batch, on any device.  ``seed=None`` picks a random seed and records it.

Long text is cut with :func:`core.text.split_sentences` into chunks of at most
``CHUNK_CHARS`` characters, all chunks of all items go through the network in one
padded, masked batch, and each item's chunk waveforms are joined with an equal-power
cross-fade of ``CROSSFADE_SECONDS``.  The item's ``mel`` is its chunk mels
concatenated along frames (so its audio is shorter than ``frames * hop`` by the
overlaps).
"""

from __future__ import annotations

import numbers
import secrets
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ..bundled import DEMO_CHECKPOINT, resolve_checkpoint  # core.bundled names the shipped voices
from ..config import Config, ConfigError, choice_error
from ..text import TextError, TextFrontEnd, TextReading, split_sentences
from ..version import __version__
from .grids import time_grid
from .guidance import model_net
from .options import OPTION, check_sampler_options, check_seed
from .solvers import integrate, nfe_per_step

__all__ = ["Synthesis", "Synthesizer", "check_options", "PRECISIONS", "CHUNK_CHARS", "CROSSFADE_SECONDS", "OPTION_NAMES",
           "DEMO_CHECKPOINT", "crossfade_join", "CHUNKINGS", "quantize_linear_int8"]

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
CHUNKINGS = ("pack", "sentence")
CHUNK_CHARS = 300
MAX_STEPS = int(OPTION["steps"].high)  # solver steps (core.sampling.options); more only costs time
CROSSFADE_SECONDS = 0.05
OPTION_NAMES = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg", "temperature", "seed", "speaker")
"""The ``synthesize`` keyword options recorded in ``Synthesis.settings`` (with the text):
``synth.synthesize(s["text"], **{k: s[k] for k in OPTION_NAMES})`` re-renders it."""

_AMP = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": None}


@dataclass
class Synthesis:
    """One synthesised text.

    audio: (samples,) float32 mono in [-1, 1] at ``sample_rate``.
    mel: (n_mels, T) float32 log-mel (the data end, t = 1).
    nfe: velocity (network) evaluations; with ``cfg > 0`` each is one forward of a
        doubled batch.
    timings: seconds for the whole call (shared by the items of a list):
        ``acoustic`` (text encoder + sampling), ``vocoder``, ``total``.
    settings: everything needed to re-render (text, the options of
        :data:`OPTION_NAMES`, vocoder name, checkpoint path + sha256, code version,
        objective, precision, number of chunks).
    trajectory: None unless asked: (N + 1, n_mels, T) float32 log-mel states at the
        grid times (``trajectory[-1]`` equals ``mel``); ``times``: the (N + 1,) grid.
    warnings: sentences for the user about the text, e.g. characters this voice has no
        symbol for (``settings["normalized_text"]`` is what the model read).
    """

    audio: np.ndarray
    sample_rate: int
    mel: np.ndarray
    nfe: int
    timings: dict[str, float]
    settings: dict[str, Any]
    trajectory: Optional[np.ndarray] = None
    times: Optional[np.ndarray] = field(default=None)
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length of ``audio`` in seconds."""
        return len(self.audio) / self.sample_rate


def crossfade_join(pieces: Sequence[np.ndarray], overlap: int) -> np.ndarray:
    """Join 1-D clips with an equal-power cross-fade (cos/sin ramps, gains squared sum
    to 1) of ``overlap`` samples, shortened where a clip is shorter than that.

    Length: ``sum(len(p)) - sum(overlaps)``.
    """
    out = np.asarray(pieces[0], dtype=np.float64)
    for piece in pieces[1:]:
        piece = np.asarray(piece, dtype=np.float64)
        n = min(overlap, len(out), len(piece))
        if n == 0:
            out = np.concatenate([out, piece])
            continue
        u = (np.arange(n) + 0.5) / n
        mid = out[len(out) - n:] * np.cos(0.5 * np.pi * u) + piece[:n] * np.sin(0.5 * np.pi * u)
        out = np.concatenate([out[:len(out) - n], mid, piece[n:]])
    return out


def quantize_linear_int8(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` layers are int8 dynamically quantised
    (weights int8 per tensor, activations quantised per call; PyTorch's
    ``quantize_dynamic``, CPU kernels only), except the small time-embedding MLPs.
    Convolutions, embeddings and norms stay float32.  ``torch.ao.quantization`` is deprecated from torch 2.10 on; this project
    pins 2.9."""
    import warnings

    if device.type != "cpu":
        raise ConfigError(f"precision int8 (dynamic quantisation) runs on the CPU only, not on {device}; "
                          "pass device='cpu' (--device cpu) or use bf16/fp16 on a GPU")
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    from ..models.layers import TimeEmbedding

    # the time embeddings' MLPs read their weight's dtype and act on (B, 256) rows only: kept
    skip = {f"{name}.{sub}" if sub else name for name, m in model.named_modules() if isinstance(m, TimeEmbedding)
            for sub, _ in m.named_modules()}
    spec = {name: default_dynamic_qconfig for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name not in skip}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=False)


def _resolve_device(device: Union[str, torch.device, None]) -> torch.device:
    from ..devices import resolve_device

    return resolve_device(device)


def check_options(steps: int, solver: str, schedule: str, sway: float, duration_scale: float, cfg: float,
                  temperature: float, seed: Optional[int]) -> "_Options":
    """Validate the sampling options of :meth:`Synthesizer.synthesize` against
    :data:`core.sampling.options.SAMPLER_OPTIONS` (no checkpoint needed); raises
    :class:`ConfigError` naming the option and its valid values or range."""
    values = check_sampler_options(dict(steps=steps, solver=solver, schedule=schedule, sway=sway,
                                        duration_scale=duration_scale, cfg=cfg, temperature=temperature))
    check_seed(seed)
    sway_coef = values["sway"] if values["schedule"] == "sway" else None
    return _Options(grid=time_grid(values["steps"], values["schedule"], sway_coef), values=values)


@dataclass
class _Options:
    """Checked options: the (steps + 1,) CPU time grid and the option values by name."""

    grid: Tensor
    values: dict[str, Any]


class Synthesizer:
    """Text to speech with a trained model, its objective and a vocoder.

    Build with :meth:`from_checkpoint`.  ``model`` is a :class:`core.models.TTSModel`
    (eval mode, on ``device``); ``speakers`` the checkpoint's speaker names (index = id);
    ``precision`` runs the network under bf16/fp16 autocast (the ODE state stays float32),
    or, ``int8`` (CPU only), with every linear layer dynamically quantised to int8
    (:func:`quantize_linear_int8`).
    """

    def __init__(self, model: torch.nn.Module, objective, config: Config, tokenizer, speakers: Sequence[str],
                 vocoder, device: Union[str, torch.device, None] = None, checkpoint_path: Optional[str] = None,
                 checkpoint_sha256: str = "", precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise choice_error("precision", precision, PRECISIONS)
        from ..vocoders import check_compatible

        check_compatible(vocoder, config.audio)
        self.device = _resolve_device(device)
        self.model = model.eval().to(self.device)
        if precision == "int8":
            self.model = quantize_linear_int8(self.model, self.device)
        self.objective = objective
        self.config = config
        self.front_end = TextFrontEnd(config.text, tokenizer)
        self.speakers = [str(s) for s in speakers]
        self.vocoder = vocoder.to(self.device)
        self.checkpoint_path = None if checkpoint_path is None else str(checkpoint_path)
        self.checkpoint_sha256 = checkpoint_sha256
        self.precision = precision
        self.sample_rate = int(config.audio.sample_rate)
        self.backend = "torch"  # "onnx" for from_onnx: recorded in every Synthesis.settings

    @classmethod
    def from_checkpoint(cls, path: Union[str, Path, None] = None, device: Union[str, torch.device, None] = None,
                        vocoder: Any = "auto", precision: str = "fp32") -> "Synthesizer":
        """Load a checkpoint (EMA weights) and a vocoder.  A LeWM checkpoint
        (``model.family`` ``lewm``) gives a :class:`core.lewm.synthesizer.LeWMSynthesizer`,
        a Synthesizer whose ``synthesize`` takes the LeWM options.

        path: a ``.pt`` / ``.safetensors`` checkpoint, or a bundled voice's name
            (``everyday``, ``meanflow``, ``grammar``: :mod:`core.bundled`); None: the default
            bundled voice ``assets/demo_everyday.pt`` (an error when it is not there).
        device: ``None`` / ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...
        vocoder: a spec for :func:`core.vocoders.load_vocoder` (``auto``, ``griffin-lim``,
            a Vocos folder, ``hub:<id>``) or a ready :class:`core.vocoders.Vocoder`; its mel
            settings must match the checkpoint's.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast of the network), or ``int8``
            (CPU: linear layers dynamically quantised).
        """
        from ..checkpoint import CheckpointError, load_checkpoint
        from ..checkpoint_checks import check_fits_model, checkpoint_tokenizer
        from ..families import build_model
        from ..vocoders import Vocoder, load_vocoder

        if precision not in PRECISIONS:
            raise choice_error("precision", precision, PRECISIONS)
        if path is None:
            if not DEMO_CHECKPOINT.is_file():
                raise CheckpointError(f"no checkpoint given and the bundled demo voice {DEMO_CHECKPOINT} is not "
                                      "there; pass a checkpoint path (e.g. <run>/checkpoints/step_*.pt)")
            path = DEMO_CHECKPOINT
        try:
            path = resolve_checkpoint(path)
        except FileNotFoundError as exc:
            raise CheckpointError(str(exc)) from None
        dev = _resolve_device(device)
        ck = load_checkpoint(path)
        cfg = ck.config
        check_fits_model(ck)  # shapes, speakers: before any memory is allocated for the model
        tokenizer = checkpoint_tokenizer(ck)
        model = build_model(cfg)
        try:
            model.load_state_dict(ck.weights)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the model its config describes: "
                                  f"{str(exc).splitlines()[0]}") from None
        voc = vocoder if isinstance(vocoder, Vocoder) else load_vocoder(vocoder, cfg.audio, dev)
        if cfg.model.family == "lewm":
            from ..lewm.synthesizer import LeWMSynthesizer

            return LeWMSynthesizer(model, None, cfg, tokenizer, ck.speakers, voc, dev, checkpoint_path=str(ck.path),
                                   checkpoint_sha256=ck.sha256, precision=precision)
        from ..flow import build_objective

        return cls(model, build_objective(cfg.objective), cfg, tokenizer, ck.speakers, voc, dev,
                   checkpoint_path=str(ck.path), checkpoint_sha256=ck.sha256, precision=precision)

    @classmethod
    def from_onnx(cls, folder: Union[str, Path], vocoder: Any = "auto", threads: Optional[int] = None,
                  precision: str = "fp32") -> "Synthesizer":
        """A CPU Synthesizer over an ONNX export folder (``python -m core export-onnx``):
        the text side and the velocity network run in onnxruntime, everything between
        them (grids, solvers, guidance, the objective, chunking, vocoder) is the code the
        torch backend runs, so the same seed gives the same mel to float round-off.
        ``threads``: onnxruntime intra-op threads (default: torch's thread count).
        ``precision``: ``fp32``, or ``int8`` for the graphs ``export-onnx --int8`` adds."""
        from ..flow import build_objective
        from ..text import tokenizer_from_dict
        from ..vocoders import Vocoder, load_vocoder
        from .onnx_backend import OnnxTTSModel, read_onnx_settings

        settings = read_onnx_settings(folder)
        cfg = Config.from_dict(settings["config"])
        model = OnnxTTSModel(folder, settings, cfg, threads=threads, precision=precision)
        tokenizer = tokenizer_from_dict(settings["tokenizer"])
        voc = vocoder if isinstance(vocoder, Vocoder) else load_vocoder(vocoder, cfg.audio, "cpu")
        synth = cls(model, build_objective(cfg.objective), cfg, tokenizer, settings["speakers"], voc, "cpu",
                    checkpoint_path=str(folder), checkpoint_sha256=settings["checkpoint_sha256"])
        synth.backend = "onnx"
        synth.precision = precision  # the graphs' own; nothing for the Synthesizer to quantise or autocast
        return synth

    # ------------------------------------------------------------------ options
    @property
    def objective_name(self) -> str:
        return self.config.objective.name

    def autocast(self):
        """The autocast context of ``precision`` on the device (a no-op for fp32)."""
        amp = _AMP[self.precision]
        return torch.autocast(self.device.type, dtype=amp) if amp is not None else nullcontext()

    def speaker_id(self, speaker: Union[str, int, None]) -> int:
        """Speaker id from a name, an index or None (the first speaker)."""
        n = self.config.model.n_speakers
        named = [s for s in self.speakers if s]
        known = (", ".join(named) + f" (or an index 0..{n - 1})") if named else f"an index 0..{n - 1}"
        if speaker is None:
            return 0
        if isinstance(speaker, str):
            if speaker in self.speakers and speaker:
                return self.speakers.index(speaker)
            if speaker.strip().isdigit():
                speaker = int(speaker)
            else:
                raise choice_error("speaker", speaker, [known])
        if isinstance(speaker, bool) or not isinstance(speaker, numbers.Integral) or not 0 <= speaker < n:
            raise choice_error("speaker", speaker, [known])
        return int(speaker)

    def speaker_name(self, sid: int) -> Union[str, int]:
        name = self.speakers[sid] if sid < len(self.speakers) else ""
        return name if name else sid

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, text: Union[str, Sequence[str]], *, steps: Optional[int] = None,
                   solver: Optional[str] = None, schedule: Optional[str] = None, sway: Optional[float] = None,
                   duration_scale: Optional[float] = None, cfg: Optional[float] = None,
                   temperature: Optional[float] = None, seed: Optional[int] = None,
                   speaker: Union[str, int, None] = None,
                   return_trajectory: bool = False, chunking: str = "pack") -> Union[Synthesis, list[Synthesis]]:
        """Synthesise ``text`` (a string -> :class:`Synthesis`; a list -> a list, in ONE
        padded, masked batch).

        steps: solver steps (>= 1) on the ``schedule`` grid (``linear``, ``power``,
            ``sway``, ``epss``); ``sway`` is the sway coefficient in [-1, 1] (used by the
            ``sway`` schedule only).  solver: ``euler``, ``midpoint``, ``heun``, ``rk4``
            (NFE = steps x 1, 2, 2, 4).  duration_scale > 0 (> 1 speaks slower).
            cfg >= 0: guidance strength (0 = none).  temperature >= 0 scales the
            initial noise.  seed: see the module docstring.  speaker: name or index
            (None: the first).  chunking: ``pack`` (default: sentences packed into
            chunks of up to ``CHUNK_CHARS`` characters) or ``sentence`` (one chunk per
            sentence, as :meth:`stream` renders by default).  Raises ConfigError /
            TextError on a bad option or text before any network call.

        A sampler option left at None takes the checkpoint's ``config.sampling`` value
        (:class:`core.config.SamplingConfig`; unless the run set them: 10 Euler steps on
        the sway grid with sway -1, duration scale 1, no guidance, temperature 1).
        """
        total_start = time.perf_counter()
        plan = self._plan(text, dict(steps=steps, solver=solver, schedule=schedule, sway=sway,
                                     duration_scale=duration_scale, cfg=cfg, temperature=temperature),
                          seed, speaker, chunking)
        items, chunks, readings, opts = plan.items, plan.chunks, plan.readings, plan.opts
        token_lists, sid, base_seed = plan.token_lists, plan.sid, plan.base_seed

        run, wav, timings = self._timed(lambda: self._acoustic(
            token_lists, [len(cs) for cs in chunks], base_seed, sid, opts, bool(return_trajectory)), total_start)
        return self._assemble(items, chunks, readings, run, wav, timings, base_seed, sid,
                              {**opts.values, "chunking": chunking}, isinstance(text, str))

    def stream(self, text: str, **options) -> Iterator[np.ndarray]:
        """Float32 audio pieces of ``text`` as they are ready (sentence by sentence, each
        vocoded in overlapping windows); their concatenation is ``synthesize(text,
        chunking=..., same options).audio`` to float round-off.  Options: those of
        :meth:`synthesize` (no list, no trajectory) plus ``window_frames`` and
        ``context_frames``; see :func:`core.sampling.streaming.stream_synthesis`."""
        from .streaming import stream_synthesis

        return stream_synthesis(self, text, **options)

    def _timed(self, acoustic: Callable[[], "_AcousticRun"], total_start: float):
        """Run ``acoustic()`` (text -> mel batch) then the vocoder; returns (run, waveforms,
        timings in seconds: acoustic, vocoder, total since ``total_start``)."""
        acoustic_start = time.perf_counter()
        run = acoustic()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        vocoder_start = time.perf_counter()
        wav = self._vocode(run.mel_device, run.frames)
        end = time.perf_counter()
        return run, wav, {"acoustic": vocoder_start - acoustic_start, "vocoder": end - vocoder_start,
                          "total": end - total_start}

    def read_texts(self, items: Sequence[str], pack: bool = True
                   ) -> tuple[list[list[str]], list[list[int]], list[TextReading]]:
        """Each text cut into chunks (sentences packed up to CHUNK_CHARS when ``pack``),
        every chunk normalised and tokenised once (the length limits apply per chunk).
        Returns (chunks per text, token ids per chunk, one joined reading per text);
        an empty or over-long text is a TextError.  Both model families read text here."""
        limit = self.config.text.max_chars
        chunks: list[list[str]] = []
        for item in items:
            if not item.strip():
                raise TextError("text is empty; give at least one word to speak")
            if len(item) > limit:
                raise TextError(f"text is {len(item)} characters long, over the limit of {limit} "
                                "(text.max_chars); shorten it or synthesise it in parts")
            chunks.append(split_sentences(item, min(CHUNK_CHARS, limit), pack=pack))
        read = self.front_end.read_batch([c for cs in chunks for c in cs])
        readings, row = [], 0
        for cs in chunks:
            readings.append(TextReading.join([r for _, r in read[row:row + len(cs)]]))
            row += len(cs)
        return chunks, [ids for ids, _ in read], readings

    def _plan(self, text: Union[str, Sequence[str]], options: dict[str, Any], seed: Optional[int],
              speaker: Union[str, int, None], chunking: str) -> "_Plan":
        """Checked options (None: the checkpoint's default), speaker id, seed, and the text
        cut into chunks, normalised and tokenised; every error before any network call."""
        d = self.config.sampling
        values = {k: getattr(d, k) if v is None else v for k, v in options.items()}
        items = [text] if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else None
        if items is None or not items or not all(isinstance(t, str) for t in items):
            raise TextError(f"text must be a string or a non-empty list of strings, got {type(text).__name__}")
        opts = check_options(**values, seed=seed)
        if self.objective_name == "meanflow" and values["solver"] != "euler":
            raise ConfigError(f"a MeanFlow checkpoint samples by average-velocity jumps, which need no ODE "
                              f"solver: solver must be 'euler', got {values['solver']!r}")
        if chunking not in CHUNKINGS:
            raise choice_error("chunking", chunking, CHUNKINGS)
        sid = self.speaker_id(speaker)
        chunks, token_lists, readings = self.read_texts(items, pack=chunking == "pack")
        base_seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
        return _Plan(items=items, chunks=chunks, token_lists=token_lists, readings=readings, opts=opts, sid=sid,
                     base_seed=base_seed)

    @torch.inference_mode()
    def _acoustic(self, token_lists: list[list[int]], n_chunks: list[int], base_seed: int, sid: int,
                  opts: _Options, return_trajectory: bool) -> "_AcousticRun":
        """Tokens of every chunk -> denormalised mel batch (+ trajectory); see synthesize."""
        cond = self._condition(token_lists, sid, opts.values["duration_scale"])
        frames = cond.mel_mask.sum(1).tolist()  # one host sync, before the loop
        x0 = self._initial_noise(frames, n_chunks, base_seed, opts.values["temperature"], cond.mel_mask.shape[1])
        states, nfe, grid = self._sample(cond, x0, opts, return_trajectory)
        mel = self.model.denormalize_mel(states[-1].float())
        traj_mel = self.model.denormalize_mel(states.float()).cpu().numpy() if return_trajectory else None
        return _AcousticRun(mel=mel.cpu().numpy(), frames=frames, nfe=nfe, mel_device=mel,
                            trajectory=traj_mel, times=grid.float().cpu().numpy())

    @torch.inference_mode()
    def _condition(self, token_lists: list[list[int]], sid: int, duration_scale: float):
        """The sampling :class:`~core.models.tts.Conditioning` of a padded batch of token lists."""
        dev, model = self.device, self.model
        lengths = [len(ids) for ids in token_lists]
        tokens = torch.zeros(len(token_lists), max(lengths), dtype=torch.long)
        for row, ids in enumerate(token_lists):
            tokens[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        token_mask = torch.arange(tokens.shape[1])[None] < torch.tensor(lengths)[:, None]
        tokens, token_mask = tokens.to(dev), token_mask.to(dev)
        speakers = torch.full((len(token_lists),), sid, dtype=torch.long, device=dev)
        with self.autocast():
            return model.inference_conditioning(tokens, token_mask, speakers, duration_scale=duration_scale)

    @torch.inference_mode()
    def _sample(self, cond, x0: Tensor, opts: _Options, return_trajectory: bool) -> tuple[Tensor, int, Tensor]:
        """Noise x0 (B, n_mels, T) at t = 0 -> (states (K, B, n_mels, T) in network space,
        the last at t = 1 (K = 1 unless ``return_trajectory``), nfe, the grid)."""
        model, solver, cfg = self.model, opts.values["solver"], opts.values["cfg"]
        grid = opts.grid.to(self.device)
        with self.autocast():
            net = model_net(model, cond, cfg)
            if self.objective_name == "meanflow":
                from ..flow import meanflow_sample, meanflow_trajectory

                u = self.objective.average_velocity(net)
                states = meanflow_trajectory(u, x0, grid) if return_trajectory else meanflow_sample(u, x0, grid)[None]
                nfe = grid.numel() - 1
            else:
                out = integrate(self.objective.velocity(net), x0, grid, solver, return_trajectory=return_trajectory)
                states = out.states if return_trajectory else out[None]
                nfe = (grid.numel() - 1) * nfe_per_step(solver)
        return states, nfe, grid

    def _vocode(self, mel: Tensor, frames: list[int]) -> list[np.ndarray]:
        """Waveform (frames[r] * hop,) of each row of ``mel`` (rows, n_mels, width).
        Rows of equal length share one vocoder call; none is padded, so a row vocodes
        exactly as it would alone (a padded batch would change the end of short rows)."""
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(frames)
        for n in sorted(set(frames)):
            rows = [r for r, f in enumerate(frames) if f == n]
            wav = self.vocoder.decode(mel[rows, :, :n]).float().cpu().numpy()
            for i, r in enumerate(rows):
                out[r] = wav[i]
        return out

    def _initial_noise(self, frames: list[int], n_chunks: list[int], base_seed: int, temperature: float,
                       width: int) -> Tensor:
        """x0 (rows, n_mels, width): item k's chunks drawn in order from a CPU generator
        seeded ``base_seed + k``, times ``temperature``; padded frames 0."""
        n_mels = self.config.audio.n_mels
        x0 = torch.zeros(len(frames), n_mels, width)
        row = 0
        for k, count in enumerate(n_chunks):
            gen = torch.Generator().manual_seed(base_seed + k)
            for _ in range(count):
                x0[row, :, :frames[row]] = torch.randn(n_mels, frames[row], generator=gen)
                row += 1
        return (x0 * temperature).to(self.device)

    def _assemble(self, items: list[str], chunks: list[list[str]], readings: list, run: "_AcousticRun",
                  wav: list[np.ndarray],
                  timings: dict[str, float], base_seed: int, sid: int, options: dict[str, Any],
                  single: bool) -> Union[Synthesis, list[Synthesis]]:
        from ..audio import peak_safe

        overlap = int(round(CROSSFADE_SECONDS * self.sample_rate))
        out, row = [], 0
        for k, item in enumerate(items):
            rows = range(row, row + len(chunks[k]))
            row += len(chunks[k])
            pieces = [wav[r] for r in rows]
            mel = np.concatenate([run.mel[r, :, :run.frames[r]] for r in rows], axis=1)
            traj = None
            if run.trajectory is not None:
                traj = np.concatenate([run.trajectory[:, r, :, :run.frames[r]] for r in rows], axis=2)
            settings = {"text": item, **options, "seed": base_seed + k, "speaker": self.speaker_name(sid),
                        "vocoder": self.vocoder.name, "checkpoint": self.checkpoint_path,
                        "checkpoint_sha256": self.checkpoint_sha256, "code_version": __version__,
                        "objective": self.objective_name, "precision": self.precision, "backend": self.backend,
                        "chunks": len(chunks[k]),
                        "normalized_text": readings[k].normalized, "unknown_symbols": list(readings[k].unknown)}
            warning = readings[k].warning()
            out.append(Synthesis(audio=peak_safe(crossfade_join(pieces, overlap)), sample_rate=self.sample_rate,
                                 mel=mel.astype(np.float32), nfe=run.nfe, timings=dict(timings), settings=settings,
                                 trajectory=None if traj is None else traj.astype(np.float32),
                                 times=None if traj is None else run.times,
                                 warnings=[warning] if warning else []))
        return out[0] if single else out


@dataclass
class _Plan:
    """A checked synthesis request: the items, their chunks (texts), the chunks' token
    lists (all items, in order), each item's reading, options, speaker id, base seed."""

    items: list[str]
    chunks: list[list[str]]
    token_lists: list[list[int]]
    readings: list
    opts: _Options
    sid: int
    base_seed: int


@dataclass
class _AcousticRun:
    """Batch result of the acoustic stage: mel (rows, n_mels, width) log-mel (numpy, and
    ``mel_device`` on the device), frames per row, nfe, trajectory (N + 1, rows, n_mels,
    width) or None, times (N + 1,)."""

    mel: np.ndarray
    frames: list[int]
    nfe: int
    mel_device: Tensor
    trajectory: Optional[np.ndarray]
    times: np.ndarray
