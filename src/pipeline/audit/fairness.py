"""Fairness by group: what a binary classifier's predictions look like for each sensitive group.

The audit every classification flow gets when its dataset declares sensitive columns in the
catalog (``DatasetSpec.sensitive``): the common evaluate task calls `audit_fairness` on each
model's test predictions, and `pipeline.report.UnitReport.add_evaluation` puts its tables and
metrics in the run.

- Group metrics (fairlearn ``MetricFrame``) per attribute and for the attributes' intersection:
  accuracy, error rate, selection rate P(ŷ=1), false-positive rate P(ŷ=1 | y=0), false-negative
  rate P(ŷ=0 | y=1), and the rows n. A rate with no rows to count (FNR of a group without
  positives) is NaN, not 0.
- Disparities per attribute: demographic-parity difference (max − min selection rate) and ratio
  (min / max), and the equalised-odds difference (the larger of the TPR gap and the FPR gap).
- Significance of each error-rate gap: every group against the largest group of its attribute,
  a two-proportion z-test (pooled standard error) with Holm's correction across the comparisons,
  and a percentile bootstrap confidence interval of the difference, with both n.
- Findings that can fail the run: a configured ``max_dp_difference`` / ``max_eo_difference``
  (the unit's parameter, else ``MLPATH_FAIRNESS_MAX_DP_DIFFERENCE`` /
  ``MLPATH_FAIRNESS_MAX_EO_DIFFERENCE``) exceeded by any attribute; the failure names the
  metric, the attribute, both extreme groups and the value.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline.audit import AuditReport

MAX_DP_ENV = "MLPATH_FAIRNESS_MAX_DP_DIFFERENCE"
MAX_EO_ENV = "MLPATH_FAIRNESS_MAX_EO_DIFFERENCE"
RATES = ("accuracy", "error_rate", "selection_rate", "fpr", "fnr")
INTERSECTION = " × "  # the intersection of two attributes is named "sex × race"
BOOTSTRAP_SAMPLES = 2000
LEVEL = 0.95


def _accuracy(y_true, y_pred) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else math.nan


def _error_rate(y_true, y_pred) -> float:
    return float(np.mean(y_true != y_pred)) if len(y_true) else math.nan


def _selection_rate(y_true, y_pred) -> float:
    return float(np.mean(y_pred == 1)) if len(y_pred) else math.nan


def _fpr(y_true, y_pred) -> float:
    negatives = y_true == 0
    return float(np.mean(y_pred[negatives] == 1)) if negatives.any() else math.nan


def _fnr(y_true, y_pred) -> float:
    positives = y_true == 1
    return float(np.mean(y_pred[positives] == 0)) if positives.any() else math.nan


def _count(y_true, y_pred) -> int:
    return len(y_true)


_METRICS = {"accuracy": _accuracy, "error_rate": _error_rate, "selection_rate": _selection_rate,
            "fpr": _fpr, "fnr": _fnr, "n": _count}


def as_binary(y, pos_label) -> np.ndarray:
    """``y == pos_label`` as 0/1 ints, shape (n,)."""
    return (np.asarray(y) == pos_label).astype(int)


def _frame(sensitive) -> pd.DataFrame:
    frame = sensitive.to_frame() if isinstance(sensitive, pd.Series) else pd.DataFrame(sensitive)
    return frame.reset_index(drop=True).astype(str)


def group_metrics(y_true, y_pred, sensitive) -> pd.DataFrame:
    """fairlearn's ``MetricFrame.by_group``: one row per group of ``sensitive`` (a Series, or a
    DataFrame whose columns intersect), columns ``RATES`` and ``n``. y are 0/1, shape (n,)."""
    from fairlearn.metrics import MetricFrame

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    frame = MetricFrame(metrics=_METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=_frame(sensitive))
    table = frame.by_group.astype({"n": int})
    return table[[*RATES, "n"]]


def disparity(table: pd.DataFrame) -> dict[str, float | str]:
    """Demographic-parity difference and ratio, equalised-odds difference, from a `group_metrics`
    table; groups where a rate is undefined (NaN) are left out of that rate's gap."""
    selection = table["selection_rate"]
    tpr_gap = (1 - table["fnr"]).max() - (1 - table["fnr"]).min()
    fpr_gap = table["fpr"].max() - table["fpr"].min()
    return {
        "dp_difference": float(selection.max() - selection.min()),
        "dp_ratio": float(selection.min() / selection.max()) if selection.max() > 0 else math.nan,
        "eo_difference": float(np.nanmax([tpr_gap, fpr_gap])),
        "most_selected": _name(selection.idxmax()),
        "least_selected": _name(selection.idxmin()),
    }


