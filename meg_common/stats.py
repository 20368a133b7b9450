"""Confidence intervals for every reported figure (the case study, eval-model): Wilson for rates, bootstrap for
means, paired bootstrap for differences.

Every figure of `meg-phy reproduce` is reported as `{"value", "ci_low", "ci_high"}` (95 % by default):

    rate(k, n)                      # share of successes, Wilson score interval (scipy.stats.binomtest)
    mean(values)                    # mean, bootstrap interval (scipy.stats.bootstrap, BCa)
    paired_difference(a, b)         # mean of a - b over the same tasks, bootstrap interval of that mean
    ratio_of_means(num, den)        # mean(num) / mean(den) over the same tasks, paired bootstrap
    pooled_psnr(mse)                # 10 log10(1 / mean MSE), bootstrap over tasks (identical images: MSE 0)

Bootstrap draws come from a fixed generator, so the same data give the same interval on every machine and
executor. A sample whose values are all equal has no spread to resample: its interval is the value itself.
BCa needs a jackknife with some spread; where it cannot be computed (NaN) the percentile interval is used.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 4000
SEED = 20241


def interval(value: float | None, low: float | None, high: float | None) -> dict[str, float | None]:
    return {"value": _plain(value), "ci_low": _plain(low), "ci_high": _plain(high)}


def rate(k: int, n: int, level: float = LEVEL) -> dict[str, float | int | None]:
    """k successes in n trials: the share and its Wilson score interval, plus `k`."""
    from scipy.stats import binomtest

    if n <= 0:
        return {**interval(None, None, None), "k": int(k)}
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return {**interval(k / n, ci.low, ci.high), "k": int(k)}


def mean(values: Sequence[float], level: float = LEVEL) -> dict[str, float | None]:
    """The mean of `values` with a bootstrap interval (None entries are dropped)."""
    x = _array(values)
    if x.size == 0:
        return interval(None, None, None)
    return interval(float(x.mean()), *_bootstrap((x,), lambda a, axis=-1: a.mean(axis=axis), level))


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> dict[str, float | None]:
    """Mean of a_i - b_i over the same tasks (pairs with a None dropped) and its bootstrap interval."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return mean([float(x) - float(y) for x, y in pairs], level)


def ratio_of_means(num: Sequence[float], den: Sequence[float], level: float = LEVEL) -> dict[str, float | None]:
    """mean(num) / mean(den) over the same tasks, with a paired bootstrap interval (tasks resampled together)."""
    x, y = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if x.size == 0 or y.mean() <= 0:
        return interval(None, None, None)

    def ratio(a, b, axis=-1):
        d = b.mean(axis=axis)
        return np.where(d > 0, a.mean(axis=axis) / np.where(d > 0, d, 1), np.inf)

    return interval(float(x.mean() / y.mean()), *_bootstrap((x, y), ratio, level, paired=True))


def pooled_psnr(mse: Sequence[float], level: float = LEVEL) -> dict[str, float | None]:
    """PSNR of the mean squared error over the tasks (images in [0, 1]); None when every image is identical to
    its reference (PSNR = infinity). A resample of identical images only gives an infinite upper bound (None)."""
    x = _array(mse)
    if x.size == 0 or x.mean() <= 0:
        return interval(None, None, None)

    def psnr(a, axis=-1):
        m = a.mean(axis=axis)
        with np.errstate(divide="ignore"):
            return 10 * np.log10(1 / m)

    low, high = _bootstrap((x,), psnr, level)
    return interval(float(psnr(x)), low, None if high is None or not math.isfinite(high) else high)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Callable, level: float,
               paired: bool = False) -> tuple[float | None, float | None]:
    from scipy.stats import bootstrap

    value = statistic(*data)
    if data[0].size < 2 or all(np.all(d == d[0]) for d in data):
        return float(value), float(value)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap(data, statistic, n_resamples=RESAMPLES, confidence_level=level, method=method,
                            paired=paired, vectorized=True, rng=np.random.default_rng(SEED))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            return low, high
    return None, None


