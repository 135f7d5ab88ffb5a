"""``python -m core corpus``: the flite demo corpus (generated, never committed).

The Debian ``flite`` synthesiser speaks the sentences of one text source of
:mod:`core.corpus_text` (``grammar``, the default, or ``everyday``) in several voices;
each clip is resampled from flite's native rate (16 kHz, 8 kHz for ``kal``) to 24 kHz
with :func:`core.audio.resample` and written atomically as 16-bit mono WAV.  Every voice
speaks every sentence.  Layout of ``DIR``::

    corpus.json             the settings (seed, text source and its version, voices, counts, rate)
    sentences.txt           training sentences, one ``id|text`` per line
    heldout.txt             held-out sentences (never in training), ``id|text``
    wavs/<voice>/<id>.wav   training audio
    heldout_wavs/<voice>/<id>.wav   flite recordings of the held-out sentences
    manifest.csv            ``audio_path,text,speaker,id`` (read by core.data.read_manifest)
    heldout_manifest.csv    the same for the held-out recordings (the evaluation references)
    eval.txt, eval_wavs/, eval_manifest.csv   with ``eval_sentences`` (``--eval-sentences FILE``):
                            the same for a file of sentences written for evaluation, one a
                            line (e.g. ``assets/everyday_sentences.txt``), stored normalised

Manifest ids are ``<voice>_<sentence id>``.  The build is deterministic for a seed and
resumable: a complete WAV at 24 kHz is kept, anything else (missing, truncated, another
rate) is rendered again; re-running with the same seed and more sentences or voices only
adds files (an evaluation sentence whose text changed since the last run is rendered
again).  A folder built with another seed, text source or source version is refused
(a ``corpus.json`` from before text sources, with only ``grammar_version``, counts as
the ``grammar`` source at that version).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .checkpoint import atomic_write
from .corpus_text import DEFAULT_TEXT, corpus_sentences, text_source

__all__ = ["CorpusError", "FliteMissing", "CorpusReport", "DEFAULT_VOICES", "LIMITED_DOMAIN_VOICES",
           "SAMPLE_RATE", "find_flite", "list_voices", "check_voices", "flite_speak", "render_wav",
           "wav_is_complete", "read_eval_sentences", "build_corpus"]

SAMPLE_RATE = 24000
DEFAULT_VOICES = ("slt", "rms", "awb", "kal16")
LIMITED_DOMAIN_VOICES = ("awb_time",)  # speaks only clock times; useless for general text
FLITE_TIMEOUT_S = 120
INSTALL_HINT = "install it with `sudo apt-get install flite` (Debian/Ubuntu)"


class CorpusError(ValueError):
    """The corpus cannot be built as asked; the message says what to change."""


class FliteMissing(CorpusError):
    """The ``flite`` program is not on PATH."""


# --------------------------------------------------------------------------- flite


def find_flite() -> str:
    """Path of the ``flite`` executable, or :class:`FliteMissing` saying how to install it."""
    path = shutil.which("flite")
    if path is None:
        raise FliteMissing(f"the speech synthesiser flite was not found on PATH; {INSTALL_HINT}")
    return path


def list_voices(flite: Optional[str] = None) -> list[str]:
    """Voices ``flite -lv`` lists, without the limited-domain ones (``awb_time``)."""
    flite = flite or find_flite()
    proc = subprocess.run([flite, "-lv"], capture_output=True, text=True, timeout=30)
    line = next((l for l in proc.stdout.splitlines() if "Voices available" in l), None)
    if proc.returncode != 0 or line is None:
        raise CorpusError(f"`{flite} -lv` did not list voices (exit {proc.returncode}): "
                          f"{(proc.stderr or proc.stdout).strip()[:200]}")
    return [v for v in line.split(":", 1)[1].split() if v not in LIMITED_DOMAIN_VOICES]


def check_voices(voices: Sequence[str], available: Sequence[str]) -> list[str]:
    """``voices`` without duplicates (order kept); an unknown one is an error listing ``available``."""
    out: list[str] = []
    for v in voices:
        if v not in available:
            raise CorpusError(f"unknown flite voice {v!r}; valid: {', '.join(available)}")
        if v not in out:
            out.append(v)
    if not out:
        raise CorpusError(f"no voices given; valid: {', '.join(available)}")
    return out


def flite_speak(text: str, voice: str, flite: Optional[str] = None):
    """Speak ``text`` with flite's ``voice``; returns a :class:`core.audio.AudioClip` at
    flite's native rate (float32 mono)."""
    from .audio import load_wav_with_rate

    flite = flite or find_flite()
    fd, tmp = tempfile.mkstemp(prefix="flite-", suffix=".wav")
    os.close(fd)
    try:
        proc = subprocess.run([flite, "-voice", voice, "-t", text, "-o", tmp],
                              capture_output=True, text=True, timeout=FLITE_TIMEOUT_S)
        if proc.returncode != 0 or os.path.getsize(tmp) <= 44:
            raise CorpusError(f"flite (voice {voice}) failed on {text!r} (exit {proc.returncode}): "
                              f"{proc.stderr.strip()[:200]}")
        return load_wav_with_rate(tmp)
    finally:
        os.unlink(tmp)


