"""Objective evaluation: WER through an ASR, DNSMOS, MCD with DTW, real-time factor.

* :func:`wer` — word error rate, ``(S + D + I) / N`` over all reference words, after the
  same :func:`normalize_for_wer` on both sides (``core.text.normalize_text``, lower case,
  hyphens to spaces, punctuation dropped except apostrophes inside words).
* :class:`Recognizer` — pocketsphinx's bundled US English model (16 kHz int16 input;
  clips are resampled with ``core.audio.resample``); runs offline.
* :func:`dnsmos` — Microsoft DNSMOS (P.835 SIG/BAK/OVRL and P.808) through the ONNX
  models the ``speechmos`` package ships, on 16 kHz audio, run by onnxruntime on the CPU.
* :func:`mcd_dtw` — mel-cepstral distortion after dynamic time warping (definition in its
  docstring).  Its cepstra are cosine transforms of log-mel frames scaled like SPTK's
  mel-cepstrum, not SPTK's own analysis (pysptk is not used), so compare MCD values
  within this project only.
* :func:`rtf` — compute seconds per second of audio.

:func:`evaluate` runs all of them over sentences; :mod:`core.cli.evaluate` is the command line; :func:`read_sentences` and
:func:`references_from_manifest` read its sentence and reference files.
The ASR and DNSMOS need the ``eval`` extra (``pip install -e ".[eval]"``); a missing
package raises :class:`MissingEvalExtra` saying so.  WER, MCD and RTF need only core.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from .audio import load_wav_with_rate, mel_spectrogram, peak_safe, resample
from .text import normalize_text

__all__ = ["read_sentences", "references_from_manifest", "MissingEvalExtra", "WERResult", "normalize_for_wer", "wer", "Recognizer", "DNSMOSScore", "DNSMOS",
           "dnsmos", "cepstrum_from_logmel", "mel_cepstrum", "dtw_path", "mcd_dtw", "rtf", "MCD_CONST",
           "frame_levels_db", "nonsilent_fraction",
           "EvalSentence", "EvalClip", "EvalRow", "EvalReport", "evaluate"]

ASR_RATE = 16000
MEL_RATE = 24000  # mel_cepstrum analyses at the core mel front end's rate
MCD_CONST = 10.0 * math.sqrt(2.0) / math.log(10.0)  # dB per unit of Euclidean cepstral distance
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


class MissingEvalExtra(ImportError):
    """A package of the ``eval`` extra is not installed."""


def _require(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingEvalExtra(f"{what} needs the eval extra ({module} is not installed); "
                               'install it with: pip install -e ".[eval]"') from None


def _mono(audio: ArrayLike, what: str = "audio") -> np.ndarray:
    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D clip (samples,), got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def _at_rate(audio: ArrayLike, sample_rate: int, rate: int) -> np.ndarray:
    x = _mono(audio)
    return resample(torch.from_numpy(np.ascontiguousarray(x)), int(sample_rate), rate).numpy()


# --------------------------------------------------------------------------- WER

_DASHES = re.compile(r"[-‐‑‒–—]")
_NOT_WORD = re.compile(r"[^\w\s']|_")
_QUOTE = re.compile(r"(?<!\w)'|'(?!\w)")


def normalize_for_wer(text: str) -> str:
    """``"Twenty-one cats, Mr. Smith's!" -> "twenty one cats mister smith's"``."""
    text = normalize_text(text).lower()
    text = _NOT_WORD.sub(" ", _DASHES.sub(" ", text))
    return " ".join(_QUOTE.sub(" ", text).split())


@dataclass
class WERResult:
    """Word errors against ``words`` reference words; ``wer = (S + D + I) / words``."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def _edit_counts(ref: list[str], hyp: list[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of one minimum-edit alignment (Levenshtein on
    words; ties go to the diagonal, then deletions)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1, d[i, j - 1] + 1)
    s = dl = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            dl, i = dl + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return int(s), dl, ins


