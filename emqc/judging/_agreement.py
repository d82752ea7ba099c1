"""Agreement statistics for blinded judging: pure functions, arrays in, numbers out.

Every between-judge statistic takes, for one rubric question, a ``(judges, units)``
matrix of numeric answers with NaN where a judge gave no answer. Ordered answers are
coded by their position on the scale (0 for the first choice), unordered ones by any
distinct integers (:func:`encode` does both from a question's choices).

- :func:`krippendorff_alpha` and :func:`bootstrap_alpha_ci`: any scale, missing
  answers allowed (Krippendorff 2011).
- :func:`fleiss_kappa`: several judges, nominal categories, units rated by all
  (Fleiss 1971).
- :func:`cohen_kappa`: two judges, optionally weighted for ordered scales
  (Cohen 1960, 1968).
- :func:`icc`: two-way random-effects intraclass correlation, absolute agreement,
  for one judge (ICC2) and the mean of k judges (ICC2k) (Shrout & Fleiss 1979), with
  the band of Koo & Li (2016): below 0.5 poor, 0.5–0.75 moderate, 0.75–0.9 good,
  above 0.9 excellent.
- :func:`self_consistency`: a judge against themself on blocks shown twice.
- :func:`judge_model_agreement`: Spearman's rho between a judge's answers and a model
  score for the same blocks.

A statistic that is undefined for the data (one value only, too few units) is NaN,
never an error, so that a report can show it as missing.

References
----------
.. [1] Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability.
   Annenberg School for Communication, University of Pennsylvania.
.. [2] Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
   Psychological Bulletin, 76(5), 378–382.
.. [3] Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
   Psychological Measurement, 20(1), 37–46.
.. [4] Cohen, J. (1968). Weighted kappa: nominal scale agreement with provision for
   scaled disagreement or partial credit. Psychological Bulletin, 70(4), 213–220.
.. [5] Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing
   rater reliability. Psychological Bulletin, 86(2), 420–428.
.. [6] Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting intraclass
   correlation coefficients for reliability research. Journal of Chiropractic Medicine,
   15(2), 155–163.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputError

__all__ = [
    "ICCResult",
    "bootstrap_alpha_ci",
    "cohen_kappa",
    "encode",
    "fleiss_kappa",
    "icc",
    "icc_band",
    "judge_model_agreement",
    "krippendorff_alpha",
    "self_consistency",
]

Level = Literal["nominal", "ordinal", "interval"]
_LEVELS = ("nominal", "ordinal", "interval")
NAN = float("nan")


def encode(values: Sequence[Any], choices: Sequence[Any]) -> np.ndarray:
    """Answers as float codes: the position of each in ``choices``; None or NaN as NaN.

    Raises
    ------
    emqc.errors.InputError
        When an answer is not one of ``choices``.
    """
    index = {c: i for i, c in enumerate(choices)}
    out = np.full(len(values), np.nan)
    for k, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if v not in index:
            raise InputError(f"answer {v!r} is not one of {list(choices)}")
        out[k] = index[v]
    return out


def _matrix(matrix: Any) -> np.ndarray:
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise InputError(f"expected a (judges, units) matrix, got shape {m.shape}")
    return m


def _check_level(level: str) -> None:
    if level not in _LEVELS:
        raise InputError(f"level {level!r}: choose one of {', '.join(_LEVELS)}")


def _pairable(m: np.ndarray) -> np.ndarray:
    """Units (columns) answered by at least two judges: the only ones alpha uses."""
    return np.sum(~np.isnan(m), axis=0) >= 2


def krippendorff_alpha(
    matrix: Any, level: Level = "ordinal", *, value_domain: Sequence[float] | None = None
) -> float:
    """Krippendorff's alpha for a ``(judges, units)`` matrix, NaN for missing answers.

    Parameters
    ----------
    matrix : array_like, shape (judges, units)
        Numeric answers (codes); NaN where a judge gave none.
    level : {"ordinal", "nominal", "interval"}
        Level of measurement, which sets the distance between two answers.
    value_domain : sequence of float, optional
        Every possible answer in order (for ``ordinal``, answers nobody gave still
        count in the distances); by default the answers present.

    Returns
    -------
    float
        1 for perfect agreement, about 0 for chance agreement; NaN when undefined
        (fewer than two distinct answers, or no unit answered by two judges).

    References
    ----------
    Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability.

    Examples
    --------
    >>> krippendorff_alpha([[1, 2, 3, 1], [1, 2, 3, 1]], "ordinal")
    1.0
    """
    import krippendorff

    _check_level(level)
    m = _matrix(matrix)
    m = m[:, _pairable(m)]
    if m.shape[1] == 0 or np.unique(m[~np.isnan(m)]).size < 2:
        return NAN
    domain = None if value_domain is None else np.asarray(value_domain, dtype=float)
    return float(
        krippendorff.alpha(reliability_data=m, level_of_measurement=level, value_domain=domain)
    )


def bootstrap_alpha_ci(
    matrix: Any,
    level: Level = "ordinal",
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    value_domain: Sequence[float] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of :func:`krippendorff_alpha`.

    Units (columns) answered by at least two judges are resampled with replacement
    ``n_boot`` times; resamples where alpha is undefined are left out.

    Parameters
    ----------
    matrix : array_like, shape (judges, units)
    level : {"ordinal", "nominal", "interval"}
    n_boot : int, optional
    seed : int, optional
        Seed of the resampling, so that the interval is reproducible.
    confidence : float, optional
        Coverage of the interval (0.95 gives the 2.5 and 97.5 percentiles).
    value_domain : sequence of float, optional
        As for :func:`krippendorff_alpha`.

    Returns
    -------
    (float, float)
        Lower and upper bound; ``(nan, nan)`` when no resample gives a defined alpha.

    References
    ----------
    Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability (section on
    the bootstrapped distribution of alpha).
    """
    _check_level(level)
    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie between 0 and 1, got {confidence}")
    if n_boot < 1:
        raise InputError(f"n_boot must be at least 1, got {n_boot}")
    m = _matrix(matrix)
    m = m[:, _pairable(m)]
    n = m.shape[1]
    if n == 0:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    values = np.array([krippendorff_alpha(m[:, idx], level, value_domain=value_domain)
                       for idx in draws])  # fmt: skip
    values = values[~np.isnan(values)]
    if values.size == 0:
        return NAN, NAN
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def fleiss_kappa(matrix: Any, categories: Sequence[float] | int) -> float:
    """Fleiss' kappa over the units answered by every judge.

    Parameters
    ----------
    matrix : array_like, shape (judges, units)
        Integer category codes ``0 .. n_categories - 1``; NaN where missing. Units with
        a missing answer are left out (Fleiss' kappa needs the same number of ratings
        per unit).
    categories : sequence or int
        The possible categories (or their number), so that unused ones are counted.

    Returns
    -------
    float
        NaN when fewer than two judges, no complete unit, or every answer is the same
        category (chance agreement is then 1 and kappa is undefined).

    References
    ----------
    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
    """
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as _fleiss

    n_cat = categories if isinstance(categories, int) else len(categories)
    m = _matrix(matrix)
    complete = m[:, ~np.isnan(m).any(axis=0)]
    if m.shape[0] < 2 or complete.shape[1] == 0:
        return NAN
    codes = complete.T.astype(int)  # (units, raters)
    if codes.min() < 0 or codes.max() >= n_cat:
        raise InputError(f"fleiss_kappa: codes must lie in 0..{n_cat - 1}")
    table, _ = aggregate_raters(codes, n_cat=n_cat)
    p = table.sum(axis=0) / table.sum()
    if np.isclose(np.sum(p * p), 1.0):
        return NAN
    return float(_fleiss(table, method="fleiss"))