def _name(group) -> str:
    return " & ".join(map(str, group)) if isinstance(group, tuple) else str(group)


def two_proportion_ztest(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """z and the two-sided p-value of H0: p1 = p2, for k1 of n1 and k2 of n2, with the pooled
    standard error sqrt(p(1-p)(1/n1 + 1/n2)), p = (k1 + k2) / (n1 + n2)."""
    from scipy.stats import norm

    if min(n1, n2) <= 0:
        raise ValueError(f"both groups need rows, got n1={n1}, n2={n2}")
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, float(2 * norm.sf(abs(z)))


def bootstrap_difference_ci(k1: int, n1: int, k2: int, n2: int, *, samples: int = BOOTSTRAP_SAMPLES,
                            level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of p1 − p2: each group's 0/1 outcomes resampled with
    replacement, which for a proportion is a Binomial(n, k/n) draw."""
    rng = np.random.default_rng(seed)
    diffs = rng.binomial(n1, k1 / n1, samples) / n1 - rng.binomial(n2, k2 / n2, samples) / n2
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return float(low), float(high)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error across the comparisons)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adjusted[i] = min(running, 1.0)
    return adjusted


def error_rate_tests(y_true, y_pred, sensitive: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Each group's error rate against the largest group of its attribute (and of the
    intersection): n, errors, the difference, z, p, Holm-adjusted p, and the bootstrap CI."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    errors = y_true != y_pred
    rows = []
    for attribute, keys in _attributes(_frame(sensitive)).items():
        counts = pd.DataFrame({"group": keys, "error": errors}).groupby("group")["error"].agg(["sum", "count"])
        reference = counts["count"].idxmax()
        k2, n2 = int(counts.loc[reference, "sum"]), int(counts.loc[reference, "count"])
        for group, (k1, n1) in counts.drop(index=reference).iterrows():
            z, p = two_proportion_ztest(int(k1), int(n1), k2, n2)
            low, high = bootstrap_difference_ci(int(k1), int(n1), k2, n2, seed=seed)
            rows.append({"attribute": attribute, "group": group, "reference": reference, "n_group": int(n1),
                         "n_reference": n2, "error_group": k1 / n1, "error_reference": k2 / n2,
                         "difference": k1 / n1 - k2 / n2, "z": z, "p_value": p, "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(table.columns.get_loc("p_value") + 1, "p_holm", holm(table["p_value"]))
    return table


def _attributes(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Each column's group labels, and (for two or more columns) their intersection."""
    keys = {column: frame[column] for column in frame.columns}
    if frame.shape[1] > 1:
        first, *rest = frame.columns
        keys[INTERSECTION.join(frame.columns)] = frame[first].str.cat([frame[c] for c in rest], sep=" & ")
    return keys


def configured_thresholds(max_dp_difference: float | None = None,
                          max_eo_difference: float | None = None) -> tuple[float | None, float | None]:
    """The thresholds given, else those of ``MLPATH_FAIRNESS_MAX_DP_DIFFERENCE`` /
    ``MLPATH_FAIRNESS_MAX_EO_DIFFERENCE``, else None (report, never fail)."""

    def read(value, variable):
        if value is not None:
            return float(value)
        raw = os.environ.get(variable, "").strip()
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{variable} must be a number (a disparity threshold such as 0.1), got {raw!r}") from None

    return read(max_dp_difference, MAX_DP_ENV), read(max_eo_difference, MAX_EO_ENV)


@dataclass
class FairnessAudit:
    """Group metrics, disparities and error-rate tests of one model's test predictions, and the
    findings (``report``) that fail the run when a configured threshold is exceeded."""

    by_group: dict[str, pd.DataFrame]
    disparities: pd.DataFrame
    significance: pd.DataFrame
    report: AuditReport
    thresholds: dict[str, float | None] = field(default_factory=dict)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """``fairness_<metric>_<attribute>`` for each attribute (intersection included)."""
        out = {}
        for attribute, row in self.disparities.iterrows():
            key = attribute.replace(INTERSECTION, "_x_").replace(" ", "_").lower()
            for metric in ("dp_difference", "dp_ratio", "eo_difference"):
                out[f"{prefix}fairness_{metric}_{key}"] = float(row[metric])
        return out

    def tables(self, prefix: str = "") -> dict[str, pd.DataFrame]:
        """The group tables, the disparities and the significance tests, named for a report."""
        tables = {f"{prefix}fairness by {attribute}": table for attribute, table in self.by_group.items()}
        tables[f"{prefix}fairness disparities"] = self.disparities
        tables[f"{prefix}fairness error-rate tests"] = self.significance
        return tables


def audit_fairness(y_true, y_pred, sensitive, *, pos_label=1, max_dp_difference: float | None = None,
                   max_eo_difference: float | None = None, subject: str = "model", seed: int = 0) -> FairnessAudit:
    """Audit one model's test predictions by the groups of ``sensitive`` (a DataFrame of raw
    attribute values, one row per test row, in the same order as ``y_true``).

    Thresholds come from `configured_thresholds`; with none set the findings only report.
    """
    frame = _frame(sensitive)
    if len(frame) != len(y_true) or len(y_pred) != len(y_true):
        raise ValueError(f"sensitive attributes ({len(frame)} rows), y_true ({len(y_true)}) and y_pred "
                         f"({len(y_pred)}) must describe the same test rows")
    y_true, y_pred = as_binary(y_true, pos_label), as_binary(y_pred, pos_label)
    max_dp, max_eo = configured_thresholds(max_dp_difference, max_eo_difference)
    by_group, rows = {}, {}
    for attribute in frame.columns:
        by_group[attribute] = group_metrics(y_true, y_pred, frame[attribute])
    if frame.shape[1] > 1:
        by_group[INTERSECTION.join(frame.columns)] = group_metrics(y_true, y_pred, frame)
    for attribute, table in by_group.items():
        rows[attribute] = disparity(table)
    disparities = pd.DataFrame.from_dict(rows, orient="index")
    disparities.index.name = "attribute"

    report = AuditReport(f"fairness of {subject} by {', '.join(frame.columns)}")
    for attribute, row in disparities.iterrows():
        table = by_group[attribute]
        high, low = row["most_selected"], row["least_selected"]
        rates = (f"selection rate {_rate(table, high)} ({high}, n={_n(table, high)}) vs {_rate(table, low)} "
                 f"({low}, n={_n(table, low)})")
        _threshold_finding(report, f"demographic parity difference by {attribute}", row["dp_difference"], max_dp,
                           rates)
        _threshold_finding(report, f"equalized odds difference by {attribute}", row["eo_difference"], max_eo,
                           "the larger of the TPR and FPR gaps between groups")
    return FairnessAudit(by_group, disparities, error_rate_tests(y_true, y_pred, frame, seed=seed), report,
                         {"max_dp_difference": max_dp, "max_eo_difference": max_eo})


def _rate(table: pd.DataFrame, group: str) -> str:
    return f"{table.loc[_key(table, group), 'selection_rate']:.4f}"


def _n(table: pd.DataFrame, group: str) -> str:
    return f"{int(table.loc[_key(table, group), 'n']):,}"


def _key(table: pd.DataFrame, group: str):
    return tuple(group.split(" & ")) if table.index.nlevels > 1 else group


def _threshold_finding(report: AuditReport, check: str, value: float, threshold: float | None, detail: str) -> None:
    if threshold is None:
        report.add(check, True, f"{value:.4f} ({detail}); no threshold set, reported only")
    elif value > threshold:
        report.add(check, False, f"{value:.4f} exceeds the threshold {threshold:.4f}: {detail}")
    else:
        report.add(check, True, f"{value:.4f} within the threshold {threshold:.4f}: {detail}")


def reweighing_weights(groups, y) -> np.ndarray:
    """Kamiran & Calders' re-weighing: w(g, y) = P(g) P(y) / P(g, y), shape (n,).

    Weighted, group and label are independent in the training data (each (g, y) cell weighs what
    it would if the label did not depend on the group); the weights average to 1.
    """
    frame = pd.DataFrame({"g": np.asarray(groups).astype(str), "y": np.asarray(y)})
    n = len(frame)
    p_g = frame["g"].map(frame["g"].value_counts() / n)
    p_y = frame["y"].map(frame["y"].value_counts() / n)
    p_gy = frame.groupby(["g", "y"])["y"].transform("size") / n
    return (p_g * p_y / p_gy).to_numpy(dtype=float)


def audit_evaluations(name: str, results: dict, sensitive, *, seed: int = 0, max_dp_difference: float | None = None,
                      max_eo_difference: float | None = None) -> AuditReport:
    """Audit each binary classifier among ``results`` (``EvaluationResult`` by model name) by the
    test rows' ``sensitive`` attributes: its `FairnessAudit` goes in ``result.fairness``; returns
    every model's findings in one report, each check prefixed by the model's name."""
    combined = AuditReport(f"fairness of {name}")
    for model_name, result in results.items():
        if result.task != "classification" or len(result.labels) != 2:
            continue  # selection rates and FPR/FNR need one positive class
        result.fairness = audit_fairness(result.y_true, result.y_pred, sensitive, pos_label=result.labels[-1],
                                         max_dp_difference=max_dp_difference, max_eo_difference=max_eo_difference,
                                         subject=model_name, seed=seed)
        combined.findings += [replace(f, check=f"{model_name}: {f.check}") for f in result.fairness.report.findings]
    return combined


AGREEMENT_TOL = 1e-12


def audit_against_fairlearn(y_true, y_pred, sensitive, *, subject: str = "model") -> AuditReport:
    """Our group rates and disparities against fairlearn's own metric functions, per attribute:
    selection rate, FPR, FNR by group, demographic-parity difference and ratio, equalised-odds
    difference, to ``AGREEMENT_TOL`` (fairlearn counts an undefined rate as 0; we leave such
    groups out, so attributes with one are skipped)."""
    from fairlearn import metrics as flm

    frame = _frame(sensitive)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    report = AuditReport(f"group metrics of {subject} (ours) vs fairlearn.metrics")
    for attribute in frame.columns:
        ours = group_metrics(y_true, y_pred, frame[attribute])
        if ours[list(RATES)].isna().any().any():
            report.add(f"{attribute}: skipped", True, "a group has a rate with nothing to count")
            continue
        theirs = flm.MetricFrame(metrics={"selection_rate": flm.selection_rate, "fpr": flm.false_positive_rate,
                                          "fnr": flm.false_negative_rate},
                                 y_true=y_true, y_pred=y_pred, sensitive_features=frame[attribute]).by_group
        gap = float(np.max(np.abs(ours[theirs.columns].to_numpy() - theirs.to_numpy())))
        mine = disparity(ours)
        groups = frame[attribute]
        library = {"dp_difference": flm.demographic_parity_difference(y_true, y_pred, sensitive_features=groups),
                   "dp_ratio": flm.demographic_parity_ratio(y_true, y_pred, sensitive_features=groups),
                   "eo_difference": flm.equalized_odds_difference(y_true, y_pred, sensitive_features=groups)}
        gap = max(gap, *(abs(mine[k] - v) for k, v in library.items()))
        report.add(f"{attribute}: rates and disparities", gap <= AGREEMENT_TOL,
                   f"max |ours − fairlearn| = {gap:.1e} over {len(ours)} groups (tol {AGREEMENT_TOL:.0e})")
    return report
