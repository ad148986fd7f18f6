"""Explanations of a tree ensemble's predictions: SHAP (TreeExplainer) and LIME, and a check that
the SHAP values add up.

SHAP gives each feature of one row a share of (the model's raw output for the row − its average
output), shares that add up exactly (local accuracy); the mean |share| over many rows ranks the
features globally. TreeExplainer computes them exactly from the trees, in log-odds for a boosted
classifier. LIME fits a small weighted linear model to the classifier's probabilities on
perturbed copies of one row: an approximation, sampled, whose weights are in probability units.

TreeExplainer reads HistGradientBoosting's numeric splits only; SHAP 0.51 ignores the bitsets of
its native categorical splits and returns values that do not add up (about 7 log-odds off on
Adult), silently. `audit_shap_additivity` catches that; models explained here take categories as
ordinal codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.audit import AuditReport

ADDITIVITY_TOL = 1e-6  # log-odds: the SHAP values plus the base value against the raw output


@dataclass
class ShapExplanation:
    """SHAP values (n, d) of rows ``data`` (raw values, for display), in log-odds; ``raw`` is the
    model's own log-odds for the same rows, ``base`` the expected log-odds."""

    values: np.ndarray
    base: float
    data: pd.DataFrame
    raw: np.ndarray

    @property
    def features(self) -> list[str]:
        return list(self.data.columns)

    def importance(self) -> pd.DataFrame:
        """Global importance: mean |SHAP| per feature, largest first, with its share of the total."""
        mean_abs = np.abs(self.values).mean(axis=0)
        table = pd.DataFrame({"feature": self.features, "mean_abs_shap": mean_abs,
                              "share": mean_abs / mean_abs.sum()})
        return table.sort_values("mean_abs_shap", ascending=False, ignore_index=True)

    def local(self, row: int) -> pd.DataFrame:
        """One row's explanation: each feature's value and SHAP value, largest |SHAP| first."""
        table = pd.DataFrame({"feature": self.features, "value": self.data.iloc[row].astype(str).to_numpy(),
                              "shap": self.values[row]})
        return table.reindex(table["shap"].abs().sort_values(ascending=False).index).reset_index(drop=True)

    def as_shap(self, row: int | None = None):
        """A ``shap.Explanation`` (all rows, or one) for shap's plots."""
        import shap

        rows = slice(None) if row is None else row
        return shap.Explanation(self.values[rows], base_values=self.base, data=self.data.iloc[rows].to_numpy(),
                                feature_names=self.features)


def shap_tree(encoder, tree_model, rows: pd.DataFrame) -> ShapExplanation:
    """Exact TreeSHAP of ``tree_model`` on ``encoder.transform(rows)`` (one column per feature, in
    ``rows``' order, so each value belongs to the raw feature it is shown with)."""
    import shap

    Z = encoder.transform(rows)
    Z = np.asarray(Z, dtype=np.float64)
    explainer = shap.TreeExplainer(tree_model)
    values = np.asarray(explainer.shap_values(Z))
    base = float(np.ravel(explainer.expected_value)[0])
    return ShapExplanation(values, base, rows.reset_index(drop=True), np.asarray(tree_model.decision_function(Z)))


def audit_shap_additivity(explanation: ShapExplanation) -> AuditReport:
    """Local accuracy: for every row, base + Σ SHAP = the model's log-odds, to ``ADDITIVITY_TOL``."""
    report = AuditReport("SHAP TreeExplainer local accuracy")
    gap = float(np.max(np.abs(explanation.values.sum(axis=1) + explanation.base - explanation.raw)))
    report.add("SHAP values add up to the model's log-odds", gap <= ADDITIVITY_TOL,
               f"max |base + Σ SHAP − log-odds| = {gap:.1e} over {len(explanation.raw)} rows "
               f"(tol {ADDITIVITY_TOL:.0e})")
    return report


def lime_explanation(predict_proba, train_codes: np.ndarray, row_codes: np.ndarray, features: list[str],
                     categorical: dict[int, list[str]], *, num_features: int = 8, num_samples: int = 2000,
                     seed: int = 0):
    """LIME's tabular explanation of one row for the positive class.

    ``predict_proba`` maps encoded rows (n, d) to class probabilities; ``train_codes`` are the
    encoded training rows LIME draws its perturbations from (their statistics); ``categorical``
    maps a categorical column's index to its category names (code i is name i). Returns the
    ``lime`` explanation and its weights as a table (rule, weight), largest |weight| first.
    """
    from lime.lime_tabular import LimeTabularExplainer

    train_codes = _fill_missing(train_codes)
    explainer = LimeTabularExplainer(train_codes, feature_names=features, class_names=["no", "yes"],
                                     categorical_features=sorted(categorical), categorical_names=categorical,
                                     discretize_continuous=True, random_state=seed)
    explained = explainer.explain_instance(_fill_missing(row_codes[None, :], train_codes)[0], predict_proba,
                                           num_features=num_features, num_samples=num_samples, labels=(1,))
    weights = pd.DataFrame(explained.as_list(label=1), columns=["rule", "weight"])
    return explained, weights


def _fill_missing(codes: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """LIME samples from column statistics and cannot take NaN: a missing code becomes the
    column's most frequent code (of ``reference``, else of ``codes``)."""
    codes = np.array(codes, dtype=np.float64)
    reference = codes if reference is None else reference
    for j in range(codes.shape[1]):
        missing = np.isnan(codes[:, j])
        if missing.any():
            values, counts = np.unique(reference[~np.isnan(reference[:, j]), j], return_counts=True)
            codes[missing, j] = values[np.argmax(counts)]
    return codes
