"""``python -m core export-onnx``: a flow-matching checkpoint as two ONNX graphs + settings.

The cut.  Sampling is a loop of network calls around shared code (time grid, solver,
guidance, the objective's velocity), so only the two networks become graphs and the
loop stays the Python of :mod:`core.sampling`, the same for both backends:

``text.onnx``  tokens (B, L) int64, token_mask (B, L) bool [, speakers (B,) int64]
               -> hidden (B, L, text_dim), log_durations (B, L), speaker_emb (B, S)
               (the text encoder and the duration predictor; S = speaker_dim, zeros for
               a single-speaker model).
``velocity.onnx``  x (B, n_mels, T), t (B,), cond (B, T, text_dim), mel_mask (B, T) bool,
               drop (B,) bool [, speaker (B, S)] [, r (B,)] -> out (B, n_mels, T)
               (``TTSModel.predict``: the objective's raw output; ``r`` only for a
               MeanFlow model, ``speaker`` only for a multi-speaker one).  The batch
               axis is dynamic, so the CFG call (2B rows, ``drop`` True on the second
               half) is the same graph.

Rounding the predicted durations and expanding the hidden features to frames is
:func:`core.models.tts.aligned_conditioning`, run on the host by both backends: it is
cheap, data-dependent in shape (the frame count), and given durations go through the
same function.  Batch, token and frame axes are dynamic.

``settings.json``: format version, the checkpoint's resolved config (mel settings in
``config.audio``, the sampling defaults in ``config.sampling``), the tokenizer, the
speaker names, the mel normalisation (``mel_mean``, ``mel_std``), the checkpoint's
SHA-256 and step, and the graphs' input names.

Exporting needs the ``onnx`` extra (``onnx``, ``onnxscript``); running the graphs needs
only ``onnxruntime``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError

__all__ = ["ONNX_FORMAT", "TEXT_GRAPH", "VELOCITY_GRAPH", "SETTINGS_FILE", "OPSET", "export_onnx"]

ONNX_FORMAT = 1
TEXT_GRAPH = "text.onnx"
VELOCITY_GRAPH = "velocity.onnx"
SETTINGS_FILE = "settings.json"
OPSET = 18


class TextSide(nn.Module):
    """The exported text side of a :class:`core.models.TTSModel` (see the module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor] = None):
        m = self.model
        mask = token_mask.to(torch.bool)
        if m.speaker_embedding is not None:
            spk = m.speaker_embedding(speakers)
            use = spk
        else:
            spk = torch.zeros(tokens.shape[0], m.config.speaker_dim, dtype=torch.float32, device=tokens.device)
            use = None
        hidden = m.text_encoder(tokens, mask, use, "math")
        log_d = m.duration_predictor(hidden, mask, use)
        return hidden, log_d, spk


class VelocitySide(nn.Module):
    """The exported velocity network: ``TTSModel.predict`` with explicit tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, mel_mask: Tensor, drop: Tensor,
                speaker: Optional[Tensor] = None, r: Optional[Tensor] = None) -> Tensor:
        return self.model.velocity_net(x, t, cond, mel_mask, speaker, r=r, drop=drop, attention="math")


def text_inputs(model: nn.Module) -> list[str]:
    """Input names of the text graph for ``model``."""
    return ["tokens", "token_mask"] + (["speakers"] if model.speaker_embedding is not None else [])


def velocity_inputs(model: nn.Module) -> list[str]:
    """Input names of the velocity graph for ``model``."""
    names = ["x", "t", "cond", "mel_mask", "drop"]
    if model.speaker_embedding is not None:
        names.append("speaker")
    if model.meanflow:
        names.append("r")
    return names


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    # the TorchScript exporter: the modules are plain tensor code with shape-only
    # branches, and it takes named dynamic axes directly
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def quantize_linear_graph(src: Path, dst: Path) -> None:
    """Write ``src`` with its linear layers (MatMul / Gemm nodes with a weight initialiser)
    dynamically quantised to int8 by onnxruntime, like ``precision="int8"`` in torch:
    attention's activation-by-activation products and the time embeddings' MLPs stay
    float32."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src)).graph
    weights = {init.name for init in graph.initializer}
    nodes = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1
             and n.input[1] in weights and "time_embed" not in n.name and "interval_embed" not in n.name]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to run shape pre-processing first, on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, nodes_to_quantize=nodes)
    finally:
        root.setLevel(level)