def wer(refs: Union[str, Sequence[str]], hyps: Union[str, Sequence[str]]) -> WERResult:
    """Word error rate of ``hyps`` against ``refs`` (one string each, or equal-length lists:
    errors summed over all pairs, divided by all reference words)."""
    if isinstance(refs, str) != isinstance(hyps, str):
        raise TypeError("give refs and hyps both as strings or both as lists of strings")
    refs, hyps = ([refs], [hyps]) if isinstance(refs, str) else (list(refs), list(hyps))
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    s = dl = ins = words = 0
    for k, (r, h) in enumerate(zip(refs, hyps)):
        rw, hw = normalize_for_wer(r).split(), normalize_for_wer(h).split()
        if not rw:
            raise ValueError(f"reference {k} has no words after normalisation: {r!r}")
        a, b, c = _edit_counts(rw, hw)
        s, dl, ins, words = s + a, dl + b, ins + c, words + len(rw)
    if words == 0:
        raise ValueError("no references given")
    return WERResult((s + dl + ins) / words, s, dl, ins, words)


# --------------------------------------------------------------------------- ASR


class Recognizer:
    """pocketsphinx with its bundled US English acoustic model, trigram LM and CMU dictionary.

    ``transcribe(audio, sample_rate) -> str`` (lower-case words).  One decoder per
    instance; use one instance per thread.  Stateless across clips: pocketsphinx's noise
    removal (``remove_noise``) carries its noise estimate from one utterance into the next,
    so the same clip could be heard differently depending on what was transcribed before
    it; the feature front end is re-initialised before every clip, so a transcript depends
    only on its own audio (the same words as a fresh decoder's).
    """

    def __init__(self):
        ps = _require("pocketsphinx", "speech recognition")
        model = Path(ps.get_model_path()) / "en-us"
        self.decoder = ps.Decoder(hmm=str(model / "en-us"), lm=str(model / "en-us.lm.bin"),
                                  dict=str(model / "cmudict-en-us.dict"), samprate=ASR_RATE, loglevel="FATAL")

    def transcribe(self, audio: ArrayLike, sample_rate: int) -> str:
        pcm = (peak_safe(_at_rate(audio, sample_rate, ASR_RATE)) * 32767.0).round().astype("<i2")
        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        words = (hyp.hypstr if hyp is not None else "").split()
        return " ".join(re.sub(r"\(\d+\)$", "", w) for w in words if not w.startswith(("<", "[")))


# --------------------------------------------------------------------------- DNSMOS


@dataclass
class DNSMOSScore:
    """DNSMOS P.835 ``sig`` (speech), ``bak`` (background), ``ovrl`` (overall) and P.808
    ``p808``; each roughly on the 1..5 MOS scale."""

    ovrl: float
    sig: float
    bak: float
    p808: float


class DNSMOS:
    """The speechmos DNSMOS models in onnxruntime sessions limited to ``threads`` threads.

    ``scorer(audio, sample_rate) -> DNSMOSScore``; audio is resampled to 16 kHz and made
    peak-safe.  As in Microsoft's ``dnsmos_local.py`` (which speechmos follows), a clip
    shorter than the 9.01 s input window is doubled until it is at least that long, and
    windows every 1 s are scored and averaged (a 3 s clip becomes 12 s: 3 windows).
    """

    def __init__(self, personalized: bool = False, threads: int = 1):
        ort = _require("onnxruntime", "DNSMOS")
        _require("librosa", "DNSMOS")
        sm = _require("speechmos.dnsmos", "DNSMOS")
        root = Path(sm.__file__).parent
        primary = root / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = int(threads)
        model = sm.DNSMOS.__new__(sm.DNSMOS)  # its __init__ opens sessions with every core
        model.primary_model_path = str(primary)
        model.onnx_sess = ort.InferenceSession(str(primary), opts, providers=["CPUExecutionProvider"])
        model.p808_onnx_sess = ort.InferenceSession(str(root / "dnsmos_models" / "model_v8.onnx"), opts,
                                                    providers=["CPUExecutionProvider"])
        self.model, self.personalized = model, personalized

    def __call__(self, audio: ArrayLike, sample_rate: int) -> DNSMOSScore:
        x = peak_safe(_at_rate(audio, sample_rate, ASR_RATE))
        if not np.any(x):
            raise ValueError("DNSMOS of a silent clip is undefined")
        out = self.model(x, ASR_RATE, self.personalized)
        return DNSMOSScore(float(out["ovrl_mos"]), float(out["sig_mos"]), float(out["bak_mos"]),
                           float(out["p808_mos"]))


@functools.lru_cache(maxsize=1)
def _default_dnsmos() -> DNSMOS:
    return DNSMOS()


