"""Unit 14 — a bias audit of income models on Adult Census Income (fairlearn, SHAP, LIME).

Adult asks whether a person's income exceeds $50K a year from 14 census attributes (1994 Current
Population Survey). 31 % of the men in the training data earn more than $50K and 11 % of the
women: a model that learns the data learns that gap. The unit fits a boosted model and a
logistic regression, measures who each model selects and whom it gets wrong, by sex, by race and
by their intersection (the common evaluation does this for any dataset with sensitive columns),
tests whether the error-rate gaps are larger than noise, explains what drives the boosted model
(SHAP and LIME), and compares four ways to narrow the gap.

Inputs: every attribute except ``fnlwgt`` (the census's sampling weight, how many people a row
stands for, not a trait of the person) and ``education`` (the same as ``education-num``, its
rank). Sex and race stay model inputs by default (``sensitive_inputs``), as in the usual Adult
set-up: the audit measures the model as it would be built, and dropping them is shown to change
little. The boosted model takes the categories as ordinal codes, not as HistGradientBoosting's
native categories: the accuracy is the same, and SHAP's TreeExplainer is exact only for
numeric splits (``pipeline.audit.explain``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipeline.audit.explain import ShapExplanation, lime_explanation, shap_tree
from pipeline.audit.fairness import audit_fairness, reweighing_weights
from pipeline.features import Split, sensitive_attributes

TARGET, POSITIVE = "income", ">50K"
CLASS_NAMES = {0: "<=50K", 1: ">50K"}
SENSITIVE = ("sex", "race")
MITIGATE_BY = "sex"
CATEGORICAL = ["workclass", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
DROPPED = ("fnlwgt", "education")

BOOSTED = "boosted (HistGradientBoosting)"  # the registered model
LOGISTIC = "logistic regression"

BASELINE = "baseline (boosted)"
UNAWARE = "unawareness (no sex, race inputs)"
REWEIGHED = "re-weighing (Kamiran & Calders)"
THRESHOLDS = "ThresholdOptimizer (demographic parity)"
REDUCTION = "ExponentiatedGradient (demographic parity)"

GOAL_REDUCTION = 0.70  # the goal: the best mitigation cuts DP difference by sex by ≥ 70 % ...
GOAL_COST_POINTS = 2.0  # ... at a cost of ≤ 2 accuracy points

QUICK = {"boosting_iterations": 50, "eg_iterations": 8, "eg_boosting_iterations": 30, "lime_samples": 1000}
FULL = {"eg_boosting_iterations": 100, "lime_samples": 5000}
SHAP_ROWS = 2000  # test rows explained (all of quick's)

CAPTIONS = {
    "group_rates": "Selection rate (share predicted >50K), base rate (share truly >50K), error rate, FPR and FNR "
                   "of the boosted model for each sex and race group. Look at the selection-rate bars against "
                   "the base-rate bars: the model's gap follows the data's; and at FNR against "
                   "FPR: which group's high earners the model misses more often, and which it wrongly selects.",
    "error_rate_gaps": "Each group's error rate minus that of its attribute's largest group, with the 95 % "
                       "bootstrap interval and n. An interval that crosses zero is a gap the test set cannot tell "
                       "from noise; small intersectional groups have wide intervals.",
    "shap_importance": "Global importance of the boosted model's inputs: the mean |SHAP value| (log-odds) over the "
                       "explained test rows. Look at where sex and race rank, and at relationship and marital "
                       "status, which carry sex (Husband/Wife) into the model even without the sex column.",
    "shap_waterfall_female": "One woman's prediction explained: each bar is a feature's push (log-odds) from the "
                             "average prediction to this row's, largest first. The title gives both ends.",
    "shap_waterfall_male": "The same for one man: compare which features push, and whether sex itself appears.",
    "lime_female": "LIME's local linear explanation of the same woman's prediction (weights in probability of "
                   ">50K, for rules on the feature values). Compare its top features with the SHAP waterfall.",
    "mitigation_tradeoff": "Test accuracy against the demographic-parity difference by sex for the baseline and "
                           "each mitigation. Left is a smaller gap, up is more accurate: look for the points that move "
                           "far left for little drop; the shaded box is the goal (≥ 70 % smaller gap at ≤ 2 "
                           "accuracy points).",
    "selection_by_method": "Selection rate of women and men under each method: mitigation closes the gap mostly by "
                           "selecting more women (post-processing) or fewer men, at different accuracy costs.",
}


def settings(params) -> dict[str, Any]:
    """The run's model settings for its profile (quick shrinks the boosting and the reductions)."""
    values = {"boosting_iterations": params.boosting_iterations, "eg_iterations": params.eg_iterations, **FULL}
    if params.profile == "quick":
        values |= {key: min(value, values.get(key, value)) for key, value in QUICK.items()}
    return values


