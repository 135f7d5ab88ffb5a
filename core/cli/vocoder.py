"""``python -m core vocoder {train, export}``.

    python -m core vocoder train --data MANIFEST --out DIR [--config PRESET|JSON]
        [--init VOCOS_FOLDER|hub:ID] [--acoustic CHECKPOINT] [--resume] [--steps N] [--threads N]
    python -m core vocoder export --checkpoint DIR/checkpoints/vocoder_XXXXXXXX.pt --out FOLDER [--dtype fp16]

Bad input is one line on stderr and exit status 2 (:mod:`core.cli`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

ACTIONS = ("train", "export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="{" + ",".join(ACTIONS) + "}", parser_class=type(p))
    tr = sub.add_parser("train", help="train a Vocos vocoder on this project's mel", description=(
        "Train a Vocos generator (vocos' VocosBackbone + ISTFTHead) on this project's mel: reconstruction "
        "losses first, then adversarial fine-tuning with vocos' discriminators."))
    tr.add_argument("--data", help="training manifest (.csv/.jsonl) or LJSpeech folder (required unless --resume)")
    tr.add_argument("--val-data", help="held-out manifest for validation (default: 5%% of --data)")
    tr.add_argument("--out", required=True, help="run folder (config.json, metrics.jsonl, checkpoints/, vocos/, samples/)")
    tr.add_argument("--config", default="cpu", help="preset (tiny, cpu, vocos) or a JSON file (default: cpu)")
    tr.add_argument("--init", help="start from a Vocos folder or hub:<owner/name> (its size replaces the preset's)")
    tr.add_argument("--acoustic", help="TTS checkpoint: train on the mels it generates for the training utterances")
    tr.add_argument("--resume", action="store_true",
                    help="continue from the newest checkpoint in --out (its stored config is used)")
    tr.add_argument("--steps", type=int, help="override training.steps (also when resuming)")
    tr.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    tr.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    tr.add_argument("--no-progress", action="store_true", help="no console progress bar")
    tr.set_defaults(_action=_train)
    ex = sub.add_parser("export", help="write a training checkpoint's generator as a Vocos folder",
                        description="Write config.yaml + pytorch_model.bin (loadable by the Vocos folder loader "
                                    "and vocos.Vocos) from a vocoder training checkpoint.")
    ex.add_argument("--checkpoint", required=True, help="a <run>/checkpoints/vocoder_XXXXXXXX.pt file")
    ex.add_argument("--out", required=True, help="folder to write")
    ex.add_argument("--dtype", default="fp16", help="weights dtype: fp16 (default, half the size) or fp32")
    ex.set_defaults(_action=_export)


def run(args: argparse.Namespace) -> int:
    from . import UsageError

    if getattr(args, "action", None) is None:
        raise UsageError(f"python -m core vocoder needs an action; valid: {', '.join(ACTIONS)}")
    return args._action(args)


def _train(args: argparse.Namespace) -> int:
    import torch

    from . import UsageError
    from ..vocoder_train.config import load_config, merge
    from ..vocoder_train.loop import VocoderTrainer

    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if not args.data and not args.resume:
        raise UsageError("--data is required (a manifest .csv/.jsonl or an LJSpeech folder)")
    for name in ("data", "val_data", "acoustic"):
        value = getattr(args, name)
        if value and not Path(value).exists():
            raise UsageError(f"--{name.replace('_', '-')} {value}: no such file or folder")
    if args.init and not args.init.startswith("hub:") and not Path(args.init).is_dir():
        raise UsageError(f"--init {args.init}: not a Vocos folder; give a folder with config.yaml + "
                         "pytorch_model.bin or hub:<owner/name>")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available here; use cpu")
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    training = {}
    if args.data:
        training["data"] = str(args.data)
    if args.val_data:
        training["val_data"] = str(args.val_data)
    if training:
        cfg = merge(cfg, {"training": training})
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trainer = VocoderTrainer(cfg, args.out, init=args.init, acoustic=args.acoustic, resume=args.resume,
                             steps=args.steps, device=args.device, progress=not args.no_progress)
    path = trainer.fit()
    print(f"checkpoint: {path}\nvocos folder: {Path(args.out) / 'vocos'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..config import ConfigError, choice_error
    from ..vocoder_train.config import VocoderConfig
    from ..vocoder_train.loop import load_training_checkpoint
    from ..vocoder_train.model import EXPORT_DTYPES, build_generator, export_vocos_folder

    if args.dtype not in EXPORT_DTYPES:
        raise choice_error("--dtype", args.dtype, EXPORT_DTYPES)
    ck = load_training_checkpoint(args.checkpoint)
    cfg = VocoderConfig.from_dict(ck["config"])
    gen = build_generator(cfg.audio, cfg.generator)
    try:
        gen.load_state_dict(ck["learner"]["generator"])
    except (RuntimeError, KeyError) as exc:
        raise ConfigError(f"{args.checkpoint}: generator weights do not fit its config: {exc}") from None
    folder = export_vocos_folder(gen, cfg.audio, cfg.generator, args.out, args.dtype)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
    print(f"vocos folder: {folder} ({size:.1f} MB, step {ck['step']}, {args.dtype})")
    return 0
