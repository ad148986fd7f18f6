"""The curriculum: every unit's id, title, flow and primary metric.

This module is read by ``mlpath --help`` and ``mlpath list``, so it imports nothing heavy:
a flow is named by its import path and only imported when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """One unit of the path.

    ``flow`` is ``"module:function"`` of its Prefect flow, or None while the unit is not built.
    ``primary_metric`` is the MLflow metric that decides champion/challenger.
    """

    id: str
    title: str
    flow: str | None = None
    primary_metric: str | None = None
    greater_is_better: bool = True

    @property
    def implemented(self) -> bool:
        return self.flow is not None

    @property
    def model_name(self) -> str:
        return f"mlpath-{self.id}"


UNITS: tuple[Unit, ...] = (
    Unit("unit01", "Linear algebra and PCA from scratch (Iris)",
         "flows.unit01_pca:unit01_pca", "test_accuracy"),
    Unit("unit02", "Statistics and probability"),
    Unit("unit03", "Calculus and gradient descent"),
    Unit("unit04", "Decision trees, linear and logistic regression from scratch (Iris, Titanic)",
         "flows.unit04_trees:unit04_trees", "test_accuracy"),
    Unit("unit05", "Clustering (Mall Customers)"),
    Unit("unit06", "The evaluation pipeline: cross-validation and metrics (Titanic)",
         "flows.unit06_evaluation:unit06_evaluation", "test_f1"),
    Unit("unit07", "A neural network from scratch in NumPy (MNIST)",
         "flows.unit07_mlp:unit07_mlp", "test_accuracy"),
    Unit("unit08", "Convolutional networks in PyTorch (CIFAR-10)",
         "flows.unit08_cnn:unit08_cnn", "test_accuracy"),
    Unit("unit09", "Recurrent networks and LSTMs (Tiny Shakespeare, MSFT prices)"),
    Unit("unit10", "Attention and transformers from scratch"),
    Unit("unit11", "Fine-tuning a pretrained transformer (SST-2)"),
    Unit("unit12", "Generative models: GANs and VAEs (MNIST)"),
    Unit("unit13", "Serving a model: API, batching, monitoring"),
    Unit("unit14", "Fairness and explainability (Adult)"),
    Unit("unit15", "Distributed training"),
    Unit("capstone", "Capstone: an end-to-end ML system"),
)

_BY_ID = {unit.id: unit for unit in UNITS}


class UnknownUnitError(LookupError):
    """A unit id that is not part of the path."""


def get_unit(unit_id: str) -> Unit:
    try:
        return _BY_ID[unit_id]
    except KeyError:
        valid = ", ".join(_BY_ID)
        raise UnknownUnitError(f"unknown unit {unit_id!r}; valid units: {valid}, or 'all'") from None


def implemented_units() -> list[Unit]:
    return [unit for unit in UNITS if unit.implemented]


def resolve_selection(names: list[str]) -> list[Unit]:
    """Turn CLI names (unit ids or ``all``) into units, in curriculum order, without duplicates.

    Raises UnknownUnitError for an unknown id and ValueError for a unit that is not built yet.
    """
    if "all" in names:
        return implemented_units()
    chosen = {get_unit(name).id for name in names}
    missing = [uid for uid in chosen if not _BY_ID[uid].implemented]
    if missing:
        built = ", ".join(unit.id for unit in implemented_units())
        raise ValueError(f"not implemented yet: {', '.join(sorted(missing))}; built units: {built}")
    return [unit for unit in UNITS if unit.id in chosen]
