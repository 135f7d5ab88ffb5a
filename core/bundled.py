"""The voices shipped in ``assets/``: the one place that names them.

A fresh clone plays them with no download.  The first entry of :data:`BUNDLED_VOICES`
is the default voice (:data:`DEMO_CHECKPOINT`): ``Synthesizer.from_checkpoint()`` with no path, ``python -m core
synth`` / ``eval`` without ``--checkpoint``, and the studio's first catalog entry.  The
studio offers every bundled voice whose file is present (so its listening tests can pit
them against each other out of the box); a missing file is left out, never an error.

``--checkpoint NAME`` on the command line (and ``resolve_checkpoint``) accepts a bundled
voice's name instead of a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

__all__ = ["BundledVoice", "BUNDLED_VOICES", "ASSETS", "DEMO_CHECKPOINT", "bundled_voice", "resolve_checkpoint"]

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclass(frozen=True)
class BundledVoice:
    """One shipped voice.

    name: what ``--checkpoint NAME`` accepts (no path separator, no suffix).
    path: the checkpoint file.
    label: how the studio lists it.
    """

    name: str
    path: Path
    label: str

    def available(self) -> bool:
        return self.path.is_file()


BUNDLED_VOICES: tuple[BundledVoice, ...] = (
    # everyday English through phonemes (docs/demo_voice.md): the default, what a new user hears first
    BundledVoice("everyday", ASSETS / "demo_everyday.pt", "everyday voice (bundled)"),
    # the same voice fine-tuned with MeanFlow: one network evaluation a sentence
    BundledVoice("meanflow", ASSETS / "demo_meanflow.pt", "everyday voice, one step, MeanFlow (bundled)"),
    # the first demo voice: characters, a 575-word grammar (assets/README.md)
    BundledVoice("grammar", ASSETS / "demo.pt", "grammar voice, 575 words (bundled)"),
    # the LeWM family (docs/lewm.md): free-runs to a stop at a natural length, not yet intelligible
    BundledVoice("lewm", ASSETS / "lewm_demo.pt", "LeWM voice, experimental: not yet intelligible (bundled)"),
)
DEMO_CHECKPOINT = BUNDLED_VOICES[0].path


def bundled_voice(name: str) -> BundledVoice:
    """The bundled voice called ``name``; an unknown name is an error listing the valid ones."""
    for voice in BUNDLED_VOICES:
        if voice.name == name:
            return voice
    raise ValueError(f"unknown bundled voice {name!r}; valid: {', '.join(v.name for v in BUNDLED_VOICES)}")


def resolve_checkpoint(spec: Optional[Union[str, Path]]) -> Optional[Path]:
    """A checkpoint argument as a path: a bundled voice's name becomes its file (an error
    if that file is not in this checkout); anything else is taken as a path; ``None``
    stays ``None`` (the caller's default)."""
    if spec is None:
        return None
    text = str(spec)
    if Path(text).exists():  # a file of that name wins over a bundled voice's name
        return Path(text)
    for voice in BUNDLED_VOICES:
        if text == voice.name:
            if not voice.available():
                raise FileNotFoundError(f"the bundled voice {voice.name!r} ({voice.path}) is not in this checkout")
            return voice.path
    return Path(spec)
