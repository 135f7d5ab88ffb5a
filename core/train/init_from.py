"""Starting a new run from another checkpoint's weights (``core train --init CHECKPOINT``,
config key ``training.init``).

A new run (step 0, fresh optimizer, scheduler and RNGs) whose model starts from the
*sampling* weights of the source, ``Checkpoint.weights``: the EMA weights of a training
checkpoint, the only weights of an export (``core export``; fp16/bf16 are upcast to the
model's dtype, exactly).  The EMA of the new run starts from the loaded weights.

What matches, by the names of the new model's state dict (parameters and buffers):

* **loaded** -- the source has the name with the same shape: copied.  This includes the
  ``mel_mean`` / ``mel_std`` buffers: the network was trained on mels normalised by the
  source's statistics, so those replace the ones measured on the new data.
* **a shape conflict** -- the source has the name with another shape: an error naming the
  entry and both shapes (nothing is guessed; change the config so the sizes agree).
* **new** -- the source lacks the name.  A new entry under a module a model lists in its
  ``ZERO_WHEN_NEW`` attribute (the output-side layer of an additive branch, e.g. the
  velocity network's ``interval_embed.mlp.2`` that MeanFlow adds to the time embedding)
  is **zeroed**, so the branch adds nothing and the new network computes what the old one
  did: a flow-matching checkpoint into a MeanFlow model gives ``u(z, r, t) = v(z, r)``
  at step 0.  Any other new entry keeps the new model's own initialisation (**fresh**;
  e.g. extra DiT blocks, which start as the identity by adaLN-Zero); they are listed.
* **unused** -- source entries the new model lacks (e.g. MeanFlow -> flow matching
  drops the interval embedding); listed.

Before any of that, the source must fit the new config: the same model family, the same
mel settings (``audio``), the same text front end (``text``, except ``max_chars``) and
vocabulary (the source's tokenizer is reused, so token ids keep their meaning), and the
same speaker list when either model has a speaker table (embedding rows are matched by
position).  A mismatch is a :class:`~core.config.ConfigError` naming the setting.

The run records where it came from (:meth:`InitSource.record`: path, SHA-256 and step of
the source, and the lists above) as a ``{"step": 0, "event": "init", "init": {...}}`` row of
``metrics.jsonl`` and in every checkpoint's ``extra["initialized_from"]``; ``config.json`` keeps
``training.init``.  Resuming such a run takes its own checkpoints; ``training.init`` then
does nothing (and is not compared by ``--resume``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..checkpoint import Checkpoint, load_checkpoint
from ..checkpoint_checks import check_fits_model, checkpoint_tokenizer
from ..config import Config, ConfigError, to_dict

__all__ = ["InitPlan", "InitSource", "plan_init", "zero_when_new", "apply_init", "read_init_source",
           "check_run_fits"]

log = logging.getLogger("core.train")

TEXT_KEYS_NOT_COMPARED = ("max_chars",)  # an input limit, not part of the vocabulary


@dataclass(frozen=True)
class InitPlan:
    """What :func:`apply_init` does with each state-dict entry (names, sorted)."""

    loaded: tuple[str, ...]
    zeroed: tuple[str, ...]
    fresh: tuple[str, ...]
    unused: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        return {"loaded": len(self.loaded), "zeroed": len(self.zeroed), "fresh": len(self.fresh),
                "unused": len(self.unused)}


@dataclass(frozen=True)
class InitSource:
    """A checked source checkpoint and the tokenizer state the new run must use."""

    checkpoint: Checkpoint
    tokenizer_state: dict[str, Any]

    def record(self, plan: Optional[InitPlan] = None) -> dict[str, Any]:
        """Where the run was initialised from: path, sha256, step (and the plan's lists)."""
        ck = self.checkpoint
        out: dict[str, Any] = {"path": str(ck.path), "sha256": ck.sha256, "step": ck.step}
        if plan is not None:
            out.update(plan.counts())
            out.update(zeroed_names=list(plan.zeroed), fresh_names=list(plan.fresh), unused_names=list(plan.unused))
        return out


def zero_when_new(model: nn.Module) -> tuple[str, ...]:
    """Full names of the modules ``model`` declares (through ``ZERO_WHEN_NEW`` attributes
    of its submodules) as the output-side layers of additive branches."""
    out = []
    for prefix, module in model.named_modules():
        for name in getattr(module, "ZERO_WHEN_NEW", ()):
            out.append(f"{prefix}.{name}" if prefix else name)
    return tuple(out)


def plan_init(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], zero: tuple[str, ...] = (),
              where: str | Path = "checkpoint") -> InitPlan:
    """Sort the entries of ``target`` (the new model's state dict) against ``source``
    (the checkpoint's weights); ``zero``: module names whose new entries are zeroed.
    Raises ConfigError for an entry present in both with different shapes."""
    for name, tensor in target.items():
        if name in source and tuple(source[name].shape) != tuple(tensor.shape):
            raise ConfigError(f"--init {where}: {name!r} has shape {tuple(source[name].shape)} in the checkpoint "
                              f"but {tuple(tensor.shape)} in the new model; make the model section agree with "
                              "the checkpoint's")
    new = [n for n in target if n not in source]
    zeroed = [n for n in new if any(n.startswith(z + ".") for z in zero)]
    loaded = sorted(n for n in target if n in source)
    if not loaded:
        raise ConfigError(f"--init {where}: the checkpoint shares no weights with the new model")
    return InitPlan(loaded=tuple(loaded), zeroed=tuple(sorted(zeroed)),
                    fresh=tuple(sorted(set(new) - set(zeroed))), unused=tuple(sorted(n for n in source if n not in target)))