def dnsmos(audio: ArrayLike, sample_rate: int) -> DNSMOSScore:
    """DNSMOS of one clip with a shared single-threaded :class:`DNSMOS` scorer."""
    return _default_dnsmos()(audio, sample_rate)


# --------------------------------------------------------------------------- loudness


def frame_levels_db(logmel: np.ndarray) -> np.ndarray:
    """Log-mel (n_mels, T) -> (T,) frame levels in dB: 20 log10 of the mean mel magnitude."""
    return 20.0 * np.log10(np.maximum(np.exp(logmel.astype(np.float64)).mean(axis=0), 1e-10))


def nonsilent_fraction(logmel: np.ndarray, threshold_db: float) -> float:
    """Share of frames of ``logmel`` (n_mels, T) whose level is above ``threshold_db``."""
    if logmel.shape[1] == 0:
        return 0.0
    return float((frame_levels_db(logmel) > threshold_db).mean())


# --------------------------------------------------------------------------- MCD


def cepstrum_from_logmel(logmel: np.ndarray, n_coeffs: int = 13) -> np.ndarray:
    """Mel cepstra ``c_1 .. c_n`` of log-mel frames ``(frames, n_mels)`` -> ``(frames, n_coeffs)``.

    The cosine-series coefficients of each frame on its mel-warped frequency axis:
    ``log_mel[b] = c_0 + 2 * sum_k c_k cos(pi k (b + 1/2) / n_mels)``, i.e. the orthonormal
    DCT-II divided by ``sqrt(2 n_mels)``; the same convention as SPTK's mel-cepstrum
    (``log|H(w~)| = c_0 + 2 sum c_k cos(k w~)``), so MCD values land in the usual dB range.
    """
    from scipy.fft import dct

    n_mels = logmel.shape[1]
    if not 1 <= n_coeffs < n_mels:
        raise ValueError(f"n_coeffs must be in 1..{n_mels - 1}, got {n_coeffs}")
    return dct(logmel, type=2, norm="ortho", axis=1)[:, 1:n_coeffs + 1] / math.sqrt(2.0 * n_mels)


def mel_cepstrum(audio: ArrayLike, sample_rate: int, n_coeffs: int = 13, floor_db: Optional[float] = 60.0,
                 trim_db: Optional[float] = 40.0) -> np.ndarray:
    """Mel cepstra ``(frames, n_coeffs)`` of a clip: ``c_1 .. c_n`` (``c_0``, the level, left out).

    The clip is resampled to 24 kHz; frames are :func:`core.audio.mel_spectrogram`
    (Vocos settings: 100 HTK mel bands, window 1024, hop 256, natural log of the
    magnitude) and :func:`cepstrum_from_logmel` turns each into cepstra.  Before that:
    ``floor_db`` raises every mel value to at least ``floor_db`` dB below the clip's
    largest one (so digital silence and an inaudible noise floor look the same), and
    ``trim_db`` drops leading and trailing frames whose mean log-mel is more than
    ``trim_db`` dB below the loudest frame's (silence padding does not count).  dB are
    of magnitude (20 log10).  ``None`` turns either step off.
    """
    mel = mel_spectrogram(torch.from_numpy(np.ascontiguousarray(_at_rate(audio, sample_rate, MEL_RATE))))
    logmel = mel[0].T.double().numpy()  # (frames, 100)
    db = math.log(10.0) / 20.0  # natural-log units per dB of magnitude
    if floor_db is not None:
        logmel = np.maximum(logmel, logmel.max() - floor_db * db)
    if trim_db is not None:
        level = logmel.mean(axis=1)
        keep = np.flatnonzero(level >= level.max() - trim_db * db)
        logmel = logmel[keep[0]:keep[-1] + 1]
    return cepstrum_from_logmel(logmel, n_coeffs)


def _dtw_accumulate(cost: np.ndarray) -> np.ndarray:
    """Accumulated cost ``D[i, j] = cost[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1])``,
    computed one anti-diagonal at a time."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(2, n + m + 1):  # cells (i, j), 1-based, with i + j == k
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        acc[i, j] = cost[i - 1, j - 1] + np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
    return acc


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotone alignment of frames ``a (n, d)`` and ``b (m, d)`` with Euclidean
    frame cost and steps (1,0), (0,1), (1,1); returns the frame-distance matrix's
    ``(n, m)`` entries along the path as ``(distances, path (L, 2))``."""
    from scipy.spatial.distance import cdist

    cost = cdist(a, b, "euclidean")
    acc = _dtw_accumulate(cost)
    i, j, path = a.shape[0], b.shape[0], []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    path = np.array(path[::-1])
    return cost[path[:, 0], path[:, 1]], path


