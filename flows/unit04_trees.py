"""Unit 4 — decision trees, linear and logistic regression from scratch, beside scikit-learn."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.twins import audit_linear, audit_logistic, audit_tree
from pipeline.features import IRIS_FEATURES, split_iris, split_titanic
from pipeline.lessons import trees
from pipeline.lessons.classes import IRIS_SPECIES, TITANIC_OUTCOMES
from pipeline.report import UnitReport
from pipeline.units.unit04_trees import SPEC as UNIT
from pipeline.units.unit04_trees import Unit04Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_models, train_with
from tasks.validate import ingest_validated


@flow(name="unit04-decision-trees", log_prints=True)
def unit04_trees(params: Unit04Params = Unit04Params()) -> dict:
    iris_data = ingest_validated("iris", params)
    iris = iris_data.splits["data"]
    titanic = ingest_validated("titanic", params)

    iris_split = split_iris(iris, params.test_size, params.seed)
    iris_trees = train_models("iris-trees", trees.tree_pair(
        params.max_depth, params.min_samples_split, params.seed), iris_split)
    titanic_split = split_titanic(titanic.splits["train"], params.test_size, params.seed)
    titanic_models = train_models("titanic-models", trees.titanic_models(
        params.max_depth, params.min_samples_split, params.seed), titanic_split)
    linear = train_with("linear-regression", trees.fit_linear_regression, iris, params.test_size, params.seed)

    iris_table, _ = evaluate("iris-trees", iris_trees, iris_split, cv=params.cv_folds, seed=params.seed)
    titanic_table, titanic_results = evaluate("titanic-models", titanic_models, titanic_split,
                                              cv=params.cv_folds, seed=params.seed)
    linear_table, _ = evaluate("iris-linear-regression",
                               {"ours: linear regression (GD)": linear.ours,
                                "sklearn: linear regression": linear.theirs},
                               linear.split, cv=params.cv_folds, seed=params.seed, task="regression")

    checks = {"iris": audit(audit_tree, *trees.tree_audit_inputs(iris_trees, iris_split)),
              "titanic": audit(audit_tree, *trees.tree_audit_inputs(titanic_models, titanic_split)),
              "titanic logistic": audit(audit_logistic, *trees.logistic_audit_inputs(titanic_models,
                                                                                      titanic_split)),
              "iris linear": audit(audit_linear, linear.ours, linear.closed_form, linear.theirs)}

    main = titanic_results[trees.OURS_TREE]
    report = UnitReport.for_unit(
        UNIT, params, main, checks, class_names=TITANIC_OUTCOMES, data_refs=[iris_data.ref, titanic.ref],
        model=main.model, model_example=titanic_split.X_test.head(5),
        holdout=(titanic_split.X_test, titanic_split.y_test),
        figures=trees.unit04_figures(iris_trees, titanic_models, iris_split, linear, params.max_depth,
                                     params.min_samples_split),
        captions=trees.CAPTIONS,
        tables={"titanic comparison": titanic_table, "iris trees": iris_table,
                "iris linear regression": linear_table},
        texts={"trees_iris": trees.trees_side_by_side(*iris_trees.values(), IRIS_FEATURES, list(IRIS_SPECIES)),
               "trees_titanic": trees.trees_side_by_side(
                   titanic_models[trees.OURS_TREE], titanic_models[trees.SKLEARN_TREE],
                   trees.feature_names(titanic_models[trees.OURS_TREE], []), list(TITANIC_OUTCOMES))})
    return register(report)