@torch.no_grad()
def apply_init(model: nn.Module, source: InitSource) -> InitPlan:
    """Load ``source``'s weights into ``model`` as planned by :func:`plan_init` (module doc)."""
    ck = source.checkpoint
    state = model.state_dict()
    plan = plan_init(state, ck.weights, zero_when_new(model), ck.path)
    for name in plan.loaded:
        state[name].copy_(ck.weights[name].to(device=state[name].device, dtype=state[name].dtype))
    for name in plan.zeroed:
        state[name].zero_()
    log.info("initialised from %s (step %d): %s", ck.path, ck.step, plan.counts())
    if plan.fresh:
        log.warning("--init: %d new entries keep their initialisation: %s", len(plan.fresh),
                    ", ".join(plan.fresh[:8]) + (" ..." if len(plan.fresh) > 8 else ""))
    return plan


def _first_difference(a: dict[str, Any], b: dict[str, Any], skip: tuple[str, ...] = ()) -> Optional[tuple]:
    for key in sorted(set(a) | set(b)):
        if key not in skip and a.get(key) != b.get(key):
            return key, a.get(key), b.get(key)
    return None


def read_init_source(path: str | Path, config: Config) -> InitSource:
    """Load the checkpoint at ``path`` (never runs code) and check that it fits ``config``
    (family, mel settings, text front end); its tokenizer state is what the run uses."""
    ck = load_checkpoint(path)
    check_fits_model(ck)
    where = f"--init {ck.path}"
    if ck.config.model.family != config.model.family:
        raise ConfigError(f"{where}: the checkpoint is a {ck.config.model.family!r} model but the config's "
                          f"model.family is {config.model.family!r}")
    diff = _first_difference(ck.mel, config.audio.mel_settings())
    if diff:
        raise ConfigError(f"{where}: mel settings differ: the checkpoint has audio.{diff[0]}={diff[1]!r}, the "
                          f"config {diff[2]!r}; a network trained on other mels cannot be fine-tuned on these")
    diff = _first_difference(to_dict(ck.config.text), to_dict(config.text), TEXT_KEYS_NOT_COMPARED)
    if diff:
        raise ConfigError(f"{where}: text front ends differ: the checkpoint has text.{diff[0]}={diff[1]!r}, the "
                          f"config {diff[2]!r}; use the checkpoint's text section (token ids must keep their "
                          "meaning)")
    tokenizer = checkpoint_tokenizer(ck)
    return InitSource(checkpoint=ck, tokenizer_state=tokenizer.to_dict())


def check_run_fits(source: InitSource, config: Config, speakers: list[str]) -> None:
    """After the run's data is read: the vocabulary and speaker table agree with the source."""
    ck = source.checkpoint
    where = f"--init {ck.path}"
    if config.model.vocab_size != ck.config.model.vocab_size:
        raise ConfigError(f"{where}: vocabularies differ: the checkpoint embeds {ck.config.model.vocab_size} "
                          f"token ids, its tokenizer gives {config.model.vocab_size}")
    if max(config.model.n_speakers, ck.config.model.n_speakers) > 1 and list(speakers) != list(ck.speakers):
        raise ConfigError(f"{where}: speakers differ: the checkpoint has {ck.speakers}, the data "
                          f"{list(speakers)}; speaker embeddings are matched by position, so train on data "
                          "with the checkpoint's speakers")
