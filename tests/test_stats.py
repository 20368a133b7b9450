"""The case study's intervals against values computed independently: Wilson from its closed form, bootstrap
intervals against the t interval of normal data, paired differences and ratios on constructed samples."""

import math

import numpy as np
import pytest
from scipy.stats import norm, t

from meg_common import stats


def wilson_closed_form(k, n, level=0.95):
    z = norm.ppf(0.5 + level / 2)
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(7, 20), (0, 32), (32, 32), (21, 24), (150, 200)])
def test_wilson_interval_is_the_closed_form(k, n):
    got = stats.rate(k, n)
    low, high = wilson_closed_form(k, n)
    assert got["k"] == k and got["value"] == pytest.approx(k / n)
    assert got["ci_low"] == pytest.approx(low, abs=1e-9) and got["ci_high"] == pytest.approx(high, abs=1e-9)


def test_known_wilson_numbers():
    # 24/24 vs 21/24 (prompt accuracies "1.00 vs 0.88"): the intervals overlap
    a, b = stats.rate(24, 24), stats.rate(21, 24)
    assert a["ci_low"] == pytest.approx(0.8620, abs=1e-4) and b["ci_high"] == pytest.approx(0.9566, abs=1e-4)
    assert a["ci_low"] < b["ci_high"]


def test_bootstrap_mean_matches_t_interval_on_normal_data():
    x = np.random.default_rng(1).normal(3.0, 2.0, 400)
    got = stats.mean(x.tolist())
    half = t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    assert got["value"] == pytest.approx(x.mean())
    assert got["ci_low"] == pytest.approx(x.mean() - half, abs=0.05)
    assert got["ci_high"] == pytest.approx(x.mean() + half, abs=0.05)
    assert stats.mean(x.tolist()) == got  # fixed generator: the same interval every time


def test_degenerate_and_empty_samples():
    assert stats.mean([0.5] * 10) == {"value": 0.5, "ci_low": 0.5, "ci_high": 0.5}
    assert stats.mean([]) == {"value": None, "ci_low": None, "ci_high": None}
    assert stats.mean([1.0, None, 3.0])["value"] == 2.0


def test_paired_difference_uses_the_pairs():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 5, 100)  # large spread shared by both series
    a, b = base + 0.3, base.copy()
    got = stats.paired_difference(a.tolist(), b.tolist())
    assert got["value"] == pytest.approx(0.3) and got["ci_low"] == pytest.approx(0.3) == got["ci_high"]
    assert stats.excludes_zero(got) == 1
    noisy = stats.paired_difference((base + rng.normal(0, 1, 100)).tolist(), base.tolist())
    assert noisy["ci_low"] < 0 < noisy["ci_high"] and stats.excludes_zero(noisy) == 0
    assert stats.excludes_zero(stats.paired_difference(b.tolist(), a.tolist())) == -1


def test_ratio_of_means_and_pooled_psnr():
    den = np.full(50, 100.0)
    num = np.concatenate([np.full(25, 1000.0), np.full(25, 1400.0)])
    got = stats.ratio_of_means(num.tolist(), den.tolist())
    assert got["value"] == pytest.approx(12.0) and 11.0 < got["ci_low"] < 12.0 < got["ci_high"] < 13.0
    psnr = stats.pooled_psnr([1e-3] * 10)
    assert psnr["value"] == pytest.approx(30.0) and psnr["ci_low"] == pytest.approx(30.0)
    assert stats.pooled_psnr([0.0, 0.0])["value"] is None  # identical images: PSNR infinite
    mixed = stats.pooled_psnr([0.0] * 10 + [1e-2] * 10)
    assert mixed["value"] == pytest.approx(10 * math.log10(1 / 5e-3)) and mixed["ci_low"] < mixed["value"]


# ---- issue 23: KID, paired tests, Holm, calibrated margins ------------------------------------------------
def test_kid_is_the_unbiased_mmd_with_a_jackknife_interval():
    import numpy as np

    from meg_common import stats

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)), rng.normal(0.5, 1, size=(40, 6))
    d, n = 6, 40
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    direct = sum(k(x[i], x[j]) + k(y[i], y[j]) - k(x[i], y[j]) - k(x[j], y[i])
                 for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    out = stats.kid(x, y)
    assert abs(out["value"] - direct) < 1e-9 and out["ci_low"] > 0          # shifted: clearly apart
    same = stats.kid(x, rng.normal(size=(40, 6)))
    assert same["ci_low"] < 0 < same["ci_high"]                              # same distribution: 0 inside
    assert stats.kid(x[:2], y[:2])["value"] is None


def test_paired_test_matches_scipy_and_decides_constant_differences_exactly():
    import numpy as np
    from scipy.stats import ttest_1samp

    from meg_common import stats

    rng = np.random.default_rng(2)
    a, b = rng.normal(0.1, 1, 50), rng.normal(0, 1, 50)
    out = stats.paired_test(a, b, threshold=-0.05)
    ref = ttest_1samp(a - b, -0.05, alternative="greater")
    assert abs(out["p_above"] - ref.pvalue) < 1e-12 and abs(out["p_above"] + out["p_below"] - 1) < 1e-12
    ci = ttest_1samp(a - b, 0).confidence_interval(0.95)
    assert abs(out["ci_low"] - ci.low) < 1e-12 and abs(out["ci_high"] - ci.high) < 1e-12
    equal = stats.paired_test([13] * 8, [13] * 8, threshold=0.5)      # 'no more steps' within half a step
    assert equal["p_below"] == 0.0 and equal["p_above"] == 1.0
    assert stats.paired_test([14] * 8, [13] * 8, threshold=0.5)["p_above"] == 0.0


def test_holm_adjusts_step_down():
    from meg_common import stats

    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == [0.04, 0.09, 0.09, 0.5]
    assert stats.holm([0.3, 0.3]) == [0.6, 0.6] and stats.holm([]) == []


def test_margin_widens_with_the_spread_of_the_metric_on_the_variants():
    import numpy as np

    from meg_common import stats

    rng = np.random.default_rng(3)
    narrow = [rng.normal(-0.05, 0.01, 64), rng.normal(-0.02, 0.01, 64)]
    wide = [rng.normal(-0.05, 0.08, 64), rng.normal(-0.02, 0.01, 64)]
    assert stats.margin_from(narrow)["value"] < stats.margin_from(wide)["value"]
    assert stats.margin_from(narrow)["value"] > 0.05
