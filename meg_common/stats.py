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