def features(sensitive_inputs: bool = True) -> tuple[list[str], list[str]]:
    """The (categorical, numeric) model inputs."""
    dropped = () if sensitive_inputs else SENSITIVE
    return [c for c in CATEGORICAL if c not in dropped], list(NUMERIC)


def adult_split(dataset, sensitive_inputs: bool = True) -> Split:
    """Adult's own train/test files as a Split: inputs, 0/1 labels (1 = >50K), and the test rows'
    sex and race (the catalog's sensitive columns) for the fairness audit."""
    train, test = dataset.splits["train"], dataset.splits["test"]
    categorical, numeric = features(sensitive_inputs)
    columns = categorical + numeric
    return Split(train[columns].reset_index(drop=True), test[columns].reset_index(drop=True),
                 (train[TARGET] == POSITIVE).to_numpy(dtype=int), (test[TARGET] == POSITIVE).to_numpy(dtype=int),
                 sensitive_attributes("adult", test))


def ordinal_encoder(categorical: list[str], numeric: list[str]) -> ColumnTransformer:
    """Categories as codes 0..k-1 (missing and unseen as NaN, which the trees route), numbers as they
    are; output columns in ``categorical + numeric`` order, one per input column."""
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    return ColumnTransformer([("cat", codes, categorical), ("num", "passthrough", numeric)],
                             verbose_feature_names_out=False)


def boosted_model(categorical, numeric, iterations: int, learning_rate: float, seed: int) -> Pipeline:
    """HistGradientBoosting on ordinal codes, no early stopping (the same trees whatever the row count)."""
    model = HistGradientBoostingClassifier(max_iter=iterations, learning_rate=learning_rate, early_stopping=False,
                                           random_state=seed)
    return Pipeline([("features", ordinal_encoder(categorical, numeric)), ("model", model)])


def logistic_model(categorical, numeric) -> Pipeline:
    """One-hot categories (missing as the most frequent), standardised numbers, logistic regression."""
    onehot = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    transform = ColumnTransformer([("cat", onehot, categorical), ("num", StandardScaler(), numeric)])
    return Pipeline([("features", transform), ("model", LogisticRegression(max_iter=2000))])


def models(params, sensitive_inputs: bool | None = None) -> dict[str, Pipeline]:
    """The two unfitted models the unit compares."""
    categorical, numeric = features(params.sensitive_inputs if sensitive_inputs is None else sensitive_inputs)
    run = settings(params)
    return {BOOSTED: boosted_model(categorical, numeric, run["boosting_iterations"], params.learning_rate,
                                   params.seed),
            LOGISTIC: logistic_model(categorical, numeric)}


# --- mitigation --------------------------------------------------------------------------------


@dataclass
class Mitigation:
    """The mitigation table (one row per method) and each method's test predictions."""

    table: pd.DataFrame
    predictions: dict[str, np.ndarray]
    selection: pd.DataFrame  # selection rate by sex, one row per method