def cohen_kappa(
    a: Any,
    b: Any,
    weights: Literal["linear", "quadratic"] | None = None,
    *,
    labels: Sequence[float] | None = None,
) -> float:
    """Cohen's kappa between two judges, weighted for ordered scales.

    Parameters
    ----------
    a, b : array_like
        The two judges' answers (codes) for the same units; pairs with a NaN are left out.
    weights : {None, "linear", "quadratic"}
        None for nominal answers (Cohen 1960); linear or quadratic disagreement weights
        for ordered ones (Cohen 1968).
    labels : sequence, optional
        Every possible code, so that weights span the whole scale.

    Returns
    -------
    float
        NaN when no complete pair or when chance agreement is perfect.

    References
    ----------
    Cohen, J. (1960). A coefficient of agreement for nominal scales.
    Cohen, J. (1968). Weighted kappa.
    """
    from sklearn.metrics import cohen_kappa_score

    if weights not in (None, "linear", "quadratic"):
        raise InputError(f"weights {weights!r}: choose None, 'linear' or 'quadratic'")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"cohen_kappa: a and b must be 1-D of one length ({x.shape}, {y.shape})")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep].astype(int), y[keep].astype(int)
    if x.size == 0 or (np.unique(x).size == 1 and np.unique(y).size == 1):
        return NAN  # kappa is undefined when both judges give one answer throughout
    lab = None if labels is None else [int(v) for v in labels]
    return float(cohen_kappa_score(x, y, labels=lab, weights=weights, replace_undefined_by=NAN))


