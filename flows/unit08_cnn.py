"""Unit 8 — convolutional networks on CIFAR-10 in PyTorch."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.reload import audit_torch_reload
from pipeline.audit.shapes import audit_simple_cnn_shapes
from pipeline.data import CIFAR10_CLASSES
from pipeline.features import image_split
from pipeline.lessons import cifar_cnn
from pipeline.plots import figure_to_png
from pipeline.report import UnitReport
from pipeline.units.unit08_cnn import SPEC as UNIT
from pipeline.units.unit08_cnn import Unit08Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_models
from tasks.validate import ingest_validated

AUDIT_ROWS = 32  # test images for the trained-model audit: about 1.5 s on 2 CPU cores (quick profile)


@flow(name="unit08-cnn", log_prints=True)
def unit08_cnn(params: Unit08Params = Unit08Params()) -> dict:
    cifar = ingest_validated("cifar10", params)
    split = image_split(cifar, flatten=False)
    models = train_models("cifar-cnns", cifar_cnn.cnn_classifiers(
        params.profile, params.seed,
        {cifar_cnn.SIMPLE: params.epochs_simple, cifar_cnn.RESNET: params.epochs_resnet}), split)
    table, results = evaluate("cifar-cnns", models, split, cv=params.cv_folds, seed=params.seed)
    checks = audit(audit_simple_cnn_shapes)
    # The trained Model B on a few test images: a save/reload round trip and both memory layouts.
    reloaded = audit(audit_torch_reload, models[cifar_cnn.RESNET], split.X_test[:AUDIT_ROWS])

    main = results[cifar_cnn.RESNET]
    per_class = cifar_cnn.per_class_accuracy(main.confusion_matrix)
    report = UnitReport.for_unit(
        UNIT, params, main, {"model A": checks, "model B": reloaded}, class_names=CIFAR10_CLASSES,
        metrics={f"test_accuracy_{name}": float(v) for name, v in per_class.items()}
        | {"model_a_test_accuracy": results[cifar_cnn.SIMPLE].metrics["test_accuracy"]},
        data_refs=[cifar.ref], model=models[cifar_cnn.RESNET], model_example=split.X_test[:2],
        holdout=(split.X_test, split.y_test),
        figures={"misclassified": figure_to_png(cifar_cnn.misclassified_figure(split, main.y_pred))},
        captions=cifar_cnn.CAPTIONS,
        tables={"models": table, "per-class accuracy": per_class.to_frame()},
        histories={cifar_cnn.short_name(name): model.history_ for name, model in models.items()},
        notes=cifar_cnn.data_note(cifar.ref))
    return register(report)