def mitigate(dataset, boosted: Pipeline, split: Split, params) -> Mitigation:
    """The fitted baseline against four mitigations, each evaluated on the same test rows by sex.

    - unawareness: the same model without sex and race as inputs;
    - re-weighing: the baseline refitted with Kamiran & Calders' weights w(sex, y) = P(sex) P(y) / P(sex, y);
    - ThresholdOptimizer (post-processing): a threshold per sex on the baseline's probabilities,
      chosen on the training rows for the best accuracy under equal selection rates (it needs sex
      at prediction time, and predicts at random between two thresholds for some rows);
    - ExponentiatedGradient (reductions): a randomised mix of boosted models, each fitted on
      re-weighted rows, the weights set by a game between accuracy and the demographic-parity
      constraint (|selection-rate gap| ≤ eps).
    """
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient

    run = settings(params)
    train, test = dataset.splits["train"].reset_index(drop=True), dataset.splits["test"].reset_index(drop=True)
    sex_train, sex_test = train[MITIGATE_BY], test[MITIGATE_BY]
    predictions = {BASELINE: boosted.predict(split.X_test)}
    if params.sensitive_inputs:
        unaware = models(params, sensitive_inputs=False)[BOOSTED]
        blind = adult_split(dataset, sensitive_inputs=False)
        predictions[UNAWARE] = unaware.fit(blind.X_train, blind.y_train).predict(blind.X_test)
    weights = reweighing_weights(sex_train, split.y_train)
    reweighed = clone(boosted).fit(split.X_train, split.y_train, model__sample_weight=weights)
    predictions[REWEIGHED] = reweighed.predict(split.X_test)

    thresholds = ThresholdOptimizer(estimator=boosted, constraints="demographic_parity", objective="accuracy_score",
                                    prefit=True, predict_method="predict_proba")
    thresholds.fit(split.X_train, split.y_train, sensitive_features=sex_train)
    predictions[THRESHOLDS] = np.asarray(thresholds.predict(split.X_test, sensitive_features=sex_test,
                                                            random_state=params.seed))

    encoder = boosted.named_steps["features"]
    Z_train, Z_test = encoder.transform(split.X_train), encoder.transform(split.X_test)
    base = HistGradientBoostingClassifier(max_iter=run["eg_boosting_iterations"], learning_rate=params.learning_rate,
                                          early_stopping=False, random_state=params.seed)
    reduction = ExponentiatedGradient(base, DemographicParity(), eps=params.eg_eps, max_iter=run["eg_iterations"])
    reduction.fit(Z_train, split.y_train, sensitive_features=sex_train.to_numpy())
    predictions[REDUCTION] = np.asarray(reduction.predict(Z_test, random_state=params.seed))
    return _mitigation_table(predictions, split.y_test, test, seed=params.seed)


SEX_AT_PREDICTION = {BASELINE: "as an input", UNAWARE: "no", REWEIGHED: "as an input", THRESHOLDS: "yes, required",
                     REDUCTION: "as an input"}


def _mitigation_table(predictions: dict[str, np.ndarray], y_test, test: pd.DataFrame, *, seed: int) -> Mitigation:
    rows, selection = {}, {}
    groups = test[list(SENSITIVE)]
    for method, y_pred in predictions.items():
        audit = audit_fairness(y_test, y_pred, groups, subject=method, seed=seed)
        rows[method] = {"accuracy": accuracy_score(y_test, y_pred),
                        "dp_difference_sex": audit.disparities.loc[MITIGATE_BY, "dp_difference"],
                        "eo_difference_sex": audit.disparities.loc[MITIGATE_BY, "eo_difference"],
                        "dp_difference_race": audit.disparities.loc["race", "dp_difference"],
                        "sex_at_prediction": SEX_AT_PREDICTION.get(method, "")}
        selection[method] = audit.by_group[MITIGATE_BY]["selection_rate"]
    table = pd.DataFrame.from_dict(rows, orient="index")
    baseline = table.loc[BASELINE]
    table.insert(1, "accuracy_change_points", 100 * (table["accuracy"] - baseline["accuracy"]))
    table.insert(3, "dp_reduction", 1 - table["dp_difference_sex"] / baseline["dp_difference_sex"])
    table["meets_goal"] = (table["dp_reduction"] >= GOAL_REDUCTION) & (-table["accuracy_change_points"]
                                                                        <= GOAL_COST_POINTS)
    table.index.name = "method"
    return Mitigation(table, predictions, pd.DataFrame(selection).T.rename_axis("method"))


def best_mitigation(table: pd.DataFrame) -> str:
    """The method with the largest DP reduction among those within the accuracy budget (else the
    largest reduction overall), the baseline excluded."""
    candidates = table.drop(index=BASELINE)
    affordable = candidates[-candidates["accuracy_change_points"] <= GOAL_COST_POINTS]
    return str((affordable if len(affordable) else candidates)["dp_reduction"].idxmax())


def mitigation_metrics(table: pd.DataFrame) -> dict[str, float]:
    best = best_mitigation(table)
    row = table.loc[best]
    return {"mitigation_dp_difference_sex_baseline": float(table.loc[BASELINE, "dp_difference_sex"]),
            "mitigation_dp_difference_sex": float(row["dp_difference_sex"]),
            "mitigation_dp_reduction": float(row["dp_reduction"]),
            "mitigation_accuracy": float(row["accuracy"]),
            "mitigation_accuracy_cost_points": float(-row["accuracy_change_points"]),
            "mitigation_meets_goal": float(bool(row["meets_goal"]))}