@dataclass(frozen=True)
class ICCResult:
    """Two-way random-effects, absolute-agreement intraclass correlations.

    Attributes
    ----------
    icc2 : float
        ICC(2,1): reliability of one judge.
    icc2_ci : (float, float)
        Its 95% confidence interval.
    icc2k : float
        ICC(2,k): reliability of the mean of the k judges.
    icc2k_ci : (float, float)
    band : str
        Koo & Li (2016) band of ``icc2``: poor, moderate, good, excellent or
        "undefined".
    band_k : str
        The band of ``icc2k``.
    n_units : int
        Units rated by every judge (the only ones used).
    n_judges : int
    """

    icc2: float
    icc2_ci: tuple[float, float]
    icc2k: float
    icc2k_ci: tuple[float, float]
    band: str
    band_k: str
    n_units: int
    n_judges: int

    def to_dict(self) -> dict[str, Any]:
        return {"icc2": self.icc2, "icc2_ci": list(self.icc2_ci), "icc2k": self.icc2k,
                "icc2k_ci": list(self.icc2k_ci), "band": self.band, "band_k": self.band_k,
                "n_units": self.n_units, "n_judges": self.n_judges}  # fmt: skip


def icc_band(value: float) -> str:
    """Koo & Li (2016) band: <0.5 poor, 0.5–0.75 moderate, 0.75–0.9 good, >0.9 excellent.

    Examples
    --------
    >>> icc_band(0.8)
    'good'
    """
    if value is None or math.isnan(value):
        return "undefined"
    if value < 0.5:
        return "poor"
    if value < 0.75:
        return "moderate"
    if value <= 0.9:
        return "good"
    return "excellent"


