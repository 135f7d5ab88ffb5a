"""``python -m core export-onnx``: a flow-matching checkpoint as ONNX graphs (:mod:`core.onnx_export`).

Writes ``text.onnx``, ``velocity.onnx`` and ``settings.json`` into ``--out`` and prints
one JSON line (folder, files and their bytes).  ``python -m core synth --onnx DIR``
and ``core.Synthesizer.from_onnx(DIR)`` sample from the folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .types import BUNDLED_NAMES, checkpoint_arg

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, type=checkpoint_arg,
                        help=f"flow-matching checkpoint (.pt or .safetensors) or {BUNDLED_NAMES}; default: the "
                             "bundled everyday voice")
    parser.add_argument("--out", required=True, help="folder for text.onnx, velocity.onnx and settings.json")
    parser.add_argument("--int8", action="store_true",
                        help="also write int8 dynamically quantised graphs (synth --onnx DIR --precision int8)")


def run(args: argparse.Namespace) -> int:
    from . import UsageError
    from ..checkpoint import CheckpointError
    from ..onnx_export import export_onnx

    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise CheckpointError(f"{args.checkpoint}: no such checkpoint file")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out must be a folder, got the file {args.out!r}")
    try:
        folder = export_onnx(args.checkpoint, out, int8=args.int8)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    sys.stdout.write(json.dumps({"out": str(folder), "files": files}) + "\n")
    return 0
