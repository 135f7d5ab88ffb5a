"""A seeded generator of hostile text for the text front end (issue 21).

``nasty_strings(seed, n, max_len)`` returns ``n`` strings of at most ``max_len``
characters built from pieces an attacker or a careless paste would produce: huge digit
runs, malformed digit groups (``1,,000``, ``0,000``, ``1.2.3``), currency and percent
signs glued to them, long punctuation and symbol runs, every whitespace kind, control
characters, lone surrogates, combining-mark stacks, emoji sequences, right-to-left
text, very long tokens, abbreviations and sentence ends.  Same seed, same strings.
Import with ``from text_fuzz import nasty_strings`` (tests/ is on the path in pytest).
"""

from __future__ import annotations

import random

__all__ = ["nasty_strings", "PIECES"]

_DIGITS = "0123456789"
_SEPARATORS = [",", ".", ",,", "..", ", ", "'", "_", "\u2044", ":", "/", "-", "\u00a0", "\u202f"]
_SYMBOLS = list("!?.,;:-—–…\"'()[]{}<>#$%^&*~|\\/@+=`_¡¿§¶©®™°±×÷€£¥¢")
_WHITESPACE = [" ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\u2029", "\u3000", "\u200b", "\ufeff", "\x0b", "\x0c",
               "\x85", "\u2003", "\u180e"]
_CONTROLS = [chr(c) for c in list(range(0, 32)) + list(range(0x7f, 0xa0))]
_SURROGATES = ["\ud800", "\udfff", "\udc00", "\ud83d"]
_COMBINING = ["\u0301", "\u0308", "\u0336", "\u20dd", "\u0489", "\u0345"]
_EMOJI = ["🙂", "👩\u200d👩\u200d👧", "🇬🇧", "👍🏽", "\U0001f680", "❤\ufe0f", "#\ufe0f\u20e3", "1\ufe0f\u20e3"]
_SCRIPTS = ["مرحبا", "שלום", "\u202eevil\u202c", "\u200f\u200e", "日本語", "中文", "ελληνικά", "Привет", "١٢٣٤٥",
            "٣,٠٠٠", "߁߂", "𝟏𝟐𝟑", "①②", "½", "⅞", "²³", "Ⅻ", "ﬁ", "㎏", "\U0010ffff", "\ufffd", "\ufdd0"]
_WORDS = ["Mr.", "Dr.", "St.", "No.", "etc.", "e.g.", "vs.", "the", "cat", "Hello", "world", "1st", "22nd", "3rd",
          "1990s", "10:30", "-5", "$", "€", "£", "¥", "%", "&", "@", "+", "="]


def _number(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:  # a huge digit run, past Python's 4300-digit int() limit
        return "".join(rng.choice(_DIGITS) for _ in range(rng.choice([16, 100, 4301, 5000, 20000])))
    if kind == 1:  # digit groups with malformed separators
        return rng.choice(_DIGITS[1:]) + "".join(rng.choice(_SEPARATORS) + "".join(rng.choice(_DIGITS)
                                                  for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 8)))
    if kind == 2:  # leading zeros with commas
        return "0" * rng.randint(1, 3) + "," + "".join(rng.choice(_DIGITS) for _ in range(3))
    if kind == 3:  # currency / percent / ordinal glued to long numbers
        n = "".join(rng.choice(_DIGITS) for _ in range(rng.choice([3, 20, 400, 5000])))
        return rng.choice(["$", "€", "£", "¥", ""]) + n + rng.choice(["", "%", "st", "th", ".5", ".", "s", " million"])
    if kind == 4:  # fractions and clock times with big parts
        a = "".join(rng.choice(_DIGITS) for _ in range(rng.choice([1, 5, 5000])))
        return a + rng.choice(["\u2044", ":"]) + "".join(rng.choice(_DIGITS) for _ in range(rng.choice([1, 2, 5000])))
    return str(rng.randint(-10**20, 10**20))


def _run(rng: random.Random, alphabet: list[str]) -> str:
    """A long run of one symbol or of symbols drawn from ``alphabet``."""
    n = rng.choice([2, 10, 100, 1000, 5000])
    if rng.random() < 0.5:
        return rng.choice(alphabet) * n
    return "".join(rng.choice(alphabet) for _ in range(n))


def _piece(rng: random.Random) -> str:
    kind = rng.randrange(12)
    if kind == 0:
        return _number(rng)
    if kind == 1:
        return _run(rng, _SYMBOLS)
    if kind == 2:
        return _run(rng, _WHITESPACE)
    if kind == 3:
        return "".join(rng.choice(_CONTROLS) for _ in range(rng.randint(1, 20)))
    if kind == 4:
        return rng.choice(_SURROGATES) * rng.randint(1, 3)
    if kind == 5:
        return rng.choice("aeiouxyz") + "".join(rng.choice(_COMBINING) for _ in range(rng.choice([1, 5, 200])))
    if kind == 6:
        return "".join(rng.choice(_EMOJI) for _ in range(rng.randint(1, 50)))
    if kind == 7:
        return rng.choice(_SCRIPTS)
    if kind == 8:  # a very long token
        return rng.choice("abcxyz") * rng.choice([50, 800, 3000])
    if kind == 9:  # sentence ends and abbreviations, many times over
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 600)))
    if kind == 10:  # mixed punctuation between words (edge and inside)
        return rng.choice(["a", "hello", "x"]) + rng.choice(_SYMBOLS) * rng.randint(1, 5) + rng.choice(["b", "world"])
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 8)))


def nasty_strings(seed: int = 0, n: int = 1000, max_len: int = 2000) -> list[str]:
    """``n`` hostile strings (deterministic in ``seed``): nine in ten of at most ``max_len``
    characters, one in ten up to ``3 * max_len`` (past the front end's limit, so that
    the limit itself and the bare normaliser on long input are exercised)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [_piece(rng) for _ in range(rng.randint(1, 6))]
        text = rng.choice(["", " ", "\n"]).join(parts)
        out.append(text[:max_len if rng.random() < 0.9 else 3 * max_len])
    return out
