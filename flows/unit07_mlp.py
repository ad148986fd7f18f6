"""Unit 7 — a neural network from scratch in NumPy on MNIST."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.twins import audit_mlp_gradients
from pipeline.features import image_split
from pipeline.lessons import mnist_mlp
from pipeline.lessons.classes import MNIST_DIGITS
from pipeline.report import UnitReport
from pipeline.units.unit07_mlp import SPEC as UNIT
from pipeline.units.unit07_mlp import Unit07Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit07-numpy-mlp", log_prints=True)
def unit07_mlp(params: Unit07Params = Unit07Params()) -> dict:
    mnist = ingest_validated("mnist", params)
    split = image_split(mnist, flatten=True)
    models = train_with("mnist-mlp", mnist_mlp.train_mlp,
                        mnist_mlp.mlp_classifier(params.profile, params.seed, params.epochs), split)
    table, results = evaluate("mnist-mlp", models, split, cv=params.cv_folds, seed=params.seed)
    model, main = models[mnist_mlp.OURS], results[mnist_mlp.OURS]
    checks = audit(audit_mlp_gradients, model.net_, *mnist_mlp.gradient_check_batch(split))

    report = UnitReport.for_unit(
        UNIT, params, main, {"mnist": checks}, class_names=MNIST_DIGITS, data_refs=[mnist.ref], model=model,
        model_example=split.X_test[:5], holdout=(split.X_test, split.y_test),
        figures=mnist_mlp.mlp_figures(model, split, main.y_pred),
        captions=mnist_mlp.CAPTIONS,
        tables={"models": table}, histories={"mlp": model.history_})
    return register(report)
