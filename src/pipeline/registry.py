"""MLflow: one run per unit run, the model registered as ``mlpath-<unit>``, champion/challenger.

A new model version takes the ``champion`` alias only if it beats the current champion on the
unit's primary metric (strictly); otherwise it gets ``challenger`` and the champion stays.
Metrics are only comparable within a profile: a quick-profile run never takes the alias from a
full-profile champion, and a full-profile run always takes it from a quick-profile one.
Promotion reads and then sets the alias, so two runs of one unit finishing at the same moment can
race; run one retraining deployment per unit at a time (a Prefect concurrency limit does this).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import settings
from pipeline.report import UnitReport

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"

# Modules whose types we let skops load back: our own estimators and the scientific stack.
_TRUSTED_MODULE_PREFIXES = ("pipeline.", "sklearn.", "numpy.", "scipy.", "builtins.")
# Passed explicitly: inferring requirements imports the model's whole environment (~12 s).
_MODEL_REQUIREMENTS = ("scikit-learn", "numpy", "scipy", "pandas", "skops")
_PROFILE_RANK = {"quick": 0, "full": 1}


@dataclass(frozen=True)
class Registration:
    """Where a unit run landed in MLflow."""

    run_id: str
    experiment: str
    model_name: str | None
    version: str | None
    alias: str | None
    champion_before: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def client():
    settings.configure_environment()  # before mlflow's import: it reads telemetry settings then
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri())
    return mlflow.MlflowClient()


def ensure_experiment(name: str) -> str:
    """The experiment's id; created with its artifacts under MLPATH_HOME, not the cwd."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    if settings.tracking_uri().startswith(("http://", "https://")):
        # a tracking server keeps artifacts in its own store, where every client can read them
        return mlflow_client.create_experiment(name)
    location = (settings.artifact_root() / name).as_uri()
    return mlflow_client.create_experiment(name, artifact_location=location)


