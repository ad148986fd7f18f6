"""Unit 2's statistics by hand (``pipeline.scratch.stats``) against ``scipy.stats``, at stated tolerances.

Closed-form statistics (means, t, U, χ², intervals) must agree to ``STAT_RTOL`` relative;
p-values to ``P_RTOL`` relative or ``P_ATOL`` absolute (a p-value of 1e-15 is only known to
rounding). The bootstrap draws other random resamples than scipy's, so its interval is compared
at ``BOOTSTRAP_TOL``, a share of scipy's interval width.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from pipeline.audit import AuditReport
from pipeline.scratch import stats as ours

STAT_RTOL = 1e-9
P_RTOL, P_ATOL = 1e-7, 1e-14
HEDGES_RTOL = 1e-4  # the 1 - 3/(4n - 9) correction against the exact gamma-function one
BOOTSTRAP_TOL = 0.15  # each end within 15 % of scipy's interval width (different random resamples)


def _check(report: AuditReport, name: str, mine, theirs, rtol: float = STAT_RTOL, atol: float = 0.0) -> None:
    mine, theirs = np.asarray(mine, float), np.asarray(theirs, float)
    diff = float(np.max(np.abs(mine - theirs)))
    ok = bool(np.all(np.abs(mine - theirs) <= atol + rtol * np.abs(theirs)))
    tol = f"rtol {rtol:.0e}" + (f", atol {atol:.0e}" if atol else "")
    values = (f"ours {_show(mine)}, scipy {_show(theirs)}; " if mine.size <= 8 else f"{mine.size} values; ")
    report.add(name, ok, f"{values}max |diff| = {diff:.1e} ({tol})")


def _show(x: np.ndarray) -> str:
    return np.array2string(x.ravel(), precision=6, separator=", ") if x.ndim else f"{float(x):.6g}"


def audit_statistics(a, b, contingency, confidence: float = 0.95, bootstrap=None) -> AuditReport:
    """Every hand-computed statistic of Unit 2 on samples ``a``, ``b`` (survivors' and
    non-survivors' fares) and a (2, k) contingency table (rows died, survived; columns fare
    quartiles), against scipy.

    ``bootstrap`` is (low, high, n_resamples, seed) of ``ours.bootstrap_interval`` on the median.
    """
    report = AuditReport("statistics by hand vs scipy.stats")
    a, b = np.asarray(a, float), np.asarray(b, float)
    log_a, log_b = np.log1p(a), np.log1p(b)

    described = ours.describe(a)
    scipy_described = stats.describe(a)
    _check(report, "describe: mean, variance (ddof=1), skewness",
           [described["mean"], described["variance"], described["skewness"]],
           [scipy_described.mean, scipy_described.variance, scipy_described.skewness])
    _check(report, "describe: median, mode", [described["median"], described["mode"]],
           [np.median(a), stats.mode(a).mode])

    for label, (x, y) in {"fare": (a, b), "log(1 + fare)": (log_a, log_b)}.items():
        mine = ours.welch_t_test(x, y, confidence)
        theirs = stats.ttest_ind(x, y, equal_var=False)
        interval = theirs.confidence_interval(confidence)
        _check(report, f"Welch t on {label}: t, df", [mine.statistic, mine.df], [theirs.statistic, theirs.df])
        _check(report, f"Welch t on {label}: p-value", mine.pvalue, theirs.pvalue, P_RTOL, P_ATOL)
        _check(report, f"Welch t on {label}: {confidence:.0%} CI of the mean difference",
               [mine.ci_low, mine.ci_high], [interval.low, interval.high])

    _check(report, "ranks with ties (average)", ours.ranks(np.r_[a, b]), stats.rankdata(np.r_[a, b]))
    mine_u = ours.mann_whitney_u(a, b)
    theirs_u = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    _check(report, "Mann–Whitney U", mine_u.statistic, theirs_u.statistic)
    _check(report, "Mann–Whitney p-value (normal approximation, ties, continuity)", mine_u.pvalue,
           theirs_u.pvalue, P_RTOL, P_ATOL)

    mine_chi = ours.chi_square_independence(contingency)
    chi2, p, dof, expected = stats.chi2_contingency(np.asarray(contingency), correction=False)
    _check(report, "chi-square statistic and df", [mine_chi.statistic, mine_chi.df], [chi2, dof])
    _check(report, "chi-square p-value", mine_chi.pvalue, p, P_RTOL, P_ATOL)
    _check(report, "chi-square expected counts", mine_chi.expected, expected)
    _check(report, "Cramér's V", mine_chi.cramers_v,
           stats.contingency.association(np.asarray(contingency), method="cramer"))

    # Cohen's d from the pooled (Student) t: d = t · sqrt(1/n_a + 1/n_b)
    student = stats.ttest_ind(a, b, equal_var=True).statistic
    _check(report, "Cohen's d (from scipy's pooled-variance t)", ours.cohens_d(a, b),
           student * np.sqrt(1 / a.size + 1 / b.size))
    df = a.size + b.size - 2
    exact = np.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / np.sqrt(df / 2)
    _check(report, "Hedges' g (against the exact gamma-function correction)", ours.hedges_g(a, b),
           ours.cohens_d(a, b) * exact, HEDGES_RTOL)

    observed = np.asarray(contingency)
    survived, totals = observed[1], observed.sum(axis=0)
    mine_ci = [ours.wilson_interval(int(k), int(n), confidence) for k, n in zip(survived, totals)]
    theirs_ci = [tuple(stats.binomtest(int(k), int(n)).proportion_ci(confidence, method="wilson"))
                 for k, n in zip(survived, totals)]
    _check(report, f"Wilson {confidence:.0%} intervals of each column's survival rate", mine_ci, theirs_ci)

    if bootstrap is not None:
        low, high, n_resamples, seed = bootstrap
        theirs_boot = stats.bootstrap((a, b), lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
                                      n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                                      rng=np.random.default_rng(seed)).confidence_interval
        width = theirs_boot.high - theirs_boot.low
        diff = max(abs(low - theirs_boot.low), abs(high - theirs_boot.high))
        report.add(f"bootstrap {confidence:.0%} CI of the median difference (percentile)",
                   diff <= BOOTSTRAP_TOL * width,
                   f"ours [{low:.3f}, {high:.3f}], scipy [{theirs_boot.low:.3f}, {theirs_boot.high:.3f}]; "
                   f"max |diff| = {diff:.3f} (tol {BOOTSTRAP_TOL:.0%} of scipy's width {width:.3f})")
    return report