def icc(matrix: Any) -> ICCResult:
    """Intraclass correlation of an ordered (or interval) scale via pingouin.

    Parameters
    ----------
    matrix : array_like, shape (judges, units)
        Numeric answers; units with any missing answer are left out.

    Returns
    -------
    ICCResult
        All NaN (band "undefined") with fewer than two judges, fewer than three complete
        units, or no variation at all.

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations.
    Koo, T. K., & Li, M. Y. (2016). A guideline of selecting and reporting ICC.
    """
    m = _matrix(matrix)
    complete = m[:, ~np.isnan(m).any(axis=0)]
    k, n = complete.shape
    if k < 2 or n < 3 or np.ptp(complete) == 0:
        return ICCResult(NAN, (NAN, NAN), NAN, (NAN, NAN), "undefined", "undefined", n, k)
    import pandas as pd
    import pingouin

    df = pd.DataFrame(
        {"unit": np.tile(np.arange(n), k), "judge": np.repeat(np.arange(k), n),
         "rating": complete.reshape(-1)}
    )  # fmt: skip
    with warnings.catch_warnings():
        # pingouin 0.7 calls DataFrame.dropna(inplace=True), deprecated in pandas 3.1
        warnings.filterwarnings("ignore", message="The inplace keyword", category=Warning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)  # zero within-unit variance
        table = pingouin.intraclass_corr(df, targets="unit", raters="judge", ratings="rating")
    table = table.set_index("Type")
    ci_col = "CI95" if "CI95" in table.columns else "CI95%"

    def get(*names: str) -> tuple[float, tuple[float, float]]:
        for name in names:
            if name in table.index:
                row = table.loc[name]
                lo, hi = (float(v) for v in row[ci_col])
                return float(row["ICC"]), (lo, hi)
        raise KeyError(names)  # pragma: no cover - pingouin always reports both

    v2, ci2 = get("ICC(A,1)", "ICC2")
    v2k, ci2k = get("ICC(A,k)", "ICC2k")
    return ICCResult(v2, ci2, v2k, ci2k, icc_band(v2), icc_band(v2k), n, k)


def self_consistency(
    first: Any,
    repeat: Any,
    *,
    ordinal: bool = True,
    labels: Sequence[float] | None = None,
) -> dict[str, Any]:
    """One judge's agreement with themself on blocks shown twice.

    Parameters
    ----------
    first, repeat : array_like
        The judge's answers (codes) at the first and at the repeated showing, aligned;
        pairs with a NaN are left out.
    ordinal : bool, optional
        Also report the linearly weighted kappa and the mean absolute difference.
    labels : sequence, optional
        Every possible code (for the weighted kappa).

    Returns
    -------
    dict
        ``n`` (pairs), ``exact`` (share of identical answers); for ordinal scales also
        ``weighted_kappa`` (Cohen 1968, linear weights) and ``mean_abs_diff`` (in scale
        steps). NaN where undefined.

    References
    ----------
    Cohen, J. (1968). Weighted kappa.
    """
    x, y = np.asarray(first, dtype=float), np.asarray(repeat, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"self_consistency: first and repeat must align ({x.shape}, {y.shape})")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    out: dict[str, Any] = {"n": int(x.size), "exact": float(np.mean(x == y)) if x.size else NAN}
    if ordinal:
        out["weighted_kappa"] = cohen_kappa(x, y, "linear", labels=labels)
        out["mean_abs_diff"] = float(np.mean(np.abs(x - y))) if x.size else NAN
    return out


def judge_model_agreement(judge_scores: Any, model_scores: Any) -> dict[str, Any]:
    """Spearman's rank correlation between a judge's answers and a model's scores.

    Parameters
    ----------
    judge_scores : array_like
        The judge's answers per block, numeric (e.g. membrane integrity 1–5).
    model_scores : array_like
        The model's score for the same blocks (e.g. ``membrane_integrity`` in [0, 1]);
        blocks with a NaN on either side are left out.

    Returns
    -------
    dict
        ``rho``, ``p`` (two-sided) and ``n``; rho and p are NaN with fewer than three
        blocks or when either side is constant.

    References
    ----------
    Spearman, C. (1904). The proof and measurement of association between two things.
    American Journal of Psychology, 15(1), 72–101.
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(judge_scores, dtype=float), np.asarray(model_scores, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"judge and model scores must align ({x.shape}, {y.shape})")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": NAN, "p": NAN, "n": n}
    res = spearmanr(x, y)
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": n}