def git_commit() -> str:
    """The repository's HEAD commit, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load ``model``; refuses types from outside our stack."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in untrusted if not t.startswith(_TRUSTED_MODULE_PREFIXES)]
    if foreign:
        raise TypeError(f"model holds types outside pipeline/sklearn/numpy/scipy: {foreign}")
    return untrusted


def holds_torch(model: Any) -> bool:
    """Whether a model wraps a torch module (our TorchClassifier), which skops cannot store."""
    return "torch" in sys.modules and any(
        isinstance(value, sys.modules["torch"].nn.Module) for value in vars(model).values())


def beats(new: float | None, new_profile: str, old: float | None, old_profile: str,
          greater_is_better: bool = True) -> bool:
    """The champion rule: a fuller profile wins, then a strictly better metric; a missing metric loses."""
    new_rank, old_rank = _PROFILE_RANK.get(new_profile, 0), _PROFILE_RANK.get(old_profile, 0)
    if new is None or new_rank != old_rank:
        return new is not None and new_rank > old_rank
    if old is None:
        return True
    return new > old if greater_is_better else new < old


def promote_if_better(model_name: str, version: str, metric: str, greater_is_better: bool = True
                      ) -> tuple[str, float | None]:
    """Give ``version`` the champion alias if it beats the champion (see ``beats``).

    Returns (alias given, champion's metric before).
    """
    mlflow_client = client()
    from mlflow.exceptions import MlflowException

    new_run = mlflow_client.get_run(mlflow_client.get_model_version(model_name, version).run_id)
    try:
        champion = mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        champion = None
    before = None
    if champion is None:
        wins = True
    else:
        old_run = mlflow_client.get_run(champion.run_id)
        before = old_run.data.metrics.get(metric)
        wins = beats(new_run.data.metrics.get(metric), new_run.data.tags.get("mlpath.profile", ""),
                     before, old_run.data.tags.get("mlpath.profile", ""), greater_is_better)
    new_value = new_run.data.metrics.get(metric)
    alias = CHAMPION if wins else CHALLENGER
    mlflow_client.set_registered_model_alias(model_name, alias, version)
    logger.info("%s v%s -> @%s (%s: new %s, champion %s)", model_name, version, alias, metric,
                new_value, before)
    return alias, before


def _file_name(name: str) -> str:
    """A report's names are prose ("audit: conv/pool ..."); a slash would make a folder."""
    return name.replace("/", "-")


def _write_run_files(report: UnitReport, folder: Path) -> None:
    (folder / "figures").mkdir()
    for name, png in report.figures.items():
        (folder / "figures" / f"{_file_name(name)}.png").write_bytes(png)
    (folder / "tables").mkdir()
    for name, table in report.tables.items():
        table.to_csv(folder / "tables" / f"{_file_name(name)}.csv")
    for name, text in report.texts.items():
        (folder / f"{_file_name(name)}.txt").write_text(text)
    (folder / "summary.md").write_text(report.summary_markdown())
    (folder / "data_refs.json").write_text(
        json.dumps([ref.as_dict() for ref in report.data_refs], indent=2))


def log_unit_run(report: UnitReport) -> Registration:
    """Log one unit run to MLflow and register its model with champion/challenger promotion."""
    client()  # configures the environment and the tracking URI before mlflow is imported
    import mlflow

    experiment = f"mlpath-{report.unit}"
    experiment_id = ensure_experiment(experiment)
    _ = report.primary_value  # fail before logging anything if the primary metric is missing
    tags = {
        "mlpath.unit": report.unit,
        "mlpath.profile": str(report.params.get("profile", "")),
        "mlpath.primary_metric": report.primary_metric,
        "mlflow.source.git.commit": git_commit(),
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
        mlflow.log_params({k: _param_value(v) for k, v in report.params.items()})
        for ref in report.data_refs:
            mlflow.log_params({f"data.{ref.name}.{k}": v for k, v in ref.as_dict().items()
                               if k != "name"})
        mlflow.log_metrics(report.metrics)
        for name, history in report.histories.items():
            _log_history(name, history)
        with tempfile.TemporaryDirectory() as tmp:
            _write_run_files(report, Path(tmp))
            mlflow.log_artifacts(tmp)
        version = alias = before = None
        model_name = None
        if report.model is not None:
            model_name = f"mlpath-{report.unit}"
            info = _log_model(report, model_name)
            version = str(info.registered_model_version)
    if version is not None:
        alias, before = promote_if_better(model_name, version, report.primary_metric,
                                          report.greater_is_better)
    return Registration(run.info.run_id, experiment, model_name, version, alias, before)


def _log_history(name: str, history) -> None:
    """Per-epoch metrics as MLflow metric histories (``<name>.<metric>``, step = epoch)."""
    import mlflow
    import pandas as pd

    frame = pd.DataFrame(history)
    for step, row in enumerate(frame.to_dict("records"), start=1):
        step = int(row.pop("epoch", step))
        mlflow.log_metrics({f"{name}.{k}": float(v) for k, v in row.items() if pd.notna(v)}, step=step)


def _model_requirements(with_torch: bool) -> list[str]:
    from importlib.metadata import version

    names = _MODEL_REQUIREMENTS + (("torch",) if with_torch else ())
    return [f"{name}=={version(name)}" for name in names]


def _log_model(report: UnitReport, model_name: str):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    import pipeline

    signature = None
    if report.model_example is not None:
        with warnings.catch_warnings():
            # "integer columns cannot hold missing values": true, and the feature pipeline imputes.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(report.model_example,
                                        report.model.predict(report.model_example))
    with_torch = holds_torch(report.model)
    # skops loads only the types it is told to trust; torch modules it cannot store at all, so a
    # torch-backed model is pickled (load those only from a registry you trust).
    serialization = ({"serialization_format": "cloudpickle"} if with_torch else
                     {"serialization_format": "skops", "skops_trusted_types": trusted_types(report.model)})
    return mlflow.sklearn.log_model(
        report.model,
        name="model",
        **serialization,
        pip_requirements=_model_requirements(with_torch),
        # Our estimators' classes travel with the model, so it loads where mlpath is not installed.
        code_paths=[str(Path(pipeline.__file__).parent)],
        signature=signature,
        registered_model_name=model_name,
        await_registration_for=0,
    )


def _param_value(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else value


def latest_results(unit_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per unit: its newest registered model version, that run's metrics, and the champion."""
    mlflow_client = client()
    from mlflow.exceptions import MlflowException

    results: dict[str, dict[str, Any]] = {}
    for unit_id in unit_ids:
        name = f"mlpath-{unit_id}"
        versions = mlflow_client.search_model_versions(f"name = '{name}'")
        if not versions:
            continue
        newest = max(versions, key=lambda v: int(v.version))
        run = mlflow_client.get_run(newest.run_id)
        try:
            champion = str(mlflow_client.get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException:
            champion = None
        results[unit_id] = {
            "model": name,
            "version": str(newest.version),
            # search results carry no aliases; the version itself does
            "aliases": sorted(mlflow_client.get_model_version(name, newest.version).aliases),
            "champion_version": champion,
            "run_id": newest.run_id,
            "profile": run.data.tags.get("mlpath.profile"),
            "primary_metric": run.data.tags.get("mlpath.primary_metric"),
            "metrics": dict(sorted(run.data.metrics.items())),
        }
    return results
