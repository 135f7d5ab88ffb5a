"""``python -m core`` command line: one subcommand per job.

Every subcommand validates its arguments where they enter and, on bad input, prints one
line ``error: ...`` to stderr and exits with status 2 (no traceback).  Each subcommand's
argument parsing lives in this package (``core/cli/<name>.py``) and registers through
:data:`SUBCOMMANDS`; each module provides
``add_arguments(parser)`` and ``run(args) -> int``, imported only when chosen so that
``python -m core --help`` stays fast.

Every subcommand takes ``--threads N`` (default ``auto``: see :mod:`core.threads`), set
before any work starts, so a command never runs torch at a thread count that
collapses when another process shares the cores.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

__all__ = ["main", "UsageError", "SUBCOMMANDS"]


class UsageError(Exception):
    """Bad user input detected after parsing; reported as one line, exit status 2."""


# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("core.cli.synth", "synthesise text to a WAV file with a checkpoint"),
    "train": ("core.cli.train", "train a model from a config (also under torchrun)"),
    "eval": ("core.cli.evaluate", "evaluate a checkpoint on sentences: WER, DNSMOS, MCD, RTF"),
    "bench": ("core.cli.bench", "benchmark sampling speed (JSON out)"),
    "corpus": ("core.cli.corpus", "build the flite demo corpus"),
    "export": ("core.cli.export", "export a training checkpoint's EMA weights (fp16) for sampling"),
    "export-onnx": ("core.cli.export_onnx", "export a flow-matching checkpoint as ONNX graphs for onnxruntime"),
    "vocoder": ("core.cli.vocoder", "train a Vocos vocoder on this project's mel; export it as a Vocos folder"),
}


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        raise SystemExit(2)


def _available() -> dict[str, tuple[str, str]]:
    """Subcommands whose module exists in this checkout."""
    out = {}
    for name, (module, help_) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            out[name] = (module, help_)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="Flow-matching TTS: train, sample, evaluate, benchmark.")
    from ..version import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(_available()) + "}", parser_class=_Parser)
    for name, (module, help_) in _available().items():
        p = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(module).add_arguments(p)
        if not any("--threads" in a.option_strings for a in p._actions):
            p.add_argument("--threads", default=None,
                           help="CPU threads for torch: a number, or auto (default; $FLOWTTS_THREADS, else 1 on a "
                                "machine with 2 cores or fewer, else the cores less one, at most 8)")
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    from ..checkpoint import CheckpointError
    from ..config import ConfigError

    try:
        from ..threads import configure_threads

        configure_threads(getattr(args, "threads", None))
        return int(module.run(args) or 0)
    except (UsageError, ConfigError, CheckpointError, FileNotFoundError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except ValueError as exc:  # option validation inside core (TextError, VocoderError, ...)
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
