"""Text front end: a small English normaliser, tokenizers and sentence splitting.

Every tokenizer maps ``str -> list[int]`` with the same reserved ids: ``pad_id = 0``,
``blank_id = 1`` (interspersed between tokens when ``text.intersperse_blank``) and
``unk_id = 2`` (anything the vocabulary lacks).  Real symbols start at id 3.

* :class:`ByteTokenizer`  — UTF-8 bytes, ids 3..258, vocab 259; covers any input.
* :class:`CharTokenizer`  — one id per code point of a symbol list (``fit`` one on a corpus).
* :class:`PhonemeTokenizer` — espeak-ng IPA (the ``espeak-ng`` executable), then characters.

A tokenizer saves itself as a small JSON-able dict (:meth:`Tokenizer.to_dict`, kept in
checkpoints) and comes back with :func:`tokenizer_from_dict`.  :class:`TextFrontEnd`
ties a :class:`~core.config.TextConfig` to a tokenizer: checks, normalises, encodes,
intersperses.  Token ids feed the text encoder; they carry no time axis.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .config import TextConfig
from .normalize import normalize_text, number_to_words, ordinal_to_words, split_sentences, year_to_words

log = logging.getLogger(__name__)

__all__ = ["TextError", "normalize_text", "number_to_words", "ordinal_to_words", "year_to_words",
           "Tokenizer", "ByteTokenizer", "CharTokenizer", "PhonemeTokenizer", "DEFAULT_CHARS",
           "DEFAULT_IPA_SYMBOLS", "tokenizer_from_dict", "build_tokenizer", "intersperse",
           "TextFrontEnd", "TextReading", "split_sentences", "PAD_ID", "BLANK_ID", "UNK_ID", "N_SPECIAL"]

PAD_ID, BLANK_ID, UNK_ID, N_SPECIAL = 0, 1, 2, 3


class TextError(ValueError):
    """Text cannot be turned into tokens; the message says what is wrong and what to do."""


# =========================================================================== tokenizers


class Tokenizer:
    """Base class: ``encode(str) -> list[int]`` and back, with shared reserved ids."""

    kind = ""
    pad_id, blank_id, unk_id = PAD_ID, BLANK_ID, UNK_ID

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def unknown_symbols(self, text: str) -> list[str]:
        """Characters of ``text`` this tokenizer has no id for (they become ``unk_id``,
        which the model hears as nothing it learnt), each once, in order of appearance."""
        return []

    def decode(self, ids: Iterable[int]) -> str:
        """Best effort inverse of :meth:`encode`: pad and blank are dropped, unknown or
        out-of-range ids become U+FFFD."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes shifted past the reserved ids: byte b -> id b + 3 (vocab 259).
    Lone surrogates are kept (``surrogatepass``), so any Python ``str`` encodes."""

    kind = "bytes"

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + 256

    def encode(self, text: str) -> list[int]:
        return [b + N_SPECIAL for b in text.encode("utf-8", errors="surrogatepass")]

    def decode(self, ids: Iterable[int]) -> str:
        raw = bytearray()
        for i in ids:
            i = int(i)
            if N_SPECIAL <= i < N_SPECIAL + 256:
                raw.append(i - N_SPECIAL)
            elif i not in (PAD_ID, BLANK_ID):
                raw += "\ufffd".encode()
        try:
            return raw.decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "vocab_size": self.vocab_size}


DEFAULT_CHARS = [chr(c) for c in range(32, 127)]  # printable ASCII, space first


class CharTokenizer(Tokenizer):
    """One id per symbol (a single code point): ``symbols[k] -> k + 3``; characters not
    in the list map to ``unk_id``.  Build the list from a corpus with :meth:`fit`."""

    kind = "chars"

    def __init__(self, symbols: Sequence[str]):
        symbols = list(symbols)
        bad = [s for s in symbols if not isinstance(s, str) or len(s) != 1]
        if bad:
            raise TextError(f"each symbol must be one character, got {bad[0]!r}")
        if len(set(symbols)) != len(symbols):
            dup = next(s for s in symbols if symbols.count(s) > 1)
            raise TextError(f"symbol {dup!r} appears more than once in the symbol list")
        self.symbols = symbols
        self._ids = {s: k + N_SPECIAL for k, s in enumerate(symbols)}

    @classmethod
    def fit(cls, texts: Iterable[str], min_count: int = 1) -> "CharTokenizer":
        """Symbols = every character seen at least ``min_count`` times, sorted by code
        point (deterministic).  Fit on the text the model will see (normalised)."""
        counts: dict[str, int] = {}
        for text in texts:
            for c in text:
                counts[c] = counts.get(c, 0) + 1
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + len(self.symbols)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(c, UNK_ID) for c in text]

    def unknown_symbols(self, text: str) -> list[str]:
        return list(dict.fromkeys(c for c in text if c not in self._ids and not c.isspace()))

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if N_SPECIAL <= i < self.vocab_size:
                out.append(self.symbols[i - N_SPECIAL])
            elif i not in (PAD_ID, BLANK_ID):
                out.append("\ufffd")
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "vocab_size": self.vocab_size, "symbols": list(self.symbols)}


# Punctuation, space, ASCII letters, then IPA (vowels, consonants, suprasegmentals and
# diacritics as espeak-ng prints them).  The order is part of a trained model; checkpoints
# store the list itself, so extending it here never breaks an old checkpoint.
DEFAULT_IPA_SYMBOLS = list(dict.fromkeys(
    " !\"'(),-.:;?¡¿—…" + "abcdefghijklmnopqrstuvwxyz"
    + "æɐɑɒɔəɘɚɛɜɝɞɤɨɪɯɵøœɶʉʊʌʏᵻᵿ"
    + "βçðħŋɓɕɖɗɟɠɡɢɣɥɦɧɫɬɭɮɰɱɲɳɴɸɹɺɻɽɾʀʁʂʃʄʈʋʍʎʐʑʒʔʕʘʙʛʜʝʟʡʢθχⱱǀǁǂǃ"
    + "ˈˌːˑ|‖↗↘" + "ʰʲʷˠˤⁿˡ" + "\u0303\u0329\u032a\u0325\u032f\u0308\u031d\u031e\u0361\u0306"))

# Punctuation (Unicode category P*, and lone surrogates, which would reach espeak-ng as
# "?") is kept as its own token and never reaches espeak-ng, except an apostrophe or
# hyphen between two letters ("don't", "well-known"): espeak-ng
# ends a clause at many punctuation marks (a line of input then gives two lines of
# output), so runs without any are what keeps its output lined up with its input.
_LANG_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")  # espeak's "(en)" markers
_REPEATS = re.compile(r"([^\w\s])\1{3,}")  # "!!!!!!!" -> "!!!"
_INNER = re.compile(r"(?<=[^\W\d_])['\-‐’](?=[^\W\d_])")  # apostrophe / hyphen inside a word
RUN_CHARS = 100  # piece length; espeak-ng also ends a clause after a few hundred phonemes
WORD_CHARS = 30  # a longer "word" (often spelled out letter by letter) is cut every 30 characters


def _split_punct(text: str) -> list[str]:
    """``[run, punct, run, punct, ..., run]``: maximal punctuation stretches at odd positions."""
    inner = {m.start() for m in _INNER.finditer(text)}
    out, current, in_punct = [], [], False
    for k, c in enumerate(text):
        cat = unicodedata.category(c)
        is_punct = (cat[0] == "P" and k not in inner) or cat == "Cs"  # a lone surrogate reaches espeak as "?"
        if is_punct != in_punct:
            out.append("".join(current))
            current, in_punct = [], is_punct
        current.append(c)
    out.append("".join(current))
    return out if not in_punct else out + [""]


def _pieces(run: str) -> list[str]:
    """Cut a run into pieces of at most RUN_CHARS characters at spaces (a word longer
    than WORD_CHARS every WORD_CHARS characters), so that espeak-ng reads each piece as
    one clause."""
    pieces, current = [], ""
    for word in run.split():
        for k in range(0, len(word), WORD_CHARS):
            part = word[k:k + WORD_CHARS]
            if current and len(current) + 1 + len(part) <= RUN_CHARS:
                current += " " + part
            else:
                pieces += [current] if current else []
                current = part
    return pieces + ([current] if current else [])


class PhonemeTokenizer(CharTokenizer):
    """espeak-ng IPA, tokenized as characters (unknown symbols -> ``unk_id``).

    Punctuation (every Unicode punctuation mark but an apostrophe or hyphen inside a
    word) is kept as its own token, a run of four or more of one punctuation or symbol
    character is cut to three; the words between are phonemised by espeak-ng
    (:mod:`core.espeak`: the library from PyPI, or the program; ``espeak`` picks) in
    pieces of at most :data:`RUN_CHARS` characters, one call per batch of up to
    ``chunk`` pieces.  ``to_dict`` records which espeak-ng and its version.
    The work is bounded: a batch whose output lines do not pair up with its pieces is
    halved until they do, so a stray clause break costs a few extra processes, never
    one process per piece.
    """

    kind = "phonemes"
    chunk = 500

    def __init__(self, language: str = "en-us", symbols: Sequence[str] | None = None, espeak: str = "auto"):
        from .espeak import EspeakError, find_espeak

        super().__init__(DEFAULT_IPA_SYMBOLS if symbols is None else symbols)
        try:
            self.espeak = find_espeak(language, espeak)
        except EspeakError as exc:
            raise TextError(str(exc)) from None
        self.language = language
    @staticmethod
    def _clean(line: str) -> str:
        return " ".join(_LANG_SWITCH.sub("", line).split())

    def _phonemize_runs(self, runs: list[str]) -> list[str]:
        """One IPA string per run (a run has no newline and no clause-ending punctuation).
        espeak-ng reads stdin line by line and prints one line per clause; when the line
        count differs, the batch is halved and each half tried again, and a single run
        that still splits has its lines joined."""
        from .espeak import EspeakError

        try:
            lines = self.espeak.phonemize_lines(runs)
        except EspeakError as exc:
            raise TextError(str(exc)) from None
        if len(lines) == len(runs):
            return [self._clean(line) for line in lines]
        if len(runs) == 1:
            return [self._clean(" ".join(lines))]
        half = len(runs) // 2
        return self._phonemize_runs(runs[:half]) + self._phonemize_runs(runs[half:])

    def phonemize_batch(self, texts: Sequence[str]) -> list[str]:
        """IPA for each text, e.g. ``"Hello, world!" -> "həlˈoʊ, wˈɜːld!"`` (en-us)."""
        split = []
        for text in texts:
            text = " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())
            split.append(_split_punct(_REPEATS.sub(r"\1\1\1", text)))  # runs even, punctuation odd
        runs = {p.strip() for parts in split for p in parts[::2] if p.strip()}
        pieces = {run: _pieces(run) for run in runs}
        todo = sorted({piece for ps in pieces.values() for piece in ps})
        chunks = [todo[i:i + self.chunk] for i in range(0, len(todo), self.chunk)]
        if len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=2) as pool:
                done = list(pool.map(self._phonemize_runs, chunks))
        else:
            done = [self._phonemize_runs(c) for c in chunks]
        piece_ipa = dict(zip(todo, (s for chunk in done for s in chunk)))
        ipa = {run: " ".join(piece_ipa[p] for p in ps) for run, ps in pieces.items()}

        def swap(run: str) -> str:  # keep the spaces around a run, which decide where punctuation sits
            core = run.strip()
            return run[:len(run) - len(run.lstrip())] + ipa[core] + run[len(run.rstrip()):] if core else run

        return [" ".join("".join(p if k % 2 else swap(p) for k, p in enumerate(parts)).split()) for parts in split]

    def phonemize(self, text: str) -> str:
        return self.phonemize_batch([text])[0]

    def encode(self, text: str) -> list[int]:
        return super().encode(self.phonemize(text))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [super(PhonemeTokenizer, self).encode(p) for p in self.phonemize_batch(texts)]

    def unknown_symbols(self, text: str) -> list[str]:
        return []  # espeak-ng reads any text; its rare unlisted IPA symbols are not the user's doing

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "language": self.language, "espeak": self.espeak.name,
                "espeak_version": self.espeak.version}


_KINDS = {"bytes": ByteTokenizer, "chars": CharTokenizer, "phonemes": PhonemeTokenizer}


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict` output (as saved in checkpoints)."""
    if not isinstance(d, dict) or d.get("type") not in _KINDS:
        kind = d.get("type") if isinstance(d, dict) else d
        raise TextError(f"unknown tokenizer type {kind!r}; valid: {', '.join(_KINDS)}")
    allowed = {"bytes": {"type", "vocab_size"}, "chars": {"type", "vocab_size", "symbols"},
               "phonemes": {"type", "vocab_size", "symbols", "language", "espeak", "espeak_version"}}[d["type"]]
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise TextError(f"unknown key {unknown[0]!r} in {d['type']} tokenizer; valid: {', '.join(sorted(allowed))}")
    if d["type"] == "bytes":
        tok: Tokenizer = ByteTokenizer()
    elif d["type"] == "chars":
        if "symbols" not in d:
            raise TextError("a chars tokenizer needs its 'symbols' list")
        tok = CharTokenizer(d["symbols"])
    else:
        tok = PhonemeTokenizer(d.get("language", "en-us"), d.get("symbols"))
        made = (d.get("espeak"), d.get("espeak_version"))
        if made[1] and made != (tok.espeak.name, tok.espeak.version):
            log.warning("this checkpoint's phonemes were made by espeak-ng %s (%s); this machine has %s (%s): a "
                        "few words may be phonemised differently (pip install phonemizer espeakng-loader gives "
                        "the pinned library)", made[1], made[0], tok.espeak.version, tok.espeak.name)
    if "vocab_size" in d and d["vocab_size"] != tok.vocab_size:
        raise TextError(f"{d['type']} tokenizer says vocab_size {d['vocab_size']} but its symbols give "
                        f"{tok.vocab_size}; the saved tokenizer is inconsistent")
    return tok


