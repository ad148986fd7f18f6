"""Unit 4 — decision trees, linear and logistic regression from scratch, beside scikit-learn.

Each model trains and is evaluated in tasks of its own, and the four audits run side by side:
submitted together, gathered in a fixed order (``tasks.fanout``), on the run's task runner."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.twins import audit_linear, audit_logistic, audit_tree
from pipeline.fanout import task_runner
from pipeline.features import IRIS_FEATURES, split_iris, split_titanic
from pipeline.lessons import trees
from pipeline.lessons.classes import IRIS_SPECIES, TITANIC_OUTCOMES
from pipeline.report import UnitReport
from pipeline.units.unit04_trees import SPEC as UNIT
from pipeline.units.unit04_trees import Unit04Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.fanout import comparison, evaluate_each, fitted_models
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit04-decision-trees", log_prints=True, task_runner=task_runner())
def unit04_trees(params: Unit04Params = Unit04Params()) -> dict:
    iris_data = ingest_validated("iris", params)
    iris = iris_data.splits["data"]
    titanic = ingest_validated("titanic", params)

    iris_split = split_iris(iris, params.test_size, params.seed)
    titanic_split = split_titanic(titanic.splits["train"], params.test_size, params.seed)
    iris_evaluations = evaluate_each("iris-trees", trees.tree_pair(
        params.max_depth, params.min_samples_split, params.seed), iris_split, cv=params.cv_folds, seed=params.seed)
    titanic_evaluations = evaluate_each("titanic-models", trees.titanic_models(
        params.max_depth, params.min_samples_split, params.seed), titanic_split, cv=params.cv_folds,
        seed=params.seed)
    linear = train_with("linear-regression", trees.fit_linear_regression, iris, params.test_size, params.seed)
    linear_evaluation = evaluate.submit("iris-linear-regression",
                                        {"ours: linear regression (GD)": linear.ours,
                                         "sklearn: linear regression": linear.theirs},
                                        linear.split, cv=params.cv_folds, seed=params.seed, task="regression")

    iris_table, iris_results = comparison(iris_evaluations)
    titanic_table, titanic_results = comparison(titanic_evaluations)
    linear_table, _ = linear_evaluation.result()
    iris_trees, titanic_models = fitted_models(iris_results), fitted_models(titanic_results)

    audits = {"iris": audit.submit(audit_tree, *trees.tree_audit_inputs(iris_trees, iris_split)),
              "titanic": audit.submit(audit_tree, *trees.tree_audit_inputs(titanic_models, titanic_split)),
              "titanic logistic": audit.submit(audit_logistic, *trees.logistic_audit_inputs(titanic_models,
                                                                                            titanic_split)),
              "iris linear": audit.submit(audit_linear, linear.ours, linear.closed_form, linear.theirs)}
    checks = {name: future.result() for name, future in audits.items()}

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
