"""Checkpoint files: weights + full resolved config + mel settings + step + code version.

Two formats, both read by :func:`load_checkpoint`, neither ever unpickles objects:

* ``.pt`` — ``torch.save`` of a dict holding only tensors, numbers, strings, lists and
  dicts, read back with ``torch.load(weights_only=True)``.  Training checkpoints also
  carry ``train_state`` (optimizer, scheduler, EMA, RNG and data-order state) for resume.
* ``.safetensors`` — inference weights; the JSON header metadata carries the rest.

Writes are atomic: a temporary file in the same folder, fsync, then ``os.replace``, so
a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .checkpoint_checks import check_fields, check_tensors
from .config import Config, ConfigError
from .version import __version__

__all__ = ["CheckpointError", "Checkpoint", "load_checkpoint", "save_checkpoint", "file_sha256",
           "atomic_write", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "flowtts-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint could not be loaded; the message names the file and the problem."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    ``weights`` are the weights to sample with (the EMA weights when training kept
    them); ``model_weights`` the raw (non-EMA) weights when they differ, else ``None``.
    """

    path: Path
    config: Config
    weights: dict[str, torch.Tensor]
    step: int = 0
    speakers: list[str] = field(default_factory=list)
    code_version: str = ""
    sha256: str = ""
    mel: dict[str, Any] = field(default_factory=dict)
    model_weights: Optional[dict[str, torch.Tensor]] = None
    train_state: Optional[dict[str, Any]] = None
    extra: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then atomically move the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_checkpoint(path: str | Path, *, config: Config, weights: dict[str, torch.Tensor], step: int = 0,
                    speakers: Optional[list[str]] = None, model_weights: Optional[dict[str, torch.Tensor]] = None,
                    train_state: Optional[dict[str, Any]] = None, extra: Optional[dict[str, Any]] = None) -> Path:
    """Write a checkpoint atomically; the suffix picks the format (``.pt`` or ``.safetensors``).

    ``extra`` must be JSON-serialisable.  ``train_state`` (``.pt`` only) may hold
    tensors, numbers, strings, lists, tuples and dicts.
    """
    path = Path(path)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "mel": config.audio.mel_settings(),
        "step": int(step),
        "speakers": list(speakers or []),
        "code_version": __version__,
        "extra": extra or {},
    }
    if path.suffix == ".safetensors":
        if train_state is not None:
            raise CheckpointError(f"{path}: training state can only be saved in a .pt checkpoint")
        from safetensors.torch import save_file

        tensors = {f"weights.{k}": v for k, v in _cpu_state(weights).items()}
        if model_weights is not None:
            tensors.update({f"model_weights.{k}": v for k, v in _cpu_state(model_weights).items()})
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"flowtts": json.dumps(header)}))
    elif path.suffix == ".pt":
        payload = dict(header)
        payload["weights"] = _cpu_state(weights)
        if model_weights is not None:
            payload["model_weights"] = _cpu_state(model_weights)
        if train_state is not None:
            payload["train_state"] = train_state
        atomic_write(path, lambda tmp: torch.save(payload, tmp))
    else:
        raise CheckpointError(f"{path}: unknown checkpoint suffix {path.suffix!r}; valid: .pt, .safetensors")
    return path


def _read_pt(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except RecursionError:
        raise CheckpointError(f"{path}: not a readable checkpoint: its contents are nested too deeply") from None
    except Exception as exc:  # UnpicklingError, RuntimeError (bad zip), EOFError ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Unsupported global" in str(exc) or "GLOBAL" in str(exc) or "Unsupported operand" in str(exc):
            raise CheckpointError(f"{path}: refused to load: the file holds pickled Python objects, "
                                  f"which could run code ({text[:200]})") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {text[:200]}") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a checkpoint of this project (top level is {type(payload).__name__})")
    return payload


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt?): {exc}") from None
    if "flowtts" not in meta:
        raise CheckpointError(f"{path}: not a checkpoint of this project (no '{FORMAT_NAME}' metadata)")
    try:
        payload = json.loads(meta["flowtts"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: checkpoint metadata is not valid JSON") from None
    except RecursionError:
        raise CheckpointError(f"{path}: checkpoint metadata JSON is nested too deeply") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: checkpoint metadata must be a JSON object, got {type(payload).__name__}")
    payload["weights"] = {k[len("weights."):]: v for k, v in tensors.items() if k.startswith("weights.")}
    mw = {k[len("model_weights."):]: v for k, v in tensors.items() if k.startswith("model_weights.")}
    if mw:
        payload["model_weights"] = mw
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint without executing any pickled code.

    Raises :class:`CheckpointError` naming the file for a missing file, a pickle with
    code in it, a truncated or corrupt file, a file of another project, or a field of
    the wrong type or range (see :mod:`core.checkpoint_checks`: non-tensor, non-float,
    strided or non-finite weights too).  Whether the weights fit the model the config
    describes is :func:`core.checkpoint_checks.check_fits_model`'s job (the Synthesizer
    and the trainer call it before building anything).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    if path.suffix == ".safetensors":
        payload = _read_safetensors(path)
    else:
        payload = _read_pt(path)
    if payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a checkpoint of this project (no '{FORMAT_NAME}' format marker; "
                              f"top-level keys: {', '.join(map(str, list(payload)[:8]))})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r} is newer than this code "
                              f"understands ({FORMAT_VERSION}); update the project")
    if not isinstance(payload.get("config"), dict):
        value = payload.get("config")
        raise CheckpointError(f"{path}: field 'config' must be an object (dict), got "
                              f"{'null' if value is None else type(value).__name__}")
    try:
        config = Config.from_dict(payload["config"])
    except (ConfigError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: field 'config' is invalid: {str(exc)[:300]}") from None
    fields = check_fields(path, payload)
    weights = check_tensors(path, "weights", payload.get("weights"))
    model_weights = payload.get("model_weights")
    if model_weights is not None:
        model_weights = check_tensors(path, "model_weights", model_weights)

    def move(state):
        return None if state is None else {k: v.to(map_location) for k, v in state.items()}

    return Checkpoint(
        path=path,
        config=config,
        weights=move(weights),
        step=fields["step"],
        speakers=fields["speakers"],
        code_version=fields["code_version"],
        sha256=file_sha256(path),
        mel=fields["mel"] or config.audio.mel_settings(),
        model_weights=move(model_weights),
        train_state=fields["train_state"],
        extra=fields["extra"],
    )