def build_tokenizer(config: TextConfig, symbols: Sequence[str] | None = None) -> Tokenizer:
    """The tokenizer ``config.tokenizer`` names.  ``symbols`` is the symbol list for
    ``chars`` (default :data:`DEFAULT_CHARS`) and ``phonemes`` (default
    :data:`DEFAULT_IPA_SYMBOLS`); ``bytes`` takes none."""
    if config.tokenizer not in _KINDS:
        raise TextError(f"unknown tokenizer {config.tokenizer!r}; valid: {', '.join(_KINDS)}")
    if config.tokenizer == "bytes":
        if symbols is not None:
            raise TextError("the bytes tokenizer takes no symbol list (symbols are for 'chars' and 'phonemes')")
        return ByteTokenizer()
    if config.tokenizer == "chars":
        return CharTokenizer(DEFAULT_CHARS if symbols is None else symbols)
    return PhonemeTokenizer(config.language, symbols)


def intersperse(ids: Sequence[int], blank: int = BLANK_ID) -> list[int]:
    """Glow-TTS layout: ``[x1, x2] -> [b, x1, b, x2, b]`` (length 2n + 1; ``[] -> [b]``)."""
    out = [blank] * (2 * len(ids) + 1)
    out[1::2] = list(ids)
    return out


# Normalisation can multiply the length (a digit becomes " seven", "%" " percent "): the
# normalised text may be at most this many times text.max_chars, which bounds the work
# of espeak-ng and of the text encoder's attention for any input within the limit.
EXPANSION_LIMIT = 1.5