# --- explanations ------------------------------------------------------------------------------


@dataclass
class Explanations:
    """SHAP on the boosted model's test rows, two local explanations (a woman, a man), LIME on the
    woman's row, and how well the other inputs predict sex (the proxy check)."""

    shap: ShapExplanation
    rows: dict[str, int]  # group -> row of ``shap`` explained locally
    lime: pd.DataFrame
    sex_proxy_auc: float
    proxies: pd.DataFrame = field(default_factory=pd.DataFrame)


def explain(boosted: Pipeline, split: Split, params) -> Explanations:
    """SHAP values of the first ``SHAP_ROWS`` test rows; the local rows are each sex's first true
    >50K earner; LIME explains the woman's row with the same model."""
    run = settings(params)
    encoder, tree = boosted.named_steps["features"], boosted.named_steps["model"]
    rows = split.X_test.iloc[:SHAP_ROWS]
    explained = shap_tree(encoder, tree, rows)
    sex = split.sensitive[MITIGATE_BY].iloc[:SHAP_ROWS].to_numpy()
    positive = split.y_test[:SHAP_ROWS] == 1
    local = {group: int(np.flatnonzero((sex == group) & positive)[0]) for group in ("Female", "Male")}

    categorical = [c for c in encoder.transformers_[0][2]]
    codes = encoder.named_transformers_["cat"]
    names = {i: [str(v) for v in codes.categories_[i]] for i in range(len(categorical))}
    _, lime = lime_explanation(tree.predict_proba, encoder.transform(split.X_train),
                               np.asarray(encoder.transform(rows.iloc[[local["Female"]]]))[0], explained.features,
                               names, num_samples=run["lime_samples"], seed=params.seed)
    auc, proxies = sex_proxy(split, params.seed)
    return Explanations(explained, local, lime, auc, proxies)


def sex_proxy(split: Split, seed: int) -> tuple[float, pd.DataFrame]:
    """How well the non-sensitive inputs predict sex (test ROC AUC of a small boosted model trained
    on the training rows; 0.5 = no signal), and P(female | relationship) on the training rows."""
    train_sex = (split.X_train["sex"] == "Female").to_numpy(dtype=int) if "sex" in split.X_train else None
    if train_sex is None:
        return float("nan"), pd.DataFrame()
    categorical, numeric = features(sensitive_inputs=False)
    proxy = boosted_model(categorical, numeric, 50, 0.1, seed).fit(split.X_train[categorical + numeric], train_sex)
    test_sex = (split.sensitive["sex"] == "Female").to_numpy(dtype=int)
    auc = roc_auc_score(test_sex, proxy.predict_proba(split.X_test[categorical + numeric])[:, 1])
    table = (pd.DataFrame({"relationship": split.X_train["relationship"], "female": train_sex})
             .groupby("relationship")["female"].agg(["mean", "size"])
             .rename(columns={"mean": "share_female", "size": "n"}))
    return float(auc), table


# --- figures and report ------------------------------------------------------------------------


def base_rates(y_test, sensitive: pd.DataFrame) -> dict[str, pd.Series]:
    """P(y = 1) per group of each attribute, on the test rows."""
    return {a: pd.Series(y_test).groupby(sensitive[a].to_numpy()).mean() for a in sensitive.columns}


