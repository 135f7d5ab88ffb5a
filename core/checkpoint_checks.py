"""Checks on a checkpoint's contents, made before anything is built from them.

A checkpoint file is input from anywhere (an upload in the studio, a download), so every
field is checked for its type and range, and the weights against the model the config
describes, before a module is allocated: a hostile or damaged file raises
:class:`~core.checkpoint.CheckpointError` naming the file and the field, never a raw
``TypeError`` deep inside, and never makes the process allocate more than the file holds.

* :func:`check_fields` — the metadata (``config`` is checked by :class:`core.config.Config`).
* :func:`check_tensors` — a weights dict: string keys, floating-point tensors that own
  their bytes (no stride tricks that make a 1-byte storage look like gigabytes), all finite.
* :func:`check_fits_model` — the weights against the model the config describes, built on
  PyTorch's ``meta`` device (shapes only, no memory) and the speaker list against the
  speaker table.
* :func:`checkpoint_tokenizer` — the saved tokenizer, against the vocabulary.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["check_fields", "check_tensors", "check_fits_model", "checkpoint_tokenizer"]


def _error(path: Path, message: str) -> Exception:
    from .checkpoint import CheckpointError

    return CheckpointError(f"{path}: {message}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_fields(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """The checked ``step``, ``speakers``, ``mel``, ``extra``, ``code_version`` and
    ``train_state`` of a payload (defaults for the optional ones left out)."""
    step = payload.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not math.isfinite(step) \
            or step != int(step) or step < 0:
        raise _error(path, f"field 'step' must be an integer >= 0, got {step!r}")
    speakers = payload.get("speakers", [])
    if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
        bad = speakers if not isinstance(speakers, list) else next(s for s in speakers if not isinstance(s, str))
        raise _error(path, f"field 'speakers' must be a list of strings, got {_kind(bad)} {str(bad)[:60]!r}")
    out: dict[str, Any] = {"step": int(step), "speakers": list(speakers)}
    for name in ("mel", "extra"):
        value = payload.get(name)
        if value is not None and not isinstance(value, dict):
            raise _error(path, f"field {name!r} must be an object (dict), got {_kind(value)}")
        out[name] = dict(value or {})
    version = payload.get("code_version", "")
    if not isinstance(version, str):
        raise _error(path, f"field 'code_version' must be a string, got {_kind(version)}")
    out["code_version"] = version
    state = payload.get("train_state")
    if state is not None and not isinstance(state, dict):
        raise _error(path, f"field 'train_state' must be an object (dict), got {_kind(state)}")
    out["train_state"] = state
    return out


def check_tensors(path: Path, field: str, state: Any) -> dict[str, torch.Tensor]:
    """Check one weights dict (``field`` names it in errors) and return it."""
    if not isinstance(state, dict) or not state:
        raise _error(path, f"checkpoint holds no weights (field {field!r} is {_kind(state)}"
                           f"{', empty' if isinstance(state, dict) else ''})")
    for key, value in state.items():
        if not isinstance(key, str):
            raise _error(path, f"field {field!r} has a non-string key {key!r}")
        if not isinstance(value, torch.Tensor):
            raise _error(path, f"{field}[{key!r}] is a {_kind(value)}, not a tensor")
        if not value.is_floating_point():
            raise _error(path, f"{field}[{key!r}] has dtype {str(value.dtype).replace('torch.', '')}; "
                               "weights must be floating point")
        # a saved tensor owns its bytes: a stride-0 or overlapping view of a small storage
        # would turn into a huge allocation the first time anything computes on it
        if not value.is_contiguous() or \
                value.numel() * value.element_size() > value.untyped_storage().nbytes():
            raise _error(path, f"{field}[{key!r}] of shape {tuple(value.shape)} does not own its data "
                               "(a strided view); re-save the checkpoint")
    for key, value in state.items():
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise _error(path, f"{field}[{key!r}] holds {bad} non-finite value(s) (NaN or inf); "
                               "the weights are damaged, use an earlier checkpoint")
    return state


class _ShapesOnly(TorchFunctionMode):
    """Used inside ``torch.device("meta")``: skip random initialisation, and a tensor times
    a number is that tensor (a meta tensor has a shape and no values).  PyTorch runs those
    ops on meta tensors through Python reference kernels whose first use imports
    torch._dynamo (seconds; 10-25 s on a busy 2-core CPU); a shape check needs none of it.
    Torch-function modes are per thread, so other threads are not affected."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RANDOM_FILL:
            return args[0] if args else kwargs["tensor"]
        if func in _RANDOM_FACTORIES:
            return torch.empty(*args, **{k: v for k, v in kwargs.items() if k in ("dtype", "device", "requires_grad")})
        if func in _SCALE and len(args) == 2 and isinstance(args[1], (int, float)) and isinstance(args[0], torch.Tensor):
            return args[0]
        return func(*args, **kwargs)


_INIT = torch.nn.init
_RANDOM_FILL = {torch.Tensor.uniform_, torch.Tensor.normal_, _INIT.uniform_, _INIT.normal_, _INIT.trunc_normal_,
                _INIT.kaiming_uniform_, _INIT.kaiming_normal_, _INIT.xavier_uniform_, _INIT.xavier_normal_}
_RANDOM_FACTORIES = {torch.randn, torch.rand}
_SCALE = {torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.mul, torch.mul}


def check_fits_model(ck) -> None:
    """Raise CheckpointError unless ``ck``'s weights (and raw weights, when present) are
    exactly the state of the model its config describes and its speaker names fit the
    speaker table.  Allocates no model memory."""
    from .families import build_model

    cfg = ck.config
    with torch.device("meta"), _ShapesOnly():
        expected = build_model(cfg).state_dict()
    for field, state in (("weights", ck.weights), ("model_weights", ck.model_weights)):
        if state is None:
            continue
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            what = f"lacks {missing[0]!r}" if missing else f"has {unexpected[0]!r}"
            raise _error(ck.path, f"field {field!r} does not fit the model its config describes: it {what} "
                                  f"({len(missing)} missing, {len(unexpected)} unexpected)")
        for key, want in expected.items():
            if tuple(state[key].shape) != tuple(want.shape):
                raise _error(ck.path, f"{field}[{key!r}] has shape {tuple(state[key].shape)} but the config "
                                      f"(model / audio sections) describes {tuple(want.shape)}")
    n = cfg.model.n_speakers
    if len(ck.speakers) > n:
        raise _error(ck.path, f"field 'speakers' names {len(ck.speakers)} speakers but the model has "
                              f"{n} (model.n_speakers)")


def checkpoint_tokenizer(ck):
    """The tokenizer saved in ``ck.extra['tokenizer']`` (else the one ``config.text``
    names), checked against the model's vocabulary; CheckpointError when it does not fit."""
    from .text import TextError, build_tokenizer, tokenizer_from_dict

    state = ck.extra.get("tokenizer")
    field = "extra.tokenizer" if state is not None else "config.text"
    try:
        tokenizer = tokenizer_from_dict(state) if state is not None else build_tokenizer(ck.config.text)
    except TextError as exc:
        raise _error(ck.path, f"field {field!r} is invalid: {exc}") from None
    if tokenizer.vocab_size > ck.config.model.vocab_size:
        raise _error(ck.path, f"field {field!r} has {tokenizer.vocab_size} token ids but the model embeds "
                              f"{ck.config.model.vocab_size} (model.vocab_size)")
    return tokenizer
