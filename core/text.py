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

import re
import shutil
import subprocess
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence

from .config import TextConfig

__all__ = ["TextError", "normalize_text", "number_to_words", "ordinal_to_words", "year_to_words",
           "Tokenizer", "ByteTokenizer", "CharTokenizer", "PhonemeTokenizer", "DEFAULT_CHARS",
           "DEFAULT_IPA_SYMBOLS", "tokenizer_from_dict", "build_tokenizer", "intersperse",
           "TextFrontEnd", "split_sentences", "PAD_ID", "BLANK_ID", "UNK_ID", "N_SPECIAL"]

PAD_ID, BLANK_ID, UNK_ID, N_SPECIAL = 0, 1, 2, 3


class TextError(ValueError):
    """Text cannot be turned into tokens; the message says what is wrong and what to do."""


# =========================================================================== normaliser

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                       "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def _under_1000(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    words = [f"{_ONES[hundreds]} hundred"] if hundreds else []
    if rest:
        tens, ones = divmod(rest, 10)
        words.append(_ONES[rest] if rest < 20 else _TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    return " ".join(words)


def number_to_words(n: int) -> str:
    """Cardinal in American English, no "and": 1234 -> "one thousand two hundred thirty-four".
    Up to trillions; 10**15 and more are read digit by digit."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    words = []
    for value, name in _SCALES:
        if n >= value:
            words.append(f"{_under_1000(n // value)} {name}")
            n %= value
    if n:
        words.append(_under_1000(n))
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """21 -> "twenty-first", 100 -> "one hundredth", 12 -> "twelfth"."""
    words = number_to_words(n)
    head, sep, last = max((words.rpartition(" "), words.rpartition("-")), key=lambda p: len(p[0]))
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_to_words(n: int) -> str:
    """Read 1001..2999 as a year: 1984 -> "nineteen eighty-four", 1905 -> "nineteen oh five",
    1900 -> "nineteen hundred", 2000 -> "two thousand", 2008 -> "two thousand eight",
    2024 -> "twenty twenty-four"; other numbers as cardinals."""
    if not 1000 < n < 3000 or n == 2000 or 2000 < n < 2010:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    return f"{number_to_words(high)} {'oh ' if low < 10 else ''}{number_to_words(low)}"


def _plural(words: str) -> str:
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _digits(s: str) -> str:
    return " ".join(_ONES[int(d)] for d in s)


# (abbreviation regex, expansion); a regex so that "St." can depend on what follows.
_ABBREVIATIONS = [(re.compile(rf"(?<![\w.]){a}(?!\w)"), b) for a, b in (
    (r"Mr\.", "Mister"), (r"Mrs\.", "Misses"), (r"Ms\.", "Miz"), (r"Dr\.", "Doctor"),
    (r"Prof\.", "Professor"), (r"Jr\.", "Junior"), (r"Sr\.", "Senior"), (r"Capt\.", "Captain"),
    (r"Gen\.", "General"), (r"Lt\.", "Lieutenant"), (r"Col\.", "Colonel"), (r"Sgt\.", "Sergeant"),
    (r"Mt\.", "Mount"), (r"Ltd\.", "Limited"), (r"Co\.", "Company"), (r"Ave\.", "Avenue"),
    (r"St\.(?=\s+[A-Z])", "Saint"), (r"St\.", "Street"), (r"No\.(?=\s*\d)", "number"),
    (r"[Vv]s\.", "versus"), (r"e\.g\.", "for example"), (r"i\.e\.", "that is"),
    (r"approx\.", "approximately"), (r"etc\.(?=\s*$|\s+[A-Z])", "et cetera."), (r"etc\.", "et cetera"),
)]
_SYMBOLS = {"&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "%": " percent "}
_PUNCT_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2212": "-"})
# symbol: (singular, plural, minor singular, minor plural); None: no minor unit read.
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", None, None)}
_NUM = r"(\d{1,3}(?:,\d{3})+|\d+)"  # an integer, optionally with thousands commas
_MINUS = re.compile(r"(?<!\S)-(?=\d)")  # "-5" -> "minus 5" (then the number rules)
_NUMBER_RULES: list[tuple[re.Pattern, Any]] = []


def _rule(pattern: str, flags: int = 0):
    def register(fn):
        _NUMBER_RULES.append((re.compile(pattern, flags), fn))
        return fn
    return register


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def _decimal(whole: str, frac: str | None) -> str:
    return number_to_words(_int(whole)) + (f" point {_digits(frac)}" if frac else "")


@_rule(rf"([$€£¥])\s?{_NUM}(?:\.(\d+))?(?:\s+(thousand|million|billion|trillion)\b)?")
def _currency(m: re.Match) -> str:
    one, many, minor_one, minor_many = _CURRENCIES[m[1]]
    if m[4]:  # "$2.5 million" -> "two point five million dollars"
        return f"{_decimal(m[2], m[3])} {m[4]} {many}"
    whole, frac = _int(m[2]), m[3]
    if frac and (minor_one is None or len(frac) > 2):
        return f"{_decimal(m[2], frac)} {many}"
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = [f"{number_to_words(whole)} {one if whole == 1 else many}"] if whole or not cents else []
    if cents:
        parts.append(f"{number_to_words(cents)} {minor_one if cents == 1 else minor_many}")
    return " and ".join(parts)


@_rule(rf"{_NUM}(?:\.(\d+))?\s?%")
def _percent(m: re.Match) -> str:
    return _decimal(m[1], m[2]) + " percent"


@_rule(rf"{_NUM}(st|nd|rd|th)\b", re.IGNORECASE)
def _ordinal(m: re.Match) -> str:
    return ordinal_to_words(_int(m[1]))


@_rule(r"(\d+)\u2044(\d+)")  # NFKC turns "½" into "1⁄2" (fraction slash)
def _fraction(m: re.Match) -> str:
    num, den = int(m[1]), int(m[2])
    name = {2: "half", 4: "quarter"}.get(den) or ordinal_to_words(den)
    if num != 1:
        name = "halves" if den == 2 else _plural(name)
    return f"{number_to_words(num)} {name}"


@_rule(r"(\d{4})s\b")  # decades: "1990s"
def _decade(m: re.Match) -> str:
    return _plural(year_to_words(int(m[1])))


@_rule(r"([01]?\d|2[0-3]):([0-5]\d)\b")  # clock times: "10:30", "3:05", "7:00"
def _clock(m: re.Match) -> str:
    hour, minute = number_to_words(int(m[1])), int(m[2])
    if minute == 0:
        return f"{hour} o'clock"
    return f"{hour} {'oh ' if minute < 10 else ''}{number_to_words(minute)}"


@_rule(rf"{_NUM}\.(\d+)")
def _decimal_number(m: re.Match) -> str:
    return _decimal(m[1], m[2])


@_rule(_NUM)
def _integer(m: re.Match) -> str:
    s = m[1]
    if len(s) > 1 and s.startswith("0"):
        return _digits(s)  # "007" -> "zero zero seven"
    if len(s) == 4:
        return year_to_words(int(s))
    return number_to_words(_int(s))


def _apply(pattern: re.Pattern, fn, text: str) -> str:
    """Substitute number matches not glued to other digits, spacing them off letters."""
    out, pos = [], 0
    for m in pattern.finditer(text):
        a, b = m.span()
        if (a > 0 and text[a - 1].isdigit()) or (b < len(text) and text[b].isdigit()):
            continue
        words = fn(m)
        if a > 0 and text[a - 1].isalpha():
            words = " " + words
        if b < len(text) and text[b].isalpha():
            words += " "
        out += [text[pos:a], words]
        pos = b
    return "".join(out) + text[pos:]


def _is_english(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] == "en"


def normalize_text(text: str, language: str = "en") -> str:
    """Normalise text for speaking.

    Always: Unicode NFKC, control characters to spaces, whitespace collapsed and stripped.
    English (``en``, ``en-us``, ``en-gb``, ...) also: curly quotes made straight,
    abbreviations (Mr., Dr., St., etc., vs., ...), currency ("$5" -> "five dollars"),
    percentages, ordinals ("21st" -> "twenty-first"), decades, clock times, decimals
    ("3.5" -> "three point five"), years ("1984" -> "nineteen eighty-four", every plain
    4-digit number 1001..2999 is read as a year), integers up to trillions and symbols
    (& @ + = %).  Case is kept.
    """
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    if _is_english(language):
        text = text.translate(_PUNCT_MAP)
        for pattern, expansion in _ABBREVIATIONS:
            text = pattern.sub(expansion, text)
        text = _MINUS.sub("minus ", text)
        for pattern, fn in _NUMBER_RULES:
            text = _apply(pattern, fn, text)
        for symbol, words in _SYMBOLS.items():
            text = text.replace(symbol, words)
    return " ".join(text.split())


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
        raw, out = bytearray(), []
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

_PHONEME_PUNCT = re.compile(r"([—…]+|(?<!\S)[.,;:!?¡¿\"()]+|[.,;:!?¡¿\"()]+(?!\S))")
_LANG_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")  # espeak's "(en)" markers


class PhonemeTokenizer(CharTokenizer):
    """espeak-ng IPA, tokenized as characters (unknown symbols -> ``unk_id``).

    Punctuation at word edges (``. , ; : ! ? " ( )`` and dashes) is kept as its own
    token; the words between are phonemised by the ``espeak-ng`` executable, one
    process per batch of up to ``chunk`` word runs (one run per input line).
    """

    kind = "phonemes"
    chunk = 500

    def __init__(self, language: str = "en-us", symbols: Sequence[str] | None = None):
        super().__init__(DEFAULT_IPA_SYMBOLS if symbols is None else symbols)
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise TextError("the phonemes tokenizer needs the espeak-ng program, which is not installed; "
                            "install it with: apt-get install espeak-ng (or use text.tokenizer 'bytes' or 'chars')")
        self.executable, self.language = exe, language
        probe = self._run(["a"], check=False)
        if probe.returncode != 0:
            voices = subprocess.run([exe, "--voices"], capture_output=True, text=True).stdout.split("\n")[1:]
            valid = sorted({line.split()[1] for line in voices if len(line.split()) > 1})
            raise TextError(f"unknown espeak-ng language {language!r}; valid: {', '.join(valid)}")

    def _run(self, lines: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.executable, "-q", "-b", "1", "--ipa", "-v", self.language],
                              input="\n".join(lines) + "\n", capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=60 + len(lines))
        if check and proc.returncode != 0:
            raise TextError(f"espeak-ng failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
        return proc

    @staticmethod
    def _clean(line: str) -> str:
        return " ".join(_LANG_SWITCH.sub("", line).split())

    def _phonemize_runs(self, runs: list[str]) -> list[str]:
        """One IPA string per run (a run has no newline and no edge punctuation).  espeak-ng
        reads stdin line by line and prints one line per clause; when a run splits into
        several clauses the line count differs and that chunk falls back to a process per run."""
        lines = self._run(runs).stdout.splitlines()
        if len(lines) == len(runs):
            return [self._clean(line) for line in lines]
        return [self._clean(" ".join(self._run([r]).stdout.splitlines())) for r in runs]

    def phonemize_batch(self, texts: Sequence[str]) -> list[str]:
        """IPA for each text, e.g. ``"Hello, world!" -> "həlˈoʊ, wˈɜːld!"`` (en-us)."""
        split = []
        for text in texts:
            text = " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())
            split.append(_PHONEME_PUNCT.split(text))  # runs at even, punctuation at odd positions
        runs = sorted({p.strip() for parts in split for p in parts[::2] if p.strip()})
        chunks = [runs[i:i + self.chunk] for i in range(0, len(runs), self.chunk)]
        if len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=2) as pool:
                done = list(pool.map(self._phonemize_runs, chunks))
        else:
            done = [self._phonemize_runs(c) for c in chunks]
        ipa = dict(zip(runs, (s for chunk in done for s in chunk)))

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

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "language": self.language}


_KINDS = {"bytes": ByteTokenizer, "chars": CharTokenizer, "phonemes": PhonemeTokenizer}


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict` output (as saved in checkpoints)."""
    if not isinstance(d, dict) or d.get("type") not in _KINDS:
        kind = d.get("type") if isinstance(d, dict) else d
        raise TextError(f"unknown tokenizer type {kind!r}; valid: {', '.join(_KINDS)}")
    allowed = {"bytes": {"type", "vocab_size"}, "chars": {"type", "vocab_size", "symbols"},
               "phonemes": {"type", "vocab_size", "symbols", "language"}}[d["type"]]
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


class TextFrontEnd:
    """Check, normalise, tokenize and (optionally) intersperse, as ``config`` says."""

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
        return text

    def _finish(self, ids: list[int]) -> list[int]:
        if not ids:
            raise TextError("text gave no tokens; give at least one word to speak")
        return intersperse(ids, self.tokenizer.blank_id) if self.config.intersperse_blank else ids

    def __call__(self, text: str) -> list[int]:
        return self._finish(self.tokenizer.encode(self.prepare(text)))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Like calling on each text, in one batched tokenizer call (one espeak-ng run)."""
        return [self._finish(ids) for ids in self.tokenizer.encode_batch([self.prepare(t) for t in texts])]


# =========================================================================== splitting

# words whose final "." is an abbreviation, not a sentence end (for split_sentences)
_NO_SENTENCE_END = set("Mr Mrs Ms Dr Prof Jr Sr Capt Gen Lt Col Sgt Mt St No vs Vs e.g i.e approx".split())
_SPLITTERS = (re.compile(r"(?<=[.!?;…])[\"')\]]*\s+"), re.compile(r"(?<=[,:—])\s+|\s+(?=[—–-]\s)"),
              re.compile(r"\s+"))


def _parts(text: str, level: int) -> list[str]:
    """Cut at the level's boundaries (delimiters stay with the left part)."""
    parts, start = [], 0
    for m in _SPLITTERS[level].finditer(text):
        left = text[start:m.start()] + m.group().rstrip()
        if level == 0 and left.endswith(".") and left.split()[-1][:-1] in _NO_SENTENCE_END:
            continue  # "Mr. Smith" is one sentence
        parts.append(left)
        start = m.end()
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _pieces(text: str, max_chars: int, level: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    if level == len(_SPLITTERS):  # one word longer than the limit: cut it
        return [text[i:i + max_chars] for i in range(0, len(text), max_chars)]
    out, current = [], ""
    for part in _parts(text, level):
        if len(part) > max_chars:
            out += [current] if current else []
            out += _pieces(part, max_chars, level + 1)
            current = ""
        elif current and len(current) + 1 + len(part) <= max_chars:
            current += " " + part
        else:
            out += [current] if current else []
            current = part
    return out + ([current] if current else [])


def split_sentences(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` characters for synthesis.

    Lines are hard boundaries.  A line that is too long is cut after sentence ends
    (``. ! ? ;``, not after abbreviations such as "Mr."), a sentence that is too long after
    commas, colons and dashes, then between words, and a single word that is too long
    every ``max_chars`` characters.  Consecutive parts are packed (joined by one space)
    while they fit.  Only whitespace at cut points is dropped: removing all whitespace
    from the pieces and from ``text`` gives the same string.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    return [p for line in text.splitlines() if line.strip() for p in _pieces(line.strip(), max_chars, 0)]
