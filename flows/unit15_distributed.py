"""Unit 15 — optimizers from scratch, then Unit 7's network trained data-parallel (Horovod or DDP)."""

from __future__ import annotations

from prefect import flow

from pipeline.audit.distributed import audit_distributed
from pipeline.audit.optimizers import audit_optimizers
from pipeline.features import image_split
from pipeline.lessons import distributed
from pipeline.lessons import optimizers as optimizer_lesson
from pipeline.lessons.classes import MNIST_DIGITS
from pipeline.plots import figure_to_png
from pipeline.report import UnitReport
from pipeline.settings import mlpath_home
from pipeline.units.unit15_distributed import SPEC as UNIT
from pipeline.units.unit15_distributed import Unit15Params
from tasks.audit import audit
from tasks.evaluate import evaluate
from tasks.register import register
from tasks.train import train_with
from tasks.validate import ingest_validated


@flow(name="unit15-distributed", log_prints=True)
def unit15_distributed(params: Unit15Params = Unit15Params()) -> dict:
    mnist = ingest_validated("mnist", params)
    split = image_split(mnist, flatten=True)
    comparison = train_with("optimizers", optimizer_lesson.compare_optimizers, split, params.profile, params.seed)
    optimizer_checks = audit(audit_optimizers, seed=params.seed)

    run = train_with(f"{params.engine}-x{params.processes}", distributed.train, split, params,
                     distributed.run_folder(mlpath_home()))
    name = f"{params.engine} x {run.world_size}"
    table, results = evaluate("mnist-distributed", {name: run.model}, split, cv=params.cv_folds, seed=params.seed)
    run_checks = audit(audit_distributed, run, params.processes)

    figures = {k: figure_to_png(fig) for k, fig in {**comparison.figures(),
                                                    "distributed_loss": distributed.loss_figure(run)}.items()}
    report = UnitReport.for_unit(
        UNIT, params, results[name], {"optimizers": optimizer_checks, "distributed": run_checks},
        class_names=MNIST_DIGITS, data_refs=[mnist.ref], model=run.model, model_example=split.X_test[:5],
        holdout=(split.X_test, split.y_test), metrics={**comparison.metrics(), **distributed.run_metrics(run)},
        figures=figures, captions={**optimizer_lesson.CAPTIONS, **distributed.CAPTIONS},
        tables={**comparison.tables(), "distributed run": distributed.run_table(run), "models": table},
        histories={"distributed": run.history})
    return register(report)