def render_wav(text: str, voice: str, path: str | Path, flite: Optional[str] = None,
               sample_rate: int = SAMPLE_RATE) -> Path:
    """Speak ``text`` and write it to ``path`` at ``sample_rate`` (16-bit PCM, atomic)."""
    import torch

    from .audio import resample, save_wav

    clip = flite_speak(text, voice, flite)
    wav = resample(torch.from_numpy(clip.samples), clip.sample_rate, sample_rate)
    return save_wav(path, wav, sample_rate)


def wav_is_complete(path: str | Path, sample_rate: int = SAMPLE_RATE) -> bool:
    """True for a whole mono WAV file at ``sample_rate`` with at least one sample.

    Whole means the RIFF size in the header matches the file size, so a file cut short
    (a copy or a disk interrupted half way) is caught even though libsndfile would read
    what is left of it.
    """
    import soundfile as sf

    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return False
        if struct.unpack("<I", head[4:8])[0] + 8 != size:
            return False
        info = sf.info(str(p))
    except (OSError, RuntimeError, sf.LibsndfileError):
        return False
    return info.samplerate == sample_rate and info.channels == 1 and info.frames > 0


# --------------------------------------------------------------------------- the build


@dataclass
class CorpusReport:
    """What :func:`build_corpus` did: files ``rendered`` now, ``kept`` from an earlier run."""

    out: Path
    voices: list[str]
    sentences: int
    heldout: int
    rendered: int = 0
    kept: int = 0
    manifest: Path = field(default=Path())
    heldout_manifest: Path = field(default=Path())
    text: str = DEFAULT_TEXT
    evaluation: int = 0  # sentences of the eval_sentences file

    def summary(self) -> str:
        extra = f" + {self.evaluation} evaluation" if self.evaluation else ""
        return (f"{self.sentences} training + {self.heldout} held-out {self.text}{extra} sentences "
                f"x {len(self.voices)} voices "
                f"({', '.join(self.voices)}): rendered {self.rendered} wavs, kept {self.kept}; "
                f"manifests {self.manifest} and {self.heldout_manifest}")


@dataclass
class _Job:
    text: str
    voice: str
    path: Path


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _check_settings(out: Path, seed: int, text: str, version: int) -> None:
    """Refuse to resume a folder that was built with a different seed or text."""
    settings = out / "corpus.json"
    if not settings.is_file():
        return
    try:
        old = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{settings} is unreadable ({exc}); remove it or use another --out") from None
    was = {"seed": old.get("seed"), "text": old.get("text", "grammar"),
           "text_version": old.get("text_version", old.get("grammar_version"))}
    for key, new in (("seed", seed), ("text", text), ("text_version", version)):
        if was[key] != new:
            raise CorpusError(f"{out} holds a corpus built with {key} {was[key]!r}, not {new!r}; "
                              "use the same value or another --out folder")


def read_eval_sentences(path: str | Path, train: Sequence[str]) -> list[str]:
    """The sentences of a file written for evaluation (one a line; blank lines and ``#``
    comments skipped), normalised as flite will speak them.  A duplicate, or a sentence
    that is also a training sentence, is a :class:`CorpusError` naming its line."""
    from .normalize import normalize_text

    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise CorpusError(f"cannot read the evaluation sentences {p}: {exc.strerror or exc}") from None
    out: list[str] = []
    training = set(train)
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        text = normalize_text(line)
        if text in out:
            raise CorpusError(f"{p}:{n}: sentence {line.strip()!r} appears twice")
        if text in training:
            raise CorpusError(f"{p}:{n}: sentence {line.strip()!r} is also a training sentence; "
                              "evaluation sentences must be new to the model")
        out.append(text)
    if not out:
        raise CorpusError(f"{p} holds no sentences")
    return out


def _drop_changed_eval_wavs(out: Path, ids: list[str], texts: list[str], voices: Sequence[str]) -> None:
    """Remove eval wavs whose id now stands for another sentence than in the last run's eval.txt."""
    old_file = out / "eval.txt"
    if not old_file.is_file():
        return
    old = dict(line.split("|", 1) for line in old_file.read_text(encoding="utf-8").splitlines() if "|" in line)
    for sid, text in zip(ids, texts):
        if sid in old and old[sid] != text:
            for voice in voices:
                (out / "eval_wavs" / voice / f"{sid}.wav").unlink(missing_ok=True)


