"""``python -m core export``: a training checkpoint's EMA weights for sampling (:mod:`core.export`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import choice_error
from ..export import DTYPES, LEWM_INFERENCE_OPTIONS, export_checkpoint
from ..sampling.options import OPTION_ORDER

BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="training checkpoint to export (.pt or .safetensors)")
    parser.add_argument("--out", required=True, help="exported file (.pt or .safetensors)")
    parser.add_argument("--dtype", default="fp16", help=f"weight precision: {', '.join(DTYPES)} (default fp16)")
    parser.add_argument("--sampling", nargs="+", metavar="NAME=VALUE", default=None,
                        help="recommended inference defaults to store in the voice, e.g. --sampling steps=10 cfg=2 "
                             f"(flow-matching names: {', '.join(OPTION_ORDER)}; LeWM names: "
                             f"{', '.join(LEWM_INFERENCE_OPTIONS)}; options left out keep the source's values)")


def parse_sampling(items: list[str]) -> dict:
    """``["steps=10", "cfg=2"]`` -> ``{"steps": 10, "cfg": 2.0}`` (typed by the option;
    unknown names and bad values are errors listing the valid ones).  The LeWM names
    (:data:`core.export.LEWM_INFERENCE_OPTIONS`) are typed here and checked against the
    checkpoint's family by the export."""
    from ..config import ConfigError
    from ..sampling.options import OPTION, check_option

    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise ConfigError(f"--sampling takes NAME=VALUE, got {item!r}")
        if name in out:
            raise ConfigError(f"--sampling names {name} twice")
        if name in LEWM_INFERENCE_OPTIONS:
            # typed only: a name both families have (temperature) has other bounds in each,
            # so the export checks it against the checkpoint's own family
            out[name] = _lewm_value(name, text)
            continue
        if name not in OPTION:
            raise choice_error("inference option", name, dict.fromkeys((*OPTION_ORDER, *LEWM_INFERENCE_OPTIONS)))
        kind = OPTION[name].kind
        try:
            value = text if kind is str else float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {text!r}") from None
        out[name] = check_option(name, value)
    return out


def _lewm_value(name: str, text: str):
    from ..config import ConfigError

    if name == "stop_on_attention":
        if text.lower() not in BOOLEANS:
            raise ConfigError(f"stop_on_attention must be one of {', '.join(BOOLEANS)}, got {text!r}")
        return BOOLEANS[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from . import UsageError

    if args.dtype not in DTYPES:
        raise UsageError(str(choice_error("dtype", args.dtype, DTYPES)))
    if Path(args.out).suffix not in (".pt", ".safetensors"):
        raise UsageError(f"--out must end in .pt or .safetensors, got {args.out!r}")
    sampling = parse_sampling(args.sampling) if args.sampling else None
    out = export_checkpoint(args.checkpoint, args.out, args.dtype, sampling=sampling)
    info = {"out": str(out), "bytes": out.stat().st_size, "source": str(args.checkpoint), "dtype": args.dtype}
    if sampling:
        info["sampling"] = sampling
    sys.stdout.write(json.dumps(info) + "\n")
    return 0