@dataclass(frozen=True)
class TextReading:
    """``text`` as the model reads it: ``normalized`` (numbers, symbols and
    abbreviations written out) and ``unknown``: characters the tokenizer has no id
    for, which the model cannot voice."""

    normalized: str
    unknown: tuple[str, ...] = ()

    @classmethod
    def join(cls, parts: Sequence["TextReading"]) -> "TextReading":
        """The reading of a text made of ``parts`` (its sentence chunks)."""
        return cls(" ".join(r.normalized for r in parts), tuple(dict.fromkeys(c for r in parts for c in r.unknown)))

    def warning(self) -> str:
        """A sentence for the user, empty when every character can be voiced."""
        if not self.unknown:
            return ""
        shown = " ".join(repr(c) for c in self.unknown[:12]) + (" ..." if len(self.unknown) > 12 else "")
        return (f"this voice has no symbol for {shown}: those characters are not spoken "
                f"(the model read: {self.normalized!r})")


class TextFrontEnd:
    """Check, normalise, tokenize and (optionally) intersperse, as ``config`` says.
    Input longer than ``config.max_chars``, or whose normalised form is longer than
    :data:`EXPANSION_LIMIT` times that, is refused with :class:`TextError`."""

    def __init__(self, config: TextConfig, tokenizer: Tokenizer):
        if tokenizer.kind != config.tokenizer:
            raise TextError(f"text.tokenizer is {config.tokenizer!r} but a {tokenizer.kind!r} tokenizer was given")
        self.config, self.tokenizer = config, tokenizer

    def prepare(self, text: str) -> str:
        """The checked, normalised text that gets tokenized.  The length limit applies to
        the text as given (before normalisation)."""
        if not isinstance(text, str):
            raise TextError(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise TextError("text is empty; give at least one word to speak")
        if len(text) > self.config.max_chars:
            raise TextError(f"text is {len(text)} characters long, over the limit of {self.config.max_chars} "
                            "(text.max_chars); split it with core.text.split_sentences or raise the limit")
        if self.config.normalize:
            text = normalize_text(text, self.config.language)
            if not text:
                raise TextError("text has nothing left to speak after normalisation")
            limit = int(EXPANSION_LIMIT * self.config.max_chars)
            if len(text) > limit:
                raise TextError(f"text reads out to {len(text)} characters once numbers and symbols are spelled out, "
                                f"over the limit of {limit} ({EXPANSION_LIMIT} x text.max_chars); split it with "
                                "core.text.split_sentences or shorten the numbers")
        return text

    def _finish(self, ids: list[int]) -> list[int]:
        if not ids:
            raise TextError("text gave no tokens; give at least one word to speak")
        return intersperse(ids, self.tokenizer.blank_id) if self.config.intersperse_blank else ids

    def __call__(self, text: str) -> list[int]:
        return self._finish(self.tokenizer.encode(self.prepare(text)))

    def read_batch(self, texts: Sequence[str]) -> list[tuple[list[int], "TextReading"]]:
        """Token ids and :class:`TextReading` of each text, normalising each once and
        tokenizing all in one batched call (one espeak-ng run)."""
        prepared = [self.prepare(t) for t in texts]
        ids = self.tokenizer.encode_batch(prepared)
        return [(self._finish(i), TextReading(p, tuple(self.tokenizer.unknown_symbols(p))))
                for i, p in zip(ids, prepared)]

    def reading(self, text: str) -> "TextReading":
        """What the model will read for ``text``: the normalised text and the characters
        it has no symbol for (see :meth:`Tokenizer.unknown_symbols`)."""
        prepared = self.prepare(text)
        return TextReading(prepared, tuple(self.tokenizer.unknown_symbols(prepared)))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Like calling on each text, in one batched tokenizer call (one espeak-ng run)."""
        return [self._finish(ids) for ids in self.tokenizer.encode_batch([self.prepare(t) for t in texts])]
