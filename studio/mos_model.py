"""MOS intervals that account for raters and sentences.

The Student-t interval of :mod:`studio.stats` treats every rating as independent.  They
are not: a lenient rater lifts all their scores, an easy sentence lifts every
condition's.  Two ways to widen the interval accordingly, both on the non-gold MOS
ratings of a test (a frame with columns ``rater``, ``sentence``, ``condition``,
``score``: :func:`mos_frame_of`):

* :func:`mixed_mos` -- a linear mixed model (statsmodels ``MixedLM``, REML)::

      score = mu[condition] + rater effect + sentence effect + residual

  with rater and sentence effects **crossed** random intercepts, N(0, var_rater) and
  N(0, var_sentence) (fitted as two variance components over one all-embracing group,
  statsmodels' way of writing crossed effects).  ``mu[condition]`` is the condition's
  MOS for an average rater and sentence; its interval is the Wald (normal) 95 %
  interval ``mu -+ 1.96 se`` given the fitted variances.  In a balanced test (every
  rater rates every sentence of every condition once)
  ``se^2 = var_rater / R + var_sentence / S + var_residual / (R S)``.
* :func:`clustered_mos` -- per-condition means with rater-clustered (CR1) standard
  errors (statsmodels OLS, ``cov_type="cluster"``) and a t interval on
  ``raters - 1`` degrees of freedom: no model for the sentences, no normality of the
  rater effects.

Both need at least two raters; with fewer, or when the fit fails, the result carries
NaN intervals and a ``note`` saying why.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from studio.results import RatingRecord, rated_scores

__all__ = ["ModelMOS", "MOSModelFit", "mixed_mos", "clustered_mos", "mos_frame_of", "MOS_METHODS"]

MOS_METHODS = ("mixed", "cluster")
_COLUMNS = ["rater", "sentence", "condition", "score"]


@dataclass(frozen=True)
class ModelMOS:
    """A condition's model-based MOS, its standard error and 95 % interval."""

    condition: str
    mean: float
    se: float
    ci95_low: float
    ci95_high: float
    n: int


@dataclass(frozen=True)
class MOSModelFit:
    """``method`` "mixed" or "cluster"; per-condition rows in the frame's condition order;
    for "mixed" the fitted variances (NaN for "cluster"); ``note`` is empty when the fit
    is usable."""

    method: str
    conditions: tuple
    n_raters: int
    n_sentences: int
    var_rater: float = math.nan
    var_sentence: float = math.nan
    var_residual: float = math.nan
    converged: bool = True
    note: str = ""

    def by_condition(self) -> dict:
        return {c.condition: c for c in self.conditions}


def mos_frame_of(ratings: Iterable[RatingRecord]) -> pd.DataFrame:
    """The non-gold scores as a frame: rater, sentence, condition, score (MOS; also SMOS,
    DCR and MUSHRA's sliders: :func:`studio.results.rated_scores`)."""
    rows = [(r.rater_id, r.sentence_id, c, float(v)) for r in ratings if r.gold is None for c, v in rated_scores(r)]
    return pd.DataFrame(rows, columns=_COLUMNS)


def _check(frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"MOS frame lacks column(s) {', '.join(missing)}; needs {', '.join(_COLUMNS)}")
    if frame.empty:
        raise ValueError("no MOS ratings to model")
    return frame[_COLUMNS].astype({"rater": str, "sentence": str, "condition": str, "score": float})


def _nan_fit(method: str, frame: pd.DataFrame, note: str) -> MOSModelFit:
    rows = tuple(ModelMOS(c, float(g.mean()), math.nan, math.nan, math.nan, int(g.size))
                 for c, g in frame.groupby("condition", sort=False)["score"])
    return MOSModelFit(method, rows, frame["rater"].nunique(), frame["sentence"].nunique(), converged=False, note=note)


def mixed_mos(frame: pd.DataFrame) -> MOSModelFit:
    """Crossed rater + sentence random intercepts, a fixed MOS per condition (module doc)."""
    import statsmodels.formula.api as smf

    frame = _check(frame).reset_index(drop=True)
    conds = list(dict.fromkeys(frame["condition"]))
    if frame["rater"].nunique() < 2:
        return _nan_fit("mixed", frame, "the mixed model needs ratings from at least two raters")
    # codes as plain column names keep the formula free of arbitrary label text
    data = pd.DataFrame({"score": frame["score"], "g": 1,
                         "cond": pd.Categorical(frame["condition"], categories=conds).codes,
                         "rater": pd.factorize(frame["rater"])[0], "sentence": pd.factorize(frame["sentence"])[0]})
    vc = {"rater": "0 + C(rater)"}
    if data["sentence"].nunique() > 1:
        vc["sentence"] = "0 + C(sentence)"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = smf.mixedlm("score ~ 0 + C(cond)", data, groups="g", re_formula="0", vc_formula=vc)
            fit = model.fit(reml=True)
    except (ValueError, np.linalg.LinAlgError) as exc:
        return _nan_fit("mixed", frame, f"mixed model fit failed: {exc}")
    if not np.all(np.isfinite(fit.bse_fe)):
        return _nan_fit("mixed", frame, "mixed model fit gave no standard errors (too few ratings?)")
    note = "" if fit.converged else "mixed model did not converge; intervals are approximate"
    if not note and any("boundary" in str(w.message).lower() for w in caught):
        note = "a variance component is estimated at zero (on the boundary)"
    vcomp = dict(zip(model.exog_vc.names, np.atleast_1d(fit.vcomp)))
    rows = []
    for k, c in enumerate(conds):
        mean, se = float(fit.fe_params.iloc[k]), float(fit.bse_fe.iloc[k])
        rows.append(ModelMOS(c, mean, se, mean - 1.959964 * se, mean + 1.959964 * se,
                             int((frame["condition"] == c).sum())))
    return MOSModelFit("mixed", tuple(rows), frame["rater"].nunique(), frame["sentence"].nunique(),
                       float(vcomp.get("rater", math.nan)), float(vcomp.get("sentence", 0.0)), float(fit.scale),
                       bool(fit.converged), note)


def clustered_mos(frame: pd.DataFrame) -> MOSModelFit:
    """Per-condition means with rater-clustered (CR1) standard errors, t on raters - 1 df."""
    import statsmodels.api as sm

    frame = _check(frame).reset_index(drop=True)
    conds = list(dict.fromkeys(frame["condition"]))
    n_raters = frame["rater"].nunique()
    if n_raters < 2:
        return _nan_fit("cluster", frame, "clustered standard errors need ratings from at least two raters")
    exog = np.stack([(frame["condition"] == c).to_numpy(dtype=np.float64) for c in conds], axis=1)
    fit = sm.OLS(frame["score"].to_numpy(), exog).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(frame["rater"])[0]}, use_t=True)
    ci = np.asarray(fit.conf_int(alpha=0.05))
    rows = tuple(ModelMOS(c, float(fit.params[k]), float(fit.bse[k]), float(ci[k, 0]), float(ci[k, 1]),
                          int(exog[:, k].sum())) for k, c in enumerate(conds))
    return MOSModelFit("cluster", rows, n_raters, frame["sentence"].nunique())