def _array(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([float(v) for v in values if v is not None], dtype=float)


def _plain(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def excludes_zero(ci: dict[str, float | None]) -> int:
    """+1 when the interval lies above 0, -1 below, 0 when it holds 0 (or is unknown)."""
    low, high = ci.get("ci_low"), ci.get("ci_high")
    if low is not None and low > 0:
        return 1
    if high is not None and high < 0:
        return -1
    return 0


# ---- distribution distance, tests for claims, multiplicity -----------------------------------
def kid(x: Sequence[Sequence[float]], y: Sequence[Sequence[float]], level: float = LEVEL) -> dict[str, float | None]:
    """Kernel inception distance between two sets of feature vectors, paired by task (x_i and y_i belong to
    task i): the unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 (Binkowski et al.
    2018), a U-statistic over pairs of tasks, and its interval from the jackknife variance of that
    U-statistic (normal approximation; leave-one-task-out in closed form). Needs n >= 3."""
    from scipy.stats import norm

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(a)
    if n < 3 or a.shape != b.shape:
        return interval(None, None, None)
    d = a.shape[1]
    kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
    h = kxx + kyy - kxy - kxy.T
    np.fill_diagonal(h, 0.0)
    total = h.sum()
    value = total / (n * (n - 1))
    loo = (total - 2 * h.sum(axis=1)) / ((n - 1) * (n - 2))
    var = (n - 1) / n * float(((loo - loo.mean()) ** 2).sum())
    z = norm.ppf(0.5 + level / 2) * math.sqrt(var)
    return interval(value, value - z, value + z)


def paired_test(a: Sequence[float], b: Sequence[float], threshold: float = 0.0,
                level: float = LEVEL) -> dict[str, float | None]:
    """Mean of a_i - b_i over the same tasks against `threshold`, for a claim's decision: the paired t
    interval (`value`, `ci_low`, `ci_high`) and the one-sided p-values of `p_above` (H0: mean <= threshold)
    and `p_below` (H0: mean >= threshold). Differences that do not vary (a step count, a fixed payload) are
    decided exactly: p 0 on the side the mean lies strictly, 1 otherwise (a mean equal to the threshold is on
    neither side: give 'no more than' a tolerance, e.g. half a step)."""
    from scipy.stats import t as student

    d = np.asarray([float(x) - float(y) for x, y in zip(a, b, strict=True) if x is not None and y is not None])
    if d.size == 0:
        return {**interval(None, None, None), "p_above": 1.0, "p_below": 1.0, "n": 0}
    m = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    if sd == 0.0:
        return {**interval(m, m, m), "p_above": 0.0 if m > threshold else 1.0,
                "p_below": 0.0 if m < threshold else 1.0, "n": int(d.size)}
    se = sd / math.sqrt(d.size)
    q = student.ppf(0.5 + level / 2, d.size - 1)
    tval = (m - threshold) / se
    return {**interval(m, m - q * se, m + q * se), "p_above": float(student.sf(tval, d.size - 1)),
            "p_below": float(student.cdf(tval, d.size - 1)), "n": int(d.size)}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def margin_from(changes: Sequence[Sequence[float]], level: float = LEVEL) -> dict[str, float | None]:
    """A non-inferiority margin from a metric's changes on imperceptible variants of the references (one
    list of per-task changes per variant): the largest upper 95 % bound, over the variants, of the mean
    absolute change (bootstrap). A metric that moves more, or more unevenly, on changes nobody sees gets a
    wider margin."""
    bounds = []
    for values in changes:
        m = mean([abs(float(v)) for v in values if v is not None], level)
        if m["ci_high"] is not None:
            bounds.append(m["ci_high"])
    return {"value": max(bounds) if bounds else None, "rule": "max over variants of the upper 95 % bound of "
            "the mean absolute change"}
