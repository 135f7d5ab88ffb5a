"""Studio settings: which folders the app may read, and safe path resolution inside them.

Folders come from ``panel serve studio/app.py --args --checkpoints DIR1,DIR2 --results DIR``
or, when an option is not given, from the environment variables ``FLOWTTS_CHECKPOINTS``
(folders separated by ``,`` or the OS path separator) and ``FLOWTTS_RESULTS``; with
neither, ``./runs`` and ``./studio_results`` (relative to the directory the server
was started in, resolved once when the settings are made).

Safety: every path a browser can name (a checkpoint, a run folder, a Vocos folder) is
resolved with symlinks followed and must then lie inside one of the configured folders
(:func:`resolve_inside`); anything else -- ``..`` tricks, absolute paths elsewhere, a
symlink pointing out -- raises :class:`PathRefused`.  Uploaded checkpoints land in
``<results>/uploads``, which is one of the checkpoint roots.  The bundled voices
(:mod:`core.bundled`: the everyday voice ``assets/demo_everyday.pt`` first) are always offered when their files exist.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

from core.bundled import BUNDLED_VOICES, DEMO_CHECKPOINT, BundledVoice  # one place names the bundled voices

__all__ = ["StudioConfigError", "PathRefused", "StudioSettings", "CheckpointEntry", "parse_settings",
           "resolve_inside", "find_checkpoints", "find_runs", "safe_upload_name", "CHECKPOINT_SUFFIXES",
           "DEMO_CHECKPOINT", "BUNDLED_VOICES", "BundledVoice", "ENV_CHECKPOINTS", "ENV_RESULTS"]

ENV_CHECKPOINTS = "FLOWTTS_CHECKPOINTS"
ENV_RESULTS = "FLOWTTS_RESULTS"
DEFAULT_CHECKPOINTS = "runs"
DEFAULT_RESULTS = "studio_results"
CHECKPOINT_SUFFIXES = (".pt", ".safetensors")
DEVICES = ("auto", "cpu", "cuda")
_SKIP_DIRS = {"mel_cache", "samples", "stimuli", "__pycache__", "node_modules"}
_MAX_DEPTH = 8


class StudioConfigError(ValueError):
    """A studio option is not valid; the message says which and what to do."""


class PathRefused(ValueError):
    """A path lies outside the folders the studio was configured to read."""


@dataclass(frozen=True)
class StudioSettings:
    """The folders one studio server may read and write (absolute, resolved).

    checkpoint_dirs: searched recursively for ``.pt`` / ``.safetensors`` checkpoints and
        for training runs (folders holding ``metrics.jsonl``).
    results_dir: listening-test results; uploads go to ``results_dir / "uploads"``.
    bundled_voices: the voices shipped in ``assets/`` (:data:`core.bundled.BUNDLED_VOICES`),
        offered first, in that order, each only when its file exists.
    device: where synthesis runs (``auto``: CUDA when available).
    threads: torch's CPU threads for this server (``auto``: see :mod:`core.threads`; a
        server shares the cores with the browser and its own web work, so on a small
        machine one thread is faster than two).
    """

    checkpoint_dirs: tuple[Path, ...]
    results_dir: Path
    bundled_voices: tuple[BundledVoice, ...] = BUNDLED_VOICES
    device: str = "auto"
    threads: str = "auto"

    @property
    def uploads_dir(self) -> Path:
        return self.results_dir / "uploads"

    @property
    def roots(self) -> tuple[Path, ...]:
        """Folders a browser-named path may lie in (checkpoint folders + uploads)."""
        return self.checkpoint_dirs + (self.uploads_dir,)

    @property
    def checkpoint_roots(self) -> tuple[Path, ...]:
        """Folders a checkpoint may be loaded from: :attr:`roots`, plus the folder of each
        bundled voice that exists."""
        extra: list[Path] = []
        for voice in self.available_voices():
            folder = voice.path.resolve().parent
            if folder not in extra and folder not in self.roots:
                extra.append(folder)
        return self.roots + tuple(extra)

    def available_voices(self) -> list[BundledVoice]:
        """The bundled voices whose files exist, in :attr:`bundled_voices` order."""
        return [v for v in self.bundled_voices if v.available()]

    def missing_dirs(self) -> list[Path]:
        """Configured checkpoint folders that do not exist (shown as a note)."""
        return [d for d in self.checkpoint_dirs if not d.is_dir()]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # never sys.exit inside a served page
        raise StudioConfigError(f"bad studio option: {message}; usage: {self.format_usage().strip()}")


def _split_dirs(text: str) -> list[str]:
    return [p.strip() for p in re.split(rf"[,{re.escape(os.pathsep)}]", text) if p.strip()]


def parse_settings(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None,
                   cwd: Optional[Path] = None) -> StudioSettings:
    """Settings from ``--args`` options (``argv``, e.g. ``sys.argv[1:]``), falling back
    to ``env`` (default ``os.environ``), then to the defaults; relative folders are taken
    relative to ``cwd`` (default: the current directory).  Raises StudioConfigError."""
    env = os.environ if env is None else env
    base = Path.cwd() if cwd is None else Path(cwd)
    parser = _Parser(prog="panel serve studio/app.py --args", add_help=False, allow_abbrev=False)
    parser.add_argument("--checkpoints", help="checkpoint/run folders, comma separated")
    parser.add_argument("--results", help="listening-test results folder (uploads go to <results>/uploads)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", default="auto", help="torch CPU threads: a number or auto")
    args = parser.parse_args(list(argv or []))
    dirs_text = args.checkpoints if args.checkpoints is not None else env.get(ENV_CHECKPOINTS, DEFAULT_CHECKPOINTS)
    dirs = _split_dirs(dirs_text)
    if not dirs:
        raise StudioConfigError("--checkpoints names no folder; give DIR1,DIR2")
    results = args.results if args.results is not None else env.get(ENV_RESULTS, DEFAULT_RESULTS)
    if not results.strip():
        raise StudioConfigError("--results names no folder")
    if not (args.device in DEVICES or re.fullmatch(r"cuda:\d+", args.device)):
        raise StudioConfigError(f"unknown device {args.device!r}; valid: {', '.join(DEVICES)}, cuda:N")

    def absolute(p: str) -> Path:
        q = Path(p).expanduser()
        return (q if q.is_absolute() else base / q).resolve()

    from core.config import ConfigError
    from core.threads import resolve_threads

    try:
        resolve_threads(args.threads)
    except ConfigError as exc:
        raise StudioConfigError(f"bad studio option --threads: {exc}") from None
    unique = tuple(dict.fromkeys(absolute(d) for d in dirs))
    return StudioSettings(checkpoint_dirs=unique, results_dir=absolute(results), device=args.device,
                          threads=args.threads)


def resolve_inside(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symlinks followed, ``..`` removed) if it lies inside one of
    ``roots`` (themselves resolved); else :class:`PathRefused`.  A relative path is
    taken relative to each root in turn."""
    text = os.fspath(path)
    if not text.strip() or "\x00" in text:
        raise PathRefused("empty or invalid path")
    resolved_roots = [Path(r).resolve() for r in roots]
    raw = Path(text).expanduser()
    candidates = [raw.resolve()] if raw.is_absolute() else [(r / raw).resolve() for r in resolved_roots]
    for cand in candidates:
        for root in resolved_roots:
            if cand == root or root in cand.parents:
                return cand
    allowed = ", ".join(str(r) for r in resolved_roots) or "(none configured)"
    raise PathRefused(f"{text}: outside the folders this studio may read ({allowed})")


