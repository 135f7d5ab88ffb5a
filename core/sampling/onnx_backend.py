"""The ONNX backend: the two exported graphs (:mod:`core.onnx_export`) behind the part of
the :class:`core.models.TTSModel` interface the Synthesizer samples through.

:class:`OnnxTTSModel` answers ``inference_conditioning`` (text graph, then the shared
:func:`core.models.tts.aligned_conditioning`), ``predict`` (velocity graph) and the mel
(de)normalisation, taking and returning torch tensors, so grids, solvers, guidance and
the objectives' velocities are the very code the torch backend runs.  onnxruntime runs
on the CPU with ``torch.get_num_threads()`` threads (what ``--threads`` set).

Time convention: t = 0 is noise, t = 1 the (normalised) mel; tensors (B, n_mels, T).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import CheckpointError
from ..models.tts import Conditioning, aligned_conditioning

__all__ = ["OnnxTTSModel", "read_onnx_settings", "onnx_session", "ONNX_PRECISIONS"]

ONNX_PRECISIONS = ("fp32", "int8")


def read_onnx_settings(folder: Union[str, Path]) -> dict[str, Any]:
    """``settings.json`` of an export folder, checked; CheckpointError naming what is wrong."""
    from ..onnx_export import ONNX_FORMAT, SETTINGS_FILE

    folder = Path(folder)
    path = folder / SETTINGS_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such ONNX export folder (make one with python -m core export-onnx)")
    if not path.is_file():
        raise CheckpointError(f"{folder}: not an ONNX export: {SETTINGS_FILE} is missing")
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable settings: {exc}") from None
    if not isinstance(settings, dict) or settings.get("format") != ONNX_FORMAT:
        raise CheckpointError(f"{path}: export format {settings.get('format') if isinstance(settings, dict) else None!r}"
                              f", this code reads format {ONNX_FORMAT}; export the checkpoint again")
    for name in ("text", "velocity"):
        graph = folder / settings["graphs"][name]["file"]
        if not graph.is_file():
            raise CheckpointError(f"{folder}: the {name} graph {graph.name} is missing")
    return settings


def onnx_session(path: Union[str, Path], threads: Optional[int] = None):
    """A CPU onnxruntime session of one graph, ``threads`` intra-op threads (default:
    torch's current thread count), one inter-op thread, full graph optimisation."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("the ONNX backend needs onnxruntime: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _np(x: Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy().astype(dtype, copy=False))


class OnnxTTSModel:
    """The sampling interface of :class:`core.models.TTSModel` over an export folder.

    ``precision``: ``fp32`` or ``int8`` (the graphs ``export-onnx --int8`` adds).
    ``config`` (the :class:`core.config.ModelConfig`), ``n_mels``, ``meanflow``,
    ``speaker_embedding`` (None for a single-speaker model, else a marker), ``mel_mean``
    and ``mel_std`` (0-d tensors) mirror the torch model; ``eval()`` and ``to(device)``
    exist so the Synthesizer treats both alike (only the CPU is supported).
    """

    def __init__(self, folder: Union[str, Path], settings: dict[str, Any], config,
                 threads: Optional[int] = None, precision: str = "fp32") -> None:
        folder = Path(folder)
        self.folder = folder
        self.config = config.model
        self.n_mels = int(config.audio.n_mels)
        self.meanflow = config.objective.name == "meanflow"
        self.speaker_embedding = True if config.model.n_speakers > 1 else None
        self.mel_mean = torch.tensor(float(settings["mel_mean"]))
        self.mel_std = torch.tensor(float(settings["mel_std"]))
        graphs = settings["graphs"]
        if precision not in ONNX_PRECISIONS:
            from ..config import choice_error

            raise choice_error("precision (ONNX backend)", precision, ONNX_PRECISIONS)
        suffix = "_int8" if precision == "int8" else ""
        if f"velocity{suffix}" not in graphs:
            raise CheckpointError(f"{folder}: no int8 graphs in this export; make them with "
                                  "python -m core export-onnx --int8")
        self.text_inputs = list(graphs["text"]["inputs"])
        self.velocity_inputs = list(graphs["velocity"]["inputs"])
        self.text_session = onnx_session(folder / graphs[f"text{suffix}"]["file"], threads)
        self.velocity_session = onnx_session(folder / graphs[f"velocity{suffix}"]["file"], threads)

    # the nn.Module calls the Synthesizer makes
    def eval(self) -> "OnnxTTSModel":
        return self

    def to(self, device: Union[str, torch.device]) -> "OnnxTTSModel":
        if torch.device(device).type != "cpu":
            raise CheckpointError(f"the ONNX backend runs on the CPU only (onnxruntime's CPU provider), "
                                  f"not on {device}; use the torch backend for a GPU")
        return self

    def normalize_mel(self, mel: Tensor) -> Tensor:
        """Log-mel (B, n_mels, T) -> network space."""
        return (mel - self.mel_mean) / self.mel_std

    def denormalize_mel(self, x: Tensor) -> Tensor:
        """Network space (B, n_mels, T) -> log-mel."""
        return x * self.mel_std + self.mel_mean

    # ------------------------------------------------------------------ the two graphs
    def encode(self, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor] = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Text graph: (hidden (B, L, D), log_durations (B, L), speaker_emb (B, S))."""
        feeds = {"tokens": _np(tokens, np.int64), "token_mask": _np(token_mask, np.bool_)}
        if "speakers" in self.text_inputs:
            if speakers is None:
                raise ValueError(f"this model has {self.config.n_speakers} speakers: pass speakers (B,) ids")
            feeds["speakers"] = _np(speakers, np.int64)
        hidden, log_d, spk = self.text_session.run(None, feeds)
        return torch.from_numpy(hidden), torch.from_numpy(log_d), torch.from_numpy(spk)

    def inference_conditioning(self, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor] = None,
                               duration_scale: float = 1.0, durations: Optional[Tensor] = None) -> Conditioning:
        """As :meth:`core.models.TTSModel.inference_conditioning`."""
        hidden, log_d, spk = self.encode(tokens, token_mask, speakers)
        return aligned_conditioning(hidden, log_d, spk, token_mask.cpu(), duration_scale,
                                    None if durations is None else durations.cpu())

    def predict(self, x: Tensor, t: Tensor, cond: Conditioning, r: Optional[Tensor] = None,
                drop: Optional[Tensor] = None, attention: Optional[str] = None) -> Tensor:
        """As :meth:`core.models.TTSModel.predict` (``attention`` is ignored: the graph has
        its own); float32 out, padded frames zero."""
        b = x.shape[0]

        def batch(v: Union[Tensor, float]) -> np.ndarray:
            v = torch.as_tensor(v, dtype=torch.float32)
            return _np(v.expand(b) if v.dim() == 0 else v, np.float32)

        if r is not None and not self.meanflow:
            raise ValueError("this is not a MeanFlow model: it takes no second time r")
        feeds = {"x": _np(x, np.float32), "t": batch(t), "cond": _np(cond.cond, np.float32),
                 "mel_mask": _np(cond.mel_mask, np.bool_),
                 "drop": _np(cond.drop if drop is None else drop, np.bool_)}
        if "speaker" in self.velocity_inputs:
            feeds["speaker"] = _np(cond.speaker_emb, np.float32)
        if "r" in self.velocity_inputs:
            feeds["r"] = batch(t if r is None else r)
        (out,) = self.velocity_session.run(None, feeds)
        return torch.from_numpy(out).to(x.dtype)
