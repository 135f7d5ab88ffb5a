"""Numbers, money, clock times, dates, years and ordinals, written as people type them.

The ``everyday`` corpus text (:mod:`core.everyday_text`) writes these with digits and
symbols ("$4.50", "7:30", "May 5th, 1987", "21st", "45%") and the corpus speaks
:func:`core.normalize.normalize_text` of the sentence, so flite, the recordings' text and
the model's own text front end all read a number the same way ("four dollars and fifty
cents", "seven thirty", "May fifth, nineteen eighty-seven").  Every function draws from
the ``random.Random`` it is given and nothing else.
"""

from __future__ import annotations

import random

from .everyday_words import MONTHS

__all__ = ["count", "amount", "money", "clock", "ordinal", "day_of_month", "date", "year", "percent",
           "decimal", "temperature", "DAYS_IN_MONTH"]

DAYS_IN_MONTH = dict(zip(MONTHS, (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)))
_CURRENCIES = ("$", "$", "$", "£", "€")


def count(rng: random.Random) -> int:
    """A count of things, small ones most often: 2..12 half the time, up to 100 a third,
    round hundreds and odd larger numbers the rest."""
    x = rng.random()
    if x < 0.5:
        return rng.randint(2, 12)
    if x < 0.83:
        return rng.randint(13, 100)
    if x < 0.93:
        return rng.choice((100, 200, 300, 500, 1000, 2000, 5000, 10000))
    return rng.randint(101, 999)


def amount(n: int) -> str:
    """``n`` with thousands commas past 9999 ("12,500"); four-digit numbers stay plain,
    which the normaliser reads as years ("1250" -> "twelve fifty"), as people say prices
    and house numbers."""
    return f"{n:,}" if n > 9999 else str(n)


def money(rng: random.Random) -> str:
    """"$4", "$12.99", "£0.50", "€1,200", "$2.5 million"."""
    sym = rng.choice(_CURRENCIES)
    x = rng.random()
    if x < 0.45:
        return f"{sym}{rng.randint(1, 99)}"
    if x < 0.8:
        whole, cents = rng.randint(0, 99), rng.choice((0, 25, 50, 75, 99, rng.randint(1, 98)))
        return f"{sym}{whole}.{cents or 50 if whole == 0 else cents:02d}"
    if x < 0.95:
        return f"{sym}{rng.choice((100, 150, 200, 250, 300, 500, 800, 1200, 2500, 15000, 45000))}"
    return f"{sym}{rng.randint(1, 9)}.{rng.randint(1, 9)} million"


def clock(rng: random.Random) -> str:
    """"7:30", "10:00", "3:05" (hours 1..12; quarters most often)."""
    minute = rng.choice((0, 0, 15, 30, 30, 45)) if rng.random() < 0.7 else rng.randint(1, 59)
    return f"{rng.randint(1, 12)}:{minute:02d}"


def ordinal(n: int) -> str:
    """"1st", "22nd", "13th", "103rd"."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def day_of_month(rng: random.Random, month: str) -> str:
    return ordinal(rng.randint(1, DAYS_IN_MONTH[month]))


def year(rng: random.Random, latest: int = 2029) -> int:
    """A year, most from 1950 to ``latest``."""
    return rng.randint(1950, latest) if rng.random() < 0.75 else rng.randint(1800, 1949)


def date(rng: random.Random, with_year: float = 0.3) -> str:
    """"May 5th", "the 21st of June", "October 3rd, 1987"."""
    month = rng.choice(MONTHS)
    day = day_of_month(rng, month)
    if rng.random() < 0.25:
        return f"the {day} of {month}"
    return f"{month} {day}, {year(rng)}" if rng.random() < with_year else f"{month} {day}"


def percent(rng: random.Random) -> str:
    return f"{rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80, 90, rng.randint(1, 99)))}%"


def decimal(rng: random.Random) -> str:
    """"3.5", "0.75", "12.25"."""
    return f"{rng.randint(0, 20)}.{rng.choice(('5', '25', '75', str(rng.randint(1, 9))))}"


def temperature(rng: random.Random) -> str:
    """Degrees, below zero now and then ("-5")."""
    return str(rng.randint(-25, -1) if rng.random() < 0.1 else rng.randint(0, 105))
