"""Statistics by hand: descriptive statistics, the tests of Unit 2, their effect sizes and intervals.

Every statistic is written out from its formula in NumPy; only the distribution functions come
from ``scipy.special`` (the t, chi-square and normal CDFs and their inverses are special
functions, not tests). ``pipeline.audit.stats`` checks each result against ``scipy.stats``.

Two samples are ``a`` and ``b`` (e.g. survivors' and non-survivors' fares); a difference is
always ``a`` minus ``b``. Tests are two-sided.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


def _sample(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"a sample needs at least 2 finite values, got {x.size} with "
                         f"{int((~np.isfinite(x)).sum())} missing or infinite")
    return x


def describe(x) -> dict[str, float]:
    """n, mean, median, mode (smallest of the most frequent values), variance and std (ddof=1),
    min, quartiles, max and skewness (the biased moment estimate, scipy's default) of one sample."""
    x = _sample(x)
    n = x.size
    mean = x.sum() / n
    deviations = x - mean
    variance = (deviations**2).sum() / (n - 1)  # unbiased: n - 1 because the mean was estimated
    values, counts = np.unique(x, return_counts=True)
    m2, m3 = (deviations**2).mean(), (deviations**3).mean()
    q1, median, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return {"n": float(n), "mean": float(mean), "median": float(median),
            "mode": float(values[np.argmax(counts)]), "variance": float(variance),
            "std": float(np.sqrt(variance)), "min": float(x.min()), "q1": float(q1), "q3": float(q3),
            "max": float(x.max()), "skewness": float(m3 / m2**1.5) if m2 > 0 else 0.0}


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * float(special.erfc(z / np.sqrt(2)))


@dataclass(frozen=True)
class WelchResult:
    """Welch's t-test of equal means with unequal variances, and the interval for mean(a) - mean(b)."""

    statistic: float
    df: float
    pvalue: float
    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float


def welch_t_test(a, b, confidence: float = 0.95) -> WelchResult:
    """t = (mean_a - mean_b) / sqrt(s²_a/n_a + s²_b/n_b), with the Welch–Satterthwaite df

        df = (v_a + v_b)² / (v_a² / (n_a - 1) + v_b² / (n_b - 1)),   v = s² / n

    and the two-sided p-value 2 · P(T_df ≤ -|t|) from the t distribution's CDF.
    """
    a, b = _sample(a), _sample(b)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = np.sqrt(va + vb)
    difference = a.mean() - b.mean()
    t = difference / se
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    pvalue = 2 * special.stdtr(df, -abs(t))
    margin = special.stdtrit(df, 0.5 + confidence / 2) * se
    return WelchResult(float(t), float(df), float(pvalue), float(difference), float(difference - margin),
                       float(difference + margin), confidence)


def ranks(x) -> np.ndarray:
    """1-based ranks, ties sharing the mean of the ranks they span (scipy.stats.rankdata's "average")."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # each run of equal values [start, end) gets the mean of ranks start+1 .. end
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    out = np.empty(x.size)
    out[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return out


@dataclass(frozen=True)
class MannWhitneyResult:
    """Mann–Whitney U of ``a`` (how many (a, b) pairs have a above b, ties counting half)."""

    statistic: float
    z: float
    pvalue: float
    rank_biserial: float
    common_language: float  # U / (n_a n_b): P(a random a > a random b), the AUC of the value as a score


def mann_whitney_u(a, b) -> MannWhitneyResult:
    """U_a = R_a - n_a (n_a + 1) / 2 from the ranks of the pooled samples; the two-sided p-value
    from the normal approximation with the tie correction and a continuity correction of 1/2:

        σ² = n_a n_b / 12 · ((n + 1) - Σ (t³ - t) / (n (n - 1)))     t: size of each group of ties
        z = (max(U_a, U_b) - n_a n_b / 2 - 1/2) / σ,   p = 2 · P(Z > z)

    the same as ``scipy.stats.mannwhitneyu(a, b, method="asymptotic")``.
    """
    a, b = _sample(a), _sample(b)
    na, nb = a.size, b.size
    n = na + nb
    pooled = np.concatenate([a, b])
    r = ranks(pooled)
    u_a = r[:na].sum() - na * (na + 1) / 2
    u_b = na * nb - u_a
    _, tie_sizes = np.unique(pooled, return_counts=True)
    ties = (tie_sizes**3 - tie_sizes).sum() / (n * (n - 1))
    sigma = np.sqrt(na * nb / 12 * ((n + 1) - ties))
    z = (max(u_a, u_b) - na * nb / 2 - 0.5) / sigma
    pvalue = min(1.0, 2 * normal_sf(z))
    return MannWhitneyResult(float(u_a), float(z), pvalue, rank_biserial(u_a, na, nb), float(u_a / (na * nb)))


def rank_biserial(u_a: float, n_a: int, n_b: int) -> float:
    """r = 2 U_a / (n_a n_b) - 1, in [-1, 1]: P(a > b) - P(a < b) over all pairs."""
    return float(2 * u_a / (n_a * n_b) - 1)


@dataclass(frozen=True)
class ChiSquareResult:
    """Pearson's chi-square test of independence of a contingency table's rows and columns."""

    statistic: float
    df: int
    pvalue: float
    expected: np.ndarray
    cramers_v: float


def chi_square_independence(table) -> ChiSquareResult:
    """χ² = Σ (O - E)² / E with E = row total · column total / n, on (r - 1)(c - 1) df; the
    p-value P(χ²_df > χ²) is the regularised upper incomplete gamma function. No Yates correction
    (scipy applies one only to 2 × 2 tables)."""
    observed = np.asarray(table, dtype=float)
    if observed.ndim != 2 or min(observed.shape) < 2:
        raise ValueError(f"a contingency table needs at least 2 rows and 2 columns, got shape {observed.shape}")
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    statistic = float(((observed - expected) ** 2 / expected).sum())
    df = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    pvalue = float(special.gammaincc(df / 2, statistic / 2))
    return ChiSquareResult(statistic, df, pvalue, expected, cramers_v(statistic, n, observed.shape))


def cramers_v(chi2: float, n: float, shape: tuple[int, int]) -> float:
    """V = sqrt(χ² / (n (min(r, c) - 1))), in [0, 1]: 0 independent, 1 one determines the other."""
    return float(np.sqrt(chi2 / (n * (min(shape) - 1))))


def cohens_d(a, b) -> float:
    """(mean_a - mean_b) / pooled standard deviation, s²_p = ((n_a-1)s²_a + (n_b-1)s²_b) / (n_a+n_b-2)."""
    a, b = _sample(a), _sample(b)
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    return float((a.mean() - b.mean()) / np.sqrt(pooled))


def hedges_g(a, b) -> float:
    """Cohen's d times the small-sample correction 1 - 3 / (4 (n_a + n_b) - 9)."""
    n = np.asarray(a).size + np.asarray(b).size
    return cohens_d(a, b) * (1 - 3 / (4 * n - 9))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion: the p whose score test at this level does not reject,

        (p̂ + z²/2n ± z sqrt(p̂(1 - p̂)/n + z²/4n²)) / (1 + z²/n)

    unlike p̂ ± z sqrt(p̂(1-p̂)/n) it stays inside [0, 1] and holds its coverage near 0 and 1."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    z = float(special.ndtri(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return float(centre - half), float(centre + half)


def bootstrap_interval(a, b, statistic, n_resamples: int, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float, np.ndarray]:
    """Percentile bootstrap interval for ``statistic(a) - statistic(b)``: resample each sample with
    replacement ``n_resamples`` times; the interval is the middle ``confidence`` of the differences.
    Returns (low, high, the resampled differences)."""
    a, b = _sample(a), _sample(b)
    rng = np.random.default_rng(seed)
    resampled_a = a[rng.integers(0, a.size, size=(n_resamples, a.size))]  # (R, n_a)
    resampled_b = b[rng.integers(0, b.size, size=(n_resamples, b.size))]  # (R, n_b)
    differences = statistic(resampled_a, axis=1) - statistic(resampled_b, axis=1)
    low, high = np.quantile(differences, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high), differences
