"""English text normalisation (numbers, ordinals, years, currency, abbreviations,
symbols) and sentence splitting for long input.  Pure string functions; the tokenizers
in :mod:`core.text` use them."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["normalize_text", "number_to_words", "ordinal_to_words", "year_to_words", "split_sentences"]


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
    return _ordinalize(number_to_words(n))


def _ordinalize(words: str) -> str:
    """Make the last word of a cardinal ordinal: "twenty-one" -> "twenty-first"."""
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
    """Digit by digit, separators skipped: "0,07" -> "zero zero seven"."""
    return " ".join(_ONES[int(d)] for d in s if d.isdecimal())


# Longer digit runs are read digit by digit and never go through int(): Python refuses
# int() of more than 4300 digits, and int <-> str is quadratic in the length.
MAX_NUMBER_DIGITS = 15


def _words(s: str) -> str:
    """Cardinal words of a digit string with optional thousands commas, without int() of
    long runs: "1,234" -> "one thousand two hundred thirty-four"; 16+ digits: digit by digit."""
    digits = s.replace(",", "")
    if len(digits.lstrip("0")) > MAX_NUMBER_DIGITS:
        return _digits(digits)
    return number_to_words(int(digits))


def _small(s: str) -> int | None:
    """int of a digit string when it has at most MAX_NUMBER_DIGITS significant digits, else None."""
    digits = s.replace(",", "")
    return int(digits) if len(digits.lstrip("0")) <= MAX_NUMBER_DIGITS else None


# (abbreviation regex, expansion); a regex so that "St." can depend on what follows.
# Each comes with its literal stem ("Mr.", "s." for [Vv]s.), so the regex only runs on text holding it.
_ABBREVIATIONS = [(re.sub(r"\(\?=.*\)$|\[\w+\]", "", a).replace("\\", ""), re.compile(rf"(?<![\w.]){a}(?!\w)"), b)
                  for a, b in (
    (r"Mr\.", "Mister"), (r"Mrs\.", "Misses"), (r"Ms\.", "Miz"), (r"Dr\.", "Doctor"),
    (r"Prof\.", "Professor"), (r"Jr\.", "Junior"), (r"Sr\.", "Senior"), (r"Capt\.", "Captain"),
    (r"Gen\.", "General"), (r"Lt\.", "Lieutenant"), (r"Col\.", "Colonel"), (r"Sgt\.", "Sergeant"),
    (r"Mt\.", "Mount"), (r"Ltd\.", "Limited"), (r"Co\.", "Company"), (r"Ave\.", "Avenue"),
    (r"St\.(?=\s+[A-Z])", "Saint"), (r"St\.", "Street"), (r"No\.(?=\s*\d)", "number"),
    (r"[Vv]s\.", "versus"), (r"e\.g\.", "for example"), (r"i\.e\.", "that is"),
    (r"approx\.", "approximately"), (r"etc\.(?=\s*$|\s+[A-Z])", "et cetera."), (r"etc\.", "et cetera"),
)]
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly
_SYMBOLS = {"&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "%": " percent "}
_PUNCT_MAP = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2212": "-"})
# symbol: (singular, plural, minor singular, minor plural); None: no minor unit read.
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
               "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", None, None)}
# an integer, optionally with thousands commas; (?<!\d): a match only starts where a digit run does, so
# the engine never retries from inside a long run (quadratic backtracking); _apply skips such matches anyway
_NUM = r"(?<!\d)(\d{1,3}(?:,\d{3})+|\d+)"
_MINUS = re.compile(r"(?<!\S)-(?=\d)")  # "-5" -> "minus 5" (then the number rules)
_NUMBER_RULES: list[tuple[re.Pattern, Any]] = []


def _rule(pattern: str, flags: int = 0):
    def register(fn):
        _NUMBER_RULES.append((re.compile(pattern, flags), fn))
        return fn
    return register


def _decimal(whole: str, frac: str | None) -> str:
    return _words(whole) + (f" point {_digits(frac)}" if frac else "")


@_rule(rf"([$€£¥])\s?{_NUM}(?:\.(\d+))?(?:\s+(thousand|million|billion|trillion)\b)?")
def _currency(m: re.Match) -> str:
    one, many, minor_one, minor_many = _CURRENCIES[m[1]]
    if m[4]:  # "$2.5 million" -> "two point five million dollars"
        return f"{_decimal(m[2], m[3])} {m[4]} {many}"
    digits, frac = m[2].replace(",", "").lstrip("0"), m[3]
    if frac and (minor_one is None or len(frac) > 2):
        return f"{_decimal(m[2], frac)} {many}"
    cents = int(frac.ljust(2, "0")) if frac else 0
    parts = [f"{_words(m[2])} {one if digits == '1' else many}"] if digits or not cents else []
    if cents:
        parts.append(f"{number_to_words(cents)} {minor_one if cents == 1 else minor_many}")
    return " and ".join(parts)


@_rule(rf"{_NUM}(?:\.(\d+))?\s?%")
def _percent(m: re.Match) -> str:
    return _decimal(m[1], m[2]) + " percent"


@_rule(rf"{_NUM}(st|nd|rd|th)\b", re.IGNORECASE)
def _ordinal(m: re.Match) -> str:
    return _ordinalize(_words(m[1]))


@_rule(r"(?<!\d)(\d+)\u2044(\d+)")  # NFKC turns "½" into "1⁄2" (fraction slash)
def _fraction(m: re.Match) -> str:
    num, den = _small(m[1]), _small(m[2])
    name = {2: "half", 4: "quarter"}.get(den) or _ordinalize(_words(m[2]))  # type: ignore[arg-type]
    if num != 1:
        name = "halves" if den == 2 else _plural(name)
    return f"{_words(m[1])} {name}"


@_rule(r"(?<!\d)(\d{4})s\b")  # decades: "1990s"
def _decade(m: re.Match) -> str:
    return _plural(year_to_words(int(m[1])))


@_rule(r"(?<!\d)([01]?\d|2[0-3]):([0-5]\d)\b")  # clock times: "10:30", "3:05", "7:00"
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
    return _words(s)


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
    text = _CONTROL.sub(" ", text)
    if _is_english(language):
        text = text.translate(_PUNCT_MAP)
        for stem, pattern, expansion in _ABBREVIATIONS:
            if stem in text:
                text = pattern.sub(expansion, text)
        text = _MINUS.sub("minus ", text)
        for pattern, fn in _NUMBER_RULES:
            text = _apply(pattern, fn, text)
        for symbol, words in _SYMBOLS.items():
            text = text.replace(symbol, words)
    return " ".join(text.split())


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


def split_sentences(text: str, max_chars: int, pack: bool = True) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` characters for synthesis.

    Lines are hard boundaries.  A line that is too long is cut after sentence ends
    (``. ! ? ;``, not after abbreviations such as "Mr."), a sentence that is too long after
    commas, colons and dashes, then between words, and a single word that is too long
    every ``max_chars`` characters.  Consecutive parts are packed (joined by one space)
    while they fit.  Only whitespace at cut points is dropped: removing all whitespace
    from the pieces and from ``text`` gives the same string.  ``pack=False`` keeps every
    sentence a piece of its own (what streaming wants: the first sentence is ready first).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    if not pack:
        return [p for line in text.splitlines() if line.strip() for sentence in _parts(line.strip(), 0)
                for p in _pieces(sentence, max_chars, 0)]
    return [p for line in text.splitlines() if line.strip() for p in _pieces(line.strip(), max_chars, 0)]