def _manifest_text(rows: list[tuple[str, str, str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["audio_path", "text", "speaker", "id"])
    writer.writerows(rows)
    return buf.getvalue()


def _remove_stale_temps(folders: list[Path]) -> None:
    """Temporary files an interrupted atomic write left behind (``.<name>.wav.<random>.tmp``)."""
    for folder in folders:
        if folder.is_dir():
            for tmp in folder.glob(".*.wav.*.tmp"):
                tmp.unlink(missing_ok=True)


def build_corpus(out: str | Path, sentences: int = 2000, voices: Sequence[str] = DEFAULT_VOICES,
                 seed: int = 0, heldout: int = 100, jobs: Optional[int] = None,
                 progress: Optional[bool] = None, text: str = DEFAULT_TEXT,
                 eval_sentences: str | Path | None = None) -> CorpusReport:
    """Build (or finish) the flite corpus in ``out``; see the module docstring for the layout.

    ``sentences`` training and ``heldout`` held-out sentences of the text source ``text``
    (``grammar`` or ``everyday``, :data:`core.corpus_text.TEXT_SOURCES`), and the sentences of
    the file ``eval_sentences`` if given (:func:`read_eval_sentences`), each spoken by every voice;
    ``jobs`` flite processes at a time (default ``min(4, cpu count)``); ``progress``
    shows a tqdm bar (``None``: only on a terminal).  Raises :class:`FliteMissing` without
    flite and :class:`CorpusError` for an unknown voice or text source or a folder from
    another seed or text.
    """
    from tqdm import tqdm

    if sentences < 1:
        raise CorpusError(f"sentences must be >= 1, got {sentences}")
    if heldout < 0:
        raise CorpusError(f"heldout must be >= 0, got {heldout}")
    jobs = jobs if jobs is not None else min(4, os.cpu_count() or 1)
    if jobs < 1:
        raise CorpusError(f"jobs must be >= 1, got {jobs}")
    try:
        source = text_source(text)
    except ValueError as exc:
        raise CorpusError(str(exc)) from None
    flite = find_flite()
    voices = check_voices(list(voices), list_voices(flite))
    out = Path(out)
    _check_settings(out, seed, source.name, source.version)
    sets = corpus_sentences(sentences, heldout, seed, text=source.name)
    evaluation = [] if eval_sentences is None else read_eval_sentences(eval_sentences, sets.train)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"seed": seed, "text": source.name, "text_version": source.version, "sample_rate": SAMPLE_RATE,
                "voices": voices, "sentences": sentences, "heldout": heldout}
    if eval_sentences is not None:
        settings["eval_sentences"] = {"file": str(eval_sentences), "count": len(evaluation)}
    _write_text(out / "corpus.json", json.dumps(settings, indent=2) + "\n")

    train_ids = [f"s{i:05d}" for i in range(len(sets.train))]
    held_ids = [f"h{i:04d}" for i in range(len(sets.heldout))]
    _write_text(out / "sentences.txt", "".join(f"{i}|{t}\n" for i, t in zip(train_ids, sets.train)))
    _write_text(out / "heldout.txt", "".join(f"{i}|{t}\n" for i, t in zip(held_ids, sets.heldout)))
    eval_ids = [f"e{i:04d}" for i in range(len(evaluation))]
    if evaluation:
        _drop_changed_eval_wavs(out, eval_ids, evaluation, voices)
        _write_text(out / "eval.txt", "".join(f"{i}|{t}\n" for i, t in zip(eval_ids, evaluation)))

    manifests: dict[str, list[tuple[str, str, str, str]]] = {"manifest.csv": [], "heldout_manifest.csv": []}
    if evaluation:
        manifests["eval_manifest.csv"] = []
    todo: list[_Job] = []
    report = CorpusReport(out, voices, len(sets.train), len(sets.heldout), text=source.name,
                          evaluation=len(evaluation))
    for name, folder, ids, texts in (("manifest.csv", "wavs", train_ids, sets.train),
                                     ("heldout_manifest.csv", "heldout_wavs", held_ids, sets.heldout),
                                     ("eval_manifest.csv", "eval_wavs", eval_ids, evaluation)):
        if name not in manifests:
            continue
        _remove_stale_temps([out / folder / v for v in voices])
        for voice in voices:
            for sid, text in zip(ids, texts):
                rel = f"{folder}/{voice}/{sid}.wav"
                manifests[name].append((rel, text, voice, f"{voice}_{sid}"))
                if wav_is_complete(out / rel):
                    report.kept += 1
                else:
                    todo.append(_Job(text, voice, out / rel))

    bar = tqdm(total=report.kept + len(todo), initial=report.kept, desc="flite corpus", unit="wav",
               disable=None if progress is None else not progress)
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(render_wav, j.text, j.voice, j.path, flite) for j in todo}
            try:
                while futures:
                    done, futures = wait(futures, return_when=FIRST_EXCEPTION)
                    for f in done:
                        f.result()  # re-raises a flite failure; finished files stay for the next run
                        report.rendered += 1
                        bar.update(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # let running flite calls finish their files
                raise
    finally:
        bar.close()

    report.manifest = out / "manifest.csv"
    report.heldout_manifest = out / "heldout_manifest.csv"
    for name, rows in manifests.items():
        _write_text(out / name, _manifest_text(rows))
    return report