def mcd_dtw(ref_audio: ArrayLike, hyp_audio: ArrayLike, sample_rate: int, n_coeffs: int = 13,
            floor_db: Optional[float] = 60.0, trim_db: Optional[float] = 40.0) -> float:
    """Mel-cepstral distortion in dB between two clips at ``sample_rate``, after DTW.

    ``MCD = 10 sqrt(2) / ln 10 * mean over the DTW path of ||c_ref - c_hyp||_2`` with
    ``c = mel_cepstrum(...)`` (``c_1..c_13``, no ``c_0``; 60 dB floor, 40 dB edge trim)
    and the path of :func:`dtw_path` (Euclidean frame cost).  0 for identical clips.
    """
    dist, _ = dtw_path(mel_cepstrum(ref_audio, sample_rate, n_coeffs, floor_db, trim_db),
                       mel_cepstrum(hyp_audio, sample_rate, n_coeffs, floor_db, trim_db))
    return float(MCD_CONST * dist.mean())


def rtf(seconds_compute: float, seconds_audio: float) -> float:
    """Real-time factor: compute time over audio duration (< 1 is faster than real time)."""
    if not seconds_audio > 0:
        raise ValueError(f"seconds_audio must be > 0, got {seconds_audio}")
    if seconds_compute < 0:
        raise ValueError(f"seconds_compute must be >= 0, got {seconds_compute}")
    return float(seconds_compute) / float(seconds_audio)


# --------------------------------------------------------------------------- the pipeline


@dataclass
class EvalSentence:
    id: str
    text: str


@dataclass
class EvalClip:
    """Audio to score: ``audio`` 1-D float at ``sample_rate``; ``timings["total"]`` (seconds
    of compute) gives the RTF and ``timings["acoustic"]`` (text to mel, no vocoder) the
    acoustic model's time, ``None`` for recordings.  ``core.Synthesis`` fits the same shape."""

    audio: np.ndarray
    sample_rate: int
    timings: Optional[dict] = None


@dataclass
class EvalRow:
    """One sentence's scores.  ``wer`` is this sentence's (``errors / words``);
    ``compute_seconds`` the whole synthesis, ``acoustic_seconds`` its text-to-mel part."""

    id: str
    text: str
    hypothesis: str
    wer: float
    errors: int
    words: int
    audio_seconds: float
    compute_seconds: Optional[float] = None
    rtf: Optional[float] = None
    acoustic_seconds: Optional[float] = None
    dnsmos_ovrl: Optional[float] = None
    dnsmos_sig: Optional[float] = None
    dnsmos_bak: Optional[float] = None
    dnsmos_p808: Optional[float] = None
    mcd: Optional[float] = None


@dataclass
class EvalReport:
    """Rows plus ``means``: ``wer`` pooled over all words (total errors / total words),
    ``sentence_wer`` the mean of row WERs, ``rtf`` total compute / total audio, and the
    plain mean of every other score that all rows have."""

    rows: list[EvalRow]
    means: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "means": self.means, "rows": [asdict(r) for r in self.rows]}


def _means(rows: list[EvalRow]) -> dict[str, float]:
    out = {"wer": sum(r.errors for r in rows) / sum(r.words for r in rows),
           "sentence_wer": float(np.mean([r.wer for r in rows]))}
    if all(r.compute_seconds is not None for r in rows):
        out["rtf"] = sum(r.compute_seconds for r in rows) / sum(r.audio_seconds for r in rows)
    for key in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808", "mcd", "audio_seconds",
                "acoustic_seconds"):
        values = [getattr(r, key) for r in rows]
        if all(v is not None for v in values):
            out[key] = float(np.mean(values))
    return out


