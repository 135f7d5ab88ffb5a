"""Ratings along training: when a test's conditions are checkpoints of one training run
(the same run folder, different steps), its MOS or preference per training step.

A checkpoint's run folder is the folder that holds its ``checkpoints/`` folder (the
trainer's layout ``<run>/checkpoints/step_XXXXXXXX.pt``; a checkpoint elsewhere counts
its own folder as the run), and its step is the number in ``step_XXXXXXXX`` in the file
name, else the ``step`` recorded in the checkpoint when the file can still be read.
The series uses the run with the most checkpoint conditions, when at least two of them
have different steps; ``note`` says when their sampler settings differ (then the
series mixes training progress with sampling changes).

Per step: MOS with the Student-t interval (MOS tests), or the Bradley-Terry strength
with its bootstrap interval and the share of votes won, a tie counting half (A/B tests).
The run's ``metrics.jsonl`` (loss curves) lies in ``run_folder``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from studio.ranking import BTRanking
from studio.results import RatingRecord, rated_scores
from studio.stats import mos_summary

__all__ = ["StepPoint", "TrainingSeries", "checkpoint_step", "run_folder_of", "training_series"]

_STEP = re.compile(r"step_?(\d+)")


@dataclass(frozen=True)
class StepPoint:
    step: int
    condition: str
    n: int
    mos: float = math.nan
    mos_ci95_low: float = math.nan
    mos_ci95_high: float = math.nan
    strength: float = math.nan
    strength_ci95_low: float = math.nan
    strength_ci95_high: float = math.nan
    win_rate: float = math.nan


@dataclass(frozen=True)
class TrainingSeries:
    run_folder: str
    points: tuple  # of StepPoint, by step
    note: str = ""


def checkpoint_step(path: str) -> Optional[int]:
    """The training step of a checkpoint file (name first, then its recorded step)."""
    m = _STEP.search(Path(path).stem)
    if m:
        return int(m.group(1))
    try:
        import core

        return int(core.load_checkpoint(path).step)
    except Exception:  # unreadable or moved: no step  # noqa: BLE001
        return None


def run_folder_of(path: str) -> Path:
    p = Path(path).resolve().parent
    return p.parent if p.name == "checkpoints" else p


def training_series(design: dict, ratings: Sequence[RatingRecord],
                    ranking: Optional[BTRanking] = None) -> Optional[TrainingSeries]:
    """The series of a test (``design``: its stored design dict) or None when its
    conditions are not checkpoints of one run at two or more steps.  A/B tests need the
    ``ranking`` of their conditions (:func:`studio.ranking.bradley_terry`)."""
    if design.get("test_type") in ("abx", "intelligibility"):
        return None  # ABX and intelligibility have no per-condition score to plot
    runs: dict = {}
    for c in design.get("conditions", []):
        if c.get("checkpoint"):
            step = checkpoint_step(c["checkpoint"])
            if step is not None:
                runs.setdefault(str(run_folder_of(c["checkpoint"])), []).append((step, c))
    runs = {k: v for k, v in runs.items() if len({s for s, _ in v}) >= 2}
    if not runs:
        return None
    folder, members = max(runs.items(), key=lambda kv: len(kv[1]))
    settings = {repr(sorted(c.get("settings", {}).items())) for _, c in members}
    note = "" if len(settings) == 1 else "the conditions differ in sampler settings as well as in training step"
    points = []
    for step, c in sorted(members, key=lambda m: m[0]):
        label = c["label"]
        if design.get("test_type") in ("mos", "smos", "dcr", "mushra"):  # the score types
            scores = [v for r in ratings if r.gold is None for c2, v in rated_scores(r) if c2 == label]
            if not scores:
                points.append(StepPoint(step, label, 0))
                continue
            s = mos_summary(scores)
            points.append(StepPoint(step, label, s.n, s.mean, s.ci95_low, s.ci95_high))
        else:
            mine = [r for r in ratings if r.test_type == "ab" and r.gold is None and label in r.conditions]
            won = sum(1.0 if r.choice != "none" and r.conditions["AB".index(r.choice)] == label else
                      0.5 if r.choice == "none" else 0.0 for r in mine)
            bt = ranking.by_condition().get(label) if ranking is not None else None
            points.append(StepPoint(step, label, len(mine), strength=bt.strength if bt else math.nan,
                                    strength_ci95_low=bt.ci95_low if bt else math.nan,
                                    strength_ci95_high=bt.ci95_high if bt else math.nan,
                                    win_rate=won / len(mine) if mine else math.nan))
    return TrainingSeries(folder, tuple(points), note)