def export_onnx(checkpoint: Union[str, Path, None], out: Union[str, Path], int8: bool = False) -> Path:
    """Write ``text.onnx``, ``velocity.onnx`` and ``settings.json`` for a flow-matching
    checkpoint (None: the bundled demo voice) into folder ``out``; returns the folder.
    ``int8``: also ``text_int8.onnx`` and ``velocity_int8.onnx``, their linear layers
    dynamically quantised to int8 by onnxruntime (:func:`quantize_linear_graph`) (``Synthesizer.from_onnx(folder,
    precision="int8")``).

    Raises :class:`CheckpointError` for an unreadable checkpoint or a LeWM one (its
    generator is not a flow-matching sampler), ``ImportError`` with the install line when
    the ``onnx`` package is missing.
    """
    import importlib.util

    if importlib.util.find_spec("onnx") is None:  # torch's exporter serialises through it
        raise ImportError("exporting to ONNX needs the onnx package: pip install -e '.[onnx]'")
    from .checkpoint import load_checkpoint
    from .checkpoint_checks import check_fits_model, checkpoint_tokenizer
    from .families import build_model
    from .bundled import DEMO_CHECKPOINT

    path = Path(checkpoint) if checkpoint is not None else DEMO_CHECKPOINT
    ck = load_checkpoint(path)
    cfg = ck.config
    if cfg.model.family != "flow":
        raise CheckpointError(f"{path}: model family {cfg.model.family!r}: ONNX export covers the flow-matching "
                              "family only")
    check_fits_model(ck)
    tokenizer = checkpoint_tokenizer(ck)
    model = build_model(cfg)
    model.load_state_dict(ck.weights)
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    b, n_tok, n_fr = 2, 7, 23  # example sizes; every one of these axes is dynamic
    multi = model.speaker_embedding is not None
    tokens = torch.randint(1, cfg.model.vocab_size, (b, n_tok))
    token_mask = torch.ones(b, n_tok, dtype=torch.bool)
    token_mask[1, -2:] = False
    speakers = torch.zeros(b, dtype=torch.long)
    t_in = text_inputs(model)
    t_args = (tokens, token_mask, speakers) if multi else (tokens, token_mask)
    _export(TextSide(model), t_args, out / TEXT_GRAPH, t_in, ["hidden", "log_durations", "speaker_emb"],
            {"tokens": {0: "batch", 1: "tokens"}, "token_mask": {0: "batch", 1: "tokens"},
             "speakers": {0: "batch"}, "hidden": {0: "batch", 1: "tokens"},
             "log_durations": {0: "batch", 1: "tokens"}, "speaker_emb": {0: "batch"}})

    v_in = velocity_inputs(model)
    example = {"x": torch.randn(b, model.n_mels, n_fr), "t": torch.full((b,), 0.5),
               "cond": torch.randn(b, n_fr, cfg.model.text_dim),
               "mel_mask": torch.arange(n_fr)[None] < torch.tensor([n_fr, n_fr - 3])[:, None],
               "drop": torch.tensor([False, True]), "speaker": torch.randn(b, cfg.model.speaker_dim),
               "r": torch.full((b,), 0.25)}
    kwargs = {name: example[name] for name in v_in}
    # positional order of VelocitySide.forward, with None for the inputs this model has not
    args = tuple(kwargs.get(name) for name in ("x", "t", "cond", "mel_mask", "drop", "speaker", "r"))
    while args[-1] is None:
        args = args[:-1]
    frames = {"x": {0: "batch", 2: "frames"}, "t": {0: "batch"}, "cond": {0: "batch", 1: "frames"},
              "mel_mask": {0: "batch", 1: "frames"}, "drop": {0: "batch"}, "speaker": {0: "batch"},
              "r": {0: "batch"}, "out": {0: "batch", 2: "frames"}}
    _export(VelocitySide(model), args, out / VELOCITY_GRAPH, v_in, ["out"],
            {k: v for k, v in frames.items() if k in v_in or k == "out"})

    graphs = {"text": {"file": TEXT_GRAPH, "inputs": t_in}, "velocity": {"file": VELOCITY_GRAPH, "inputs": v_in}}
    if int8:
        for name in ("text", "velocity"):
            file = graphs[name]["file"].replace(".onnx", "_int8.onnx")
            quantize_linear_graph(out / graphs[name]["file"], out / file)
            graphs[f"{name}_int8"] = {"file": file, "inputs": graphs[name]["inputs"]}
    settings = {
        "format": ONNX_FORMAT,
        "family": "flow",
        "objective": cfg.objective.name,
        "checkpoint": path.name,
        "checkpoint_sha256": ck.sha256,
        "step": ck.step,
        "mel_mean": float(model.mel_mean),
        "mel_std": float(model.mel_std),
        "speakers": [str(s) for s in ck.speakers],
        "tokenizer": tokenizer.to_dict(),
        "graphs": graphs,
        "opset": OPSET,
        "config": cfg.to_dict(),
    }
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return out