def evaluate(synthesize_fn: Callable[[EvalSentence], Any], sentences: Sequence[EvalSentence],
             references: Optional[Mapping[str, Union[str, Path]]] = None, recognizer: Optional[Recognizer] = None,
             *, dnsmos_scorer: Union[bool, Callable[[np.ndarray, int], DNSMOSScore]] = True, mcd: bool = True,
             progress: Optional[bool] = None, settings: Optional[dict] = None) -> EvalReport:
    """Score ``synthesize_fn(sentence)`` for each sentence.

    ``synthesize_fn`` returns an :class:`EvalClip`-shaped object (``audio``,
    ``sample_rate``, optional ``timings`` with ``"total"`` seconds).  ``recognizer``:
    anything with ``transcribe(audio, sample_rate) -> str`` (default a new
    :class:`Recognizer`).  ``dnsmos_scorer``: ``True`` for :func:`dnsmos`, ``False`` to
    skip, or a callable.  ``references`` maps sentence id -> reference wav; with ``mcd``
    each row with a reference gets :func:`mcd_dtw` against it.
    """
    from tqdm import tqdm

    if not sentences:
        raise ValueError("no sentences to evaluate")
    recognizer = recognizer if recognizer is not None else Recognizer()
    score = dnsmos if dnsmos_scorer is True else (dnsmos_scorer or None)
    rows = []
    for sentence in tqdm(sentences, desc="eval", unit="sentence", disable=None if progress is None else not progress):
        clip = synthesize_fn(sentence)
        audio, rate = _mono(clip.audio, f"audio for sentence {sentence.id}"), int(clip.sample_rate)
        hyp = recognizer.transcribe(audio, rate)
        w = wer(sentence.text, hyp)
        seconds = len(audio) / rate
        timings = getattr(clip, "timings", None) or {}
        compute = timings.get("total")
        row = EvalRow(sentence.id, sentence.text, hyp, w.wer, w.errors, w.words, seconds, compute,
                      rtf(compute, seconds) if compute is not None else None, timings.get("acoustic"))
        if score is not None:
            s = score(audio, rate)
            row.dnsmos_ovrl, row.dnsmos_sig, row.dnsmos_bak, row.dnsmos_p808 = s.ovrl, s.sig, s.bak, s.p808
        if mcd and references is not None and sentence.id in references:
            ref = load_wav_with_rate(references[sentence.id])
            row.mcd = mcd_dtw(_at_rate(ref.samples, ref.sample_rate, rate), audio, rate)
        rows.append(row)
    return EvalReport(rows, _means(rows), dict(settings or {}))


# --------------------------------------------------------------------------- sentence files
def read_sentences(path: Union[str, Path]) -> list[EvalSentence]:
    """Sentences from a text file: ``id|text`` or plain ``text`` lines (id ``line<N>``);
    blank lines and ``#`` comments are skipped.  Ids must be unique."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"sentences file not found: {p}")
    out, seen = [], set()
    for n, line in enumerate(p.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sid, text = line.split("|", 1) if "|" in line else (f"line{n}", line)
        sid, text = sid.strip(), text.strip()
        if not text or not normalize_for_wer(text):
            raise ValueError(f"{p}:{n}: sentence has no words")
        if sid in seen:
            raise ValueError(f"{p}:{n}: duplicate sentence id {sid!r}")
        seen.add(sid)
        out.append(EvalSentence(sid, text))
    if not out:
        raise ValueError(f"{p}: no sentences")
    return out


def references_from_manifest(manifest: Union[str, Path], sentences: Sequence[EvalSentence],
                             speaker: Optional[str] = None) -> dict[str, Path]:
    """Sentence id -> reference wav from a manifest (``core.data.read_manifest``), matching
    rows to sentences by :func:`normalize_for_wer` text, among rows of ``speaker``.  A
    manifest with several speakers needs ``speaker``; a sentence without a row is an error."""
    from .data import read_manifest

    rows = read_manifest(manifest)
    speakers = sorted({r.speaker for r in rows})
    if speaker is None and len(speakers) > 1:
        raise ValueError(f"{manifest} holds several speakers; choose one with --reference-speaker: "
                         f"{', '.join(speakers)}")
    if speaker is not None and speaker not in speakers:
        raise ValueError(f"unknown speaker {speaker!r} in {manifest}; valid: {', '.join(speakers)}")
    by_text = {normalize_for_wer(r.text): r.audio_path for r in rows
               if speaker is None or r.speaker == speaker}
    out = {}
    for s in sentences:
        key = normalize_for_wer(s.text)
        if key not in by_text:
            raise ValueError(f"no reference in {manifest} for sentence {s.id}: {s.text!r}")
        out[s.id] = by_text[key]
    return out
