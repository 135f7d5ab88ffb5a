"""Which items each rater of a listening test gets: balanced subsets.

An *item* of a test is one cell of its grid of ``units`` x ``sentences``: a unit is
what one sentence is judged under (a condition for MOS; a pair of conditions for A/B
and ABX; a non-reference condition for SMOS and DCR; the whole page for MUSHRA; the
sentence itself for intelligibility, whose condition rotates per rater).  Without
``subset_per_rater`` every rater gets every item; with it, rater number ``i`` (0 for the
first rater who started the test, 1 for the next, ...) gets ``k`` items:

* the cells are laid out in a Latin-square order: position ``m`` holds unit
  ``m mod U`` of sentence ``(m // U + m mod U) mod S``, so any ``U`` consecutive
  positions hold every unit once, each of a different sentence (when ``S >= U``);
* rater ``i`` takes the ``k`` positions from ``i * k`` on, wrapping around.

Hence after any number of raters every item has been given to the same number of
raters, give or take one, and within one rater the units (conditions) appear equally
often, give or take one.  The presentation order of a rater's items stays the
rater's seeded shuffle (:func:`studio.listening.build_trials`).

``raters_per_item`` is the number of raters each item should get; the raters a test
needs are ``ceil(items * raters_per_item / k)``.  Raters beyond that number are still
let in (the rotation goes on), never turned away.
"""

from __future__ import annotations

import math
from typing import Optional

__all__ = ["latin_cell", "rater_cells", "raters_needed"]


def latin_cell(position: int, units: int, sentences: int) -> tuple:
    """The (unit, sentence) index pair at ``position`` (0 <= position < units *
    sentences) of the Latin-square layout described in the module doc."""
    if units < 1 or sentences < 1 or not 0 <= position < units * sentences:
        raise ValueError(f"position {position} outside a grid of {units} units x {sentences} sentences")
    unit = position % units
    return unit, (position // units + unit) % sentences


def rater_cells(units: int, sentences: int, subset: int, rater_index: int) -> list:
    """The (unit, sentence) cells rater number ``rater_index`` (0-based) gets when each
    rater gets ``subset`` of the ``units * sentences`` items."""
    n = units * sentences
    if not 1 <= subset <= n:
        raise ValueError(f"subset_per_rater must be 1..{n} (the test's items), got {subset}")
    if rater_index < 0:
        raise ValueError(f"rater index must be >= 0, got {rater_index}")
    start = rater_index * subset
    return [latin_cell((start + j) % n, units, sentences) for j in range(subset)]


def raters_needed(items: int, raters_per_item: int, subset: Optional[int] = None) -> int:
    """Raters needed so that each of ``items`` is rated by ``raters_per_item`` raters when
    each rater gets ``subset`` items (every item when None or 0)."""
    if items < 1 or raters_per_item < 1:
        raise ValueError(f"need items >= 1 and raters_per_item >= 1, got {items} and {raters_per_item}")
    k = subset or items
    return math.ceil(items * raters_per_item / k)
