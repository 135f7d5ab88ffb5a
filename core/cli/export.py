"""``python -m core export``: a training checkpoint's EMA weights for sampling (:mod:`core.export`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import choice_error
from ..export import DTYPES, export_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="training checkpoint to export (.pt or .safetensors)")
    parser.add_argument("--out", required=True, help="exported file (.pt or .safetensors)")
    parser.add_argument("--dtype", default="fp16", help=f"weight precision: {', '.join(DTYPES)} (default fp16)")


def run(args: argparse.Namespace) -> int:
    from . import UsageError

    if args.dtype not in DTYPES:
        raise UsageError(str(choice_error("dtype", args.dtype, DTYPES)))
    if Path(args.out).suffix not in (".pt", ".safetensors"):
        raise UsageError(f"--out must end in .pt or .safetensors, got {args.out!r}")
    out = export_checkpoint(args.checkpoint, args.out, args.dtype)
    info = {"out": str(out), "bytes": out.stat().st_size, "source": str(args.checkpoint), "dtype": args.dtype}
    sys.stdout.write(json.dumps(info) + "\n")
    return 0