def _walk(root: Path) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) under ``root``, skipping hidden and cache folders, not
    following symlinked folders, at most ``_MAX_DEPTH`` levels deep."""
    if not root.is_dir():
        return
    base_depth = len(root.parts)
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                         and len(here.parts) - base_depth < _MAX_DEPTH)
        yield here, sorted(files)


@dataclass(frozen=True)
class CheckpointEntry:
    """A checkpoint the studio offers: ``label`` (shown) and resolved ``path``."""

    label: str
    path: Path


def find_checkpoints(settings: StudioSettings) -> list[CheckpointEntry]:
    """The bundled voices that exist, then every checkpoint under each root, sorted by label.
    Labels are ``<root name>/<path below the root>``; files whose resolved target lies
    outside the roots (symlinks out) are left out."""
    found: list[CheckpointEntry] = []
    for voice in settings.available_voices():
        path = voice.path.resolve()
        if path not in {e.path for e in found}:
            found.append(CheckpointEntry(voice.label, path))
    seen = {e.path for e in found}
    for root in settings.roots:
        below: list[CheckpointEntry] = []
        for folder, files in _walk(root):
            for name in files:
                if not name.endswith(CHECKPOINT_SUFFIXES) or name.startswith("."):
                    continue
                try:
                    path = resolve_inside(folder / name, settings.roots)
                except PathRefused:
                    continue
                if path in seen:
                    continue
                seen.add(path)
                below.append(CheckpointEntry(f"{root.name}/{(folder / name).relative_to(root).as_posix()}", path))
        found.extend(sorted(below, key=lambda e: e.label))
    return found


def find_runs(settings: StudioSettings) -> list[CheckpointEntry]:
    """Training run folders (holding ``metrics.jsonl``) under the checkpoint folders,
    labelled ``<root name>/<path below the root>``, newest-modified first."""
    runs = []
    for root in settings.checkpoint_dirs:
        for folder, files in _walk(root):
            if "metrics.jsonl" in files:
                try:
                    path = resolve_inside(folder, settings.checkpoint_dirs)
                except PathRefused:
                    continue
                rel = folder.relative_to(root).as_posix()
                label = root.name if rel == "." else f"{root.name}/{rel}"
                runs.append((path.joinpath("metrics.jsonl").stat().st_mtime, CheckpointEntry(label, path)))
    return [entry for _, entry in sorted(runs, key=lambda r: (-r[0], r[1].label))]


def safe_upload_name(filename: str) -> str:
    """A plain file name for an uploaded checkpoint: the base name with characters
    other than letters, digits, ``._-`` replaced; the suffix must be ``.pt`` or
    ``.safetensors``.  Raises StudioConfigError."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", re.split(r"[\\/]", filename or "")[-1])
    suffix = next((s for s in CHECKPOINT_SUFFIXES if base.endswith(s)), None)
    if suffix is None:
        raise StudioConfigError(f"upload {filename!r}: a checkpoint must end in "
                                f"{' or '.join(CHECKPOINT_SUFFIXES)}")
    stem = base[:-len(suffix)].lstrip(".")[-100:]
    return (stem or "upload") + suffix