def figures(result, explanations: Explanations, mitigation: Mitigation, split: Split) -> dict[str, bytes]:
    """Every figure of the unit as PNG bytes, named as in ``CAPTIONS``; ``result`` is the boosted
    model's evaluation (with its fairness audit)."""
    from matplotlib.figure import Figure

    from pipeline.plots import figure_to_png

    out = {}
    audit = result.fairness
    rates = base_rates(split.y_test, split.sensitive)
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 5]})
    for ax, attribute in zip(axes, SENSITIVE):
        table = audit.by_group[attribute].assign(base_rate=rates[attribute])
        shown = table[["base_rate", "selection_rate", "error_rate", "fpr", "fnr"]]
        x = np.arange(len(shown))
        for i, column in enumerate(shown.columns):
            ax.bar(x + (i - 2) * 0.16, shown[column], 0.16, label=column)
        ax.set_xticks(x, [f"{g}\n(n={n:,})" for g, n in zip(shown.index, table["n"])], fontsize=7)
        ax.set(title=f"by {attribute}", ylabel="rate")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{BOOSTED}: rates by group (test rows)")
    fig.tight_layout()
    out["group_rates"] = figure_to_png(fig)

    tests = audit.significance
    fig = Figure(figsize=(8, 0.3 * len(tests) + 1.5))
    ax = fig.subplots()
    y = np.arange(len(tests))
    spread = [tests["difference"] - tests["ci_low"], tests["ci_high"] - tests["difference"]]
    ax.errorbar(tests["difference"], y, xerr=spread, fmt="o", capsize=3)
    ax.axvline(0, color="grey", linestyle="--")
    ax.set_yticks(y, [f"{a}: {g} (n={n:,}) vs {r}" for a, g, n, r in
                      zip(tests["attribute"], tests["group"], tests["n_group"], tests["reference"])], fontsize=7)
    ax.set(xlabel="error-rate difference (95 % bootstrap CI)", title="Error-rate gaps against the largest group")
    fig.tight_layout()
    out["error_rate_gaps"] = figure_to_png(fig)

    importance = explanations.shap.importance()
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    colours = ["tab:red" if f in SENSITIVE else "tab:blue" for f in importance["feature"]]
    ax.barh(importance["feature"][::-1], importance["mean_abs_shap"][::-1], color=colours[::-1])
    ax.set(xlabel="mean |SHAP value| (log-odds)", title="Global importance (sensitive inputs in red)")
    fig.tight_layout()
    out["shap_importance"] = figure_to_png(fig)

    for group, row in explanations.rows.items():
        out[f"shap_waterfall_{group.lower()}"] = figure_to_png(_waterfall(explanations.shap, row, group))
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    lime = explanations.lime.iloc[::-1]
    ax.barh(lime["rule"], lime["weight"], color=["tab:red" if w < 0 else "tab:green" for w in lime["weight"]])
    ax.set(xlabel="LIME weight (probability of >50K)", title="LIME: the same woman's prediction")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    out["lime_female"] = figure_to_png(fig)

    table = mitigation.table
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    base = table.loc[BASELINE]
    ax.fill_between([0, (1 - GOAL_REDUCTION) * base["dp_difference_sex"]], base["accuracy"] - GOAL_COST_POINTS / 100,
                    base["accuracy"] + 0.005, color="tab:green", alpha=0.15, label="goal")
    for method, row in table.iterrows():
        ax.scatter(row["dp_difference_sex"], row["accuracy"])
        ax.annotate(method, (row["dp_difference_sex"], row["accuracy"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")
    ax.set(xlabel="demographic-parity difference by sex", ylabel="test accuracy", title="Mitigation trade-off")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["mitigation_tradeoff"] = figure_to_png(fig)

    selection = mitigation.selection
    fig = Figure(figsize=(8, 3.5))
    ax = fig.subplots()
    x = np.arange(len(selection))
    for i, group in enumerate(selection.columns):
        ax.bar(x + (i - 0.5) * 0.35, selection[group], 0.35, label=group)
    ax.set_xticks(x, [m.replace(" (", "\n(") for m in selection.index], fontsize=7)
    ax.set(ylabel="selection rate (predicted >50K)", title="Selection rate by sex under each method")
    ax.legend()
    fig.tight_layout()
    out["selection_by_method"] = figure_to_png(fig)
    return out


def _waterfall(explanation: ShapExplanation, row: int, group: str, top: int = 10):
    """A waterfall-style bar chart of one row's largest SHAP values (Figure-based, thread-safe)."""
    from matplotlib.figure import Figure

    local = explanation.local(row).head(top).iloc[::-1]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.barh([f"{f} = {v}" for f, v in zip(local["feature"], local["value"])], local["shap"],
            color=["tab:red" if s < 0 else "tab:green" for s in local["shap"]])
    ax.axvline(0, color="grey")
    logit = explanation.base + explanation.values[row].sum()
    ax.set(xlabel="SHAP value (log-odds of >50K)",
           title=f"{group}, test row {row}: E[f(x)] = {explanation.base:.2f} → f(x) = {logit:.2f} "
                 f"(P = {1 / (1 + np.exp(-logit)):.2f})")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def headline_metrics(result, explanations: Explanations, mitigation: Mitigation) -> dict[str, float]:
    importance = explanations.shap.importance().set_index("feature")
    rank = {f: int(i) + 1 for i, f in enumerate(importance.index)}
    metrics = {"shap_rank_sex": rank.get("sex", np.nan), "shap_rank_race": rank.get("race", np.nan),
               "shap_rank_relationship": rank["relationship"], "sex_proxy_auc": explanations.sex_proxy_auc}
    return {k: float(v) for k, v in {**metrics, **mitigation_metrics(mitigation.table)}.items()}


def report_markdown(results: dict, explanations: Explanations, mitigation: Mitigation, metrics: dict[str, float],
                    split: Split) -> str:
    """The audit report: the question, group metrics, significance, explanations, mitigation,
    sources of bias and the trade-off."""
    from pipeline.report import markdown_table

    boosted, logistic = results[BOOSTED], results[LOGISTIC]
    audit = boosted.fairness
    rates = base_rates(split.y_test, split.sensitive)
    table = mitigation.table
    best = best_mitigation(table)
    importance = explanations.shap.importance()
    top = ", ".join(f"{f} ({s:.0%})" for f, s in zip(importance["feature"][:4], importance["share"][:4]))
    sex_row = audit.disparities.loc["sex"]
    tests = audit.significance
    sex_test = tests[tests["attribute"] == "sex"].iloc[0]
    significant = tests[tests["p_holm"] < 0.05]
    fnr = audit.by_group["sex"]["fnr"]
    fnr_sentence = (f"the share of high earners the model misses (FNR) is {fnr.get('Female', np.nan):.1%} for women "
                    f"and {fnr.get('Male', np.nan):.1%} for men.")
    lines = [
        "# Bias audit: income models on Adult Census Income",
        "",
        f"**Question.** Does a model that predicts whether a person earns more than $50K treat women and men, and "
        f"people of different races, alike? Test rows: {len(split.y_test):,}; models: {BOOSTED} (test accuracy "
        f"{boosted.metrics['test_accuracy']:.4f}) and {LOGISTIC} ({logistic.metrics['test_accuracy']:.4f}).",
        "",
        "## Who is selected, and who is wrong",
        "",
        f"In the test data {rates['sex'].get('Male', np.nan):.1%} of men and {rates['sex'].get('Female', np.nan):.1%} "
        f"of women earn >50K. The boosted model selects (predicts >50K) "
        f"{audit.by_group['sex'].loc['Male', 'selection_rate']:.1%} of men and "
        f"{audit.by_group['sex'].loc['Female', 'selection_rate']:.1%} of women: demographic-parity difference "
        f"**{sex_row['dp_difference']:.4f}**, ratio {sex_row['dp_ratio']:.3f} (the four-fifths rule asks ≥ 0.8), "
        f"equalised-odds difference {sex_row['eo_difference']:.4f}.",
        "",
        "![rates by group](figures/group_rates.png)",
        "",
        "### By sex", "", markdown_table(audit.by_group["sex"], floatfmt=".4f"),
        "", "### By race", "", markdown_table(audit.by_group["race"], floatfmt=".4f"),
        "", "### By sex × race", "", markdown_table(audit.by_group["sex × race"], floatfmt=".4f"),
        "", "### Disparities", "", markdown_table(audit.disparities, floatfmt=".4f"),
        "",
        f"The logistic regression shows the same pattern: DP difference by sex "
        f"{logistic.fairness.disparities.loc['sex', 'dp_difference']:.4f}, EO difference "
        f"{logistic.fairness.disparities.loc['sex', 'eo_difference']:.4f}.",
        "",
        "## Is the error-rate gap significant?",
        "",
        f"Women's error rate is {sex_test['error_group']:.4f} (n={sex_test['n_group']:,}) against men's "
        f"{sex_test['error_reference']:.4f} (n={sex_test['n_reference']:,}): difference "
        f"{sex_test['difference']:+.4f}, two-proportion z = {sex_test['z']:.2f}, p = {sex_test['p_value']:.2g}, "
        f"95 % bootstrap CI [{sex_test['ci_low']:+.4f}, {sex_test['ci_high']:+.4f}]. Women's lower error rate is "
        "mostly their lower base rate (predicting ≤50K is right more often), not a better model for them: "
        f"{fnr_sentence} Each group is compared with its attribute's largest group; p-values are Holm-adjusted "
        f"across all {len(tests)} comparisons, of which {len(significant)} stay below 0.05.",
        "",
        markdown_table(tests, floatfmt=".4f"),
        "",
        "![error-rate gaps](figures/error_rate_gaps.png)",
        "",
        "## What drives the predictions",
        "",
        f"SHAP (TreeExplainer, exact; the values add up to the model's log-odds, checked) over "
        f"{len(explanations.shap.raw):,} test rows ranks {top} first. Sex ranks "
        f"{int(metrics['shap_rank_sex']) if not np.isnan(metrics['shap_rank_sex']) else '—'} and race "
        f"{int(metrics['shap_rank_race']) if not np.isnan(metrics['shap_rank_race']) else '—'} of "
        f"{len(importance)}; relationship ranks {int(metrics['shap_rank_relationship'])}. Relationship and marital "
        f"status are proxies for sex: the other inputs predict sex with ROC AUC "
        f"**{explanations.sex_proxy_auc:.3f}**, and 'Husband' is a man and 'Wife' a woman by definition.",
        "",
        markdown_table(explanations.proxies, floatfmt=".3f") if len(explanations.proxies) else "",
        "",
        "![SHAP importance](figures/shap_importance.png)",
        "",
        "![SHAP, a woman](figures/shap_waterfall_female.png)",
        "",
        "![SHAP, a man](figures/shap_waterfall_male.png)",
        "",
        "LIME's explanation of the same woman's prediction (a local linear fit to sampled perturbations, "
        "in probability units):",
        "",
        markdown_table(explanations.lime, floatfmt=".4f"),
        "",
        "![LIME, the same woman](figures/lime_female.png)",
        "",
        "## Mitigation",
        "",
        markdown_table(table, floatfmt=".4f"),
        "",
        f"The best mitigation within {GOAL_COST_POINTS:g} accuracy points is **{best}**: DP difference by sex "
        f"{metrics['mitigation_dp_difference_sex_baseline']:.4f} → {metrics['mitigation_dp_difference_sex']:.4f} "
        f"({metrics['mitigation_dp_reduction']:.0%} smaller) at {metrics['mitigation_accuracy_cost_points']:.2f} "
        f"accuracy points; the goal (≥ {GOAL_REDUCTION:.0%} at ≤ {GOAL_COST_POINTS:g} points) is "
        f"{'met' if metrics['mitigation_meets_goal'] else 'not met'}.",
        "",
        "![trade-off](figures/mitigation_tradeoff.png)",
        "",
        "![selection by method](figures/selection_by_method.png)",
        "",
        "## Sources of bias",
        "",
        "- **Data (historical and representation bias).** The labels record 1994 incomes, in which women earned "
        "less for the same work and hours; women are a third of the rows, and some race groups a few hundred "
        "test rows, so their metrics are noisy. `fnlwgt` weights were not used: the sample is not the population.",
        "- **Measurement.** 'relationship' encodes household roles relative to a 'head of household' (Husband/Wife), "
        "so it measures sex; income is top-coded and self-reported.",
        "- **Algorithmic.** Accuracy rewards the majority pattern; a model that learns the base-rate gap selects "
        "women less, and the shallower data for small groups gives them larger errors.",
        "- **Human.** Choosing the label (income > $50K as 'deserving'), the threshold (0.5), the groups to audit "
        "and the fairness definition are decisions people make; so is deploying the model at all.",
        "",
        "## Trade-offs of the chosen mitigation",
        "",
        "Demographic parity equalises selection rates, not error rates: with different base rates it selects "
        "some women who earn ≤50K and skips some men who earn more, so FPR for women and FNR for men rise. "
        "ThresholdOptimizer needs sex at prediction time (a different threshold per sex is disparate treatment, "
        "unlawful in many hiring and credit settings) and randomises some predictions; ExponentiatedGradient and "
        "re-weighing use sex only in training (the model may still take it as an input, set "
        "`sensitive_inputs=false` to avoid that), and ExponentiatedGradient's classifier is a randomised mix. "
        f"The registered model stays the unmitigated boosted model ({BOOSTED}) so that its accuracy is comparable "
        "across runs; the mitigations are measured and reported, to be chosen by the people who own the decision.",
    ]
    return "\n".join(lines) + "\n"


def tables(mitigation: Mitigation, explanations: Explanations) -> dict[str, pd.DataFrame]:
    return {"mitigation": mitigation.table, "selection rate by method": mitigation.selection,
            "shap importance": explanations.shap.importance(), "lime (female row)": explanations.lime,
            "shap local (female row)": explanations.shap.local(explanations.rows["Female"]),
            "shap local (male row)": explanations.shap.local(explanations.rows["Male"]),
            "relationship as a proxy for sex": explanations.proxies}

