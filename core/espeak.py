"""Where the phoneme front end's espeak-ng comes from.

Two sources, one interface (:class:`Espeak`: ``phonemize_lines(lines) -> lines``):

* ``library``: the espeak-ng shared library and its data shipped inside the PyPI wheel
  ``espeakng-loader``, driven through ``phonemizer``'s wrapper.  Installs with pip alone
  (no system package), and every machine gets the same pinned espeak-ng version, so a
  checkpoint's phonemes are the same everywhere.
* ``program``: the ``espeak-ng`` executable on the PATH (Debian's ``espeak-ng``), one
  process per batch of lines.

``auto`` (the default) takes the library when both packages import, else the program.
The version of espeak-ng matters: releases phonemise some words differently (1.51
writes "forty" fˈoːɹɾi, 1.52 fˈɔːɹɾi), so :class:`core.text.PhonemeTokenizer` records the
source and version it used, and warns when a checkpoint was made with another.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from typing import Optional, Sequence

__all__ = ["Espeak", "EspeakLibrary", "EspeakProgram", "ESPEAK_SOURCES", "find_espeak", "MISSING"]

ESPEAK_SOURCES = ("auto", "library", "program")
MISSING = ("the phonemes tokenizer needs espeak-ng: pip install phonemizer espeakng-loader (the library, "
           "no system package), or install the program with: apt-get install espeak-ng (or use text.tokenizer "
           "'bytes' or 'chars')")


class EspeakError(ValueError):
    """espeak-ng is missing, refused a language, or failed; the message says what to do."""


class Espeak:
    """``name`` (library or program), ``version`` (e.g. "1.52.0"), ``language``."""

    name = ""
    version = ""
    language = ""

    def phonemize_lines(self, lines: Sequence[str]) -> list[str]:
        """IPA for each line (no newline, no clause-ending punctuation inside).  The
        program may return another number of lines (a clause break it found): the
        caller checks."""
        raise NotImplementedError


class EspeakProgram(Espeak):
    name = "program"

    def __init__(self, language: str):
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise EspeakError(MISSING)
        self.executable, self.language = exe, language
        probe = self._run(["a"], check=False)
        if probe.returncode != 0:
            voices = subprocess.run([exe, "--voices"], capture_output=True, text=True).stdout.split("\n")[1:]
            valid = sorted({line.split()[1] for line in voices if len(line.split()) > 1})
            raise EspeakError(f"unknown espeak-ng language {language!r}; valid: {', '.join(valid)}")
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        self.version = next((w for w in out.split() if w[:1].isdigit()), "")

    def _run(self, lines: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.executable, "-q", "-b", "1", "--ipa", "-v", self.language],
                              input="\n".join(lines) + "\n", capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=60 + len(lines))
        if check and proc.returncode != 0:
            raise EspeakError(f"espeak-ng failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        return proc

    def phonemize_lines(self, lines: Sequence[str]) -> list[str]:
        return self._run(lines).stdout.splitlines()


_QUIET_LOGGER = logging.getLogger("core.espeak.phonemizer")
_QUIET_LOGGER.setLevel(logging.ERROR)

_LIBRARY_LOCK = threading.Lock()  # the espeak-ng library keeps global state: one caller at a time


class EspeakLibrary(Espeak):
    name = "library"

    def __init__(self, language: str):
        try:
            import espeakng_loader
            from phonemizer.backend import EspeakBackend
            from phonemizer.backend.espeak.wrapper import EspeakWrapper
        except ImportError as exc:
            raise EspeakError(f"{MISSING} (missing: {exc.name})") from None
        with _LIBRARY_LOCK:
            EspeakWrapper.set_library(espeakng_loader.get_library_path())
            os.environ["ESPEAK_DATA_PATH"] = espeakng_loader.get_data_path()
            try:
                # words_mismatch: the output is one phoneme string per line, not aligned to words,
                # so phonemizer's "words count mismatch" warning says nothing useful here.  Its
                # "ignore" mode still logs a summary per call, hence a logger of our own that
                # passes errors only (a training run logged thousands of those lines).
                self._backend = EspeakBackend(language, preserve_punctuation=False, with_stress=True,
                                              language_switch="remove-flags", words_mismatch="ignore",
                                              logger=_QUIET_LOGGER)
            except RuntimeError:
                valid = sorted(EspeakBackend.supported_languages())
                raise EspeakError(f"unknown espeak-ng language {language!r}; valid: {', '.join(valid)}") from None
        self.language = language
        self.version = ".".join(str(v) for v in self._backend.version())

    def phonemize_lines(self, lines: Sequence[str]) -> list[str]:
        with _LIBRARY_LOCK:
            return [line.strip() for line in self._backend.phonemize(list(lines), strip=True, njobs=1)]


def find_espeak(language: str = "en-us", source: str = "auto") -> Espeak:
    """The espeak-ng to phonemise with (module doc); :class:`EspeakError` when none."""
    if source not in ESPEAK_SOURCES:
        raise EspeakError(f"unknown espeak-ng source {source!r}; valid: {', '.join(ESPEAK_SOURCES)}")
    if source == "program":
        return EspeakProgram(language)
    if source == "library":
        return EspeakLibrary(language)
    try:
        return EspeakLibrary(language)
    except EspeakError as exc:
        if "unknown espeak-ng language" in str(exc):
            raise
        first: Optional[EspeakError] = exc
    try:
        return EspeakProgram(language)
    except EspeakError as exc:
        raise (first if "unknown" not in str(exc) else exc) from None
