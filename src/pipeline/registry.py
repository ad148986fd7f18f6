"""MLflow: one run per unit run, the model registered as ``mlpath-<unit>``, champion/challenger.

A new model version takes the ``champion`` alias only if it beats the current champion on the
unit's primary metric (strictly); otherwise it gets ``challenger`` and the champion stays.
Metrics are only comparable within a profile: a quick-profile run never takes the alias from a
full-profile champion, and a full-profile run always takes it from a quick-profile one.
Promotion reads and then sets the alias, so two runs of one unit finishing at the same moment can
race; run one retraining deployment per unit at a time (a Prefect concurrency limit does this).
The model version's description says why it got its alias (``promotion_reason``).

A run is named ``<unit>-<profile>-<Prefect flow run name>`` when the caller passes that context
(``tasks/register.py`` does, with the flow run's id and UI URL as tags; this module never imports
Prefect), else ``<unit>-<profile>-<UTC time>``. Its description (``mlflow.note.content``) is the
report's summary, its datasets are logged as MLflow dataset inputs (context ``training``), and
experiments are tagged as model-training experiments so MLflow's UI opens them on that view.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pipeline import settings
from pipeline.report import UnitReport

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# MLflow 3's UI shows an experiment as GenAI (traces) or model training by this tag.
EXPERIMENT_KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the run's description in MLflow's UI
_NOTE_LIMIT = 8000  # MLflow's longest tag value
# MLflow 3.17's UI shows GenAI or model training by a sidebar switch (kept per browser, GenAI by
# default); this query parameter on a UI link selects model training.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
MLFLOW_UI_ENV = "MLPATH_MLFLOW_UI_URL"
# Tags a caller running under Prefect adds, so the MLflow run leads back to the flow run.
PREFECT_FLOW_RUN_ID = "prefect.flow_run_id"
PREFECT_FLOW_RUN_NAME = "prefect.flow_run_name"
PREFECT_FLOW_RUN_URL = "prefect.flow_run_url"

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
    run_name: str | None = None
    reason: str | None = None  # why ``alias``: "tied champion v1 at 1.0000 (quick)"
    run_url: str | None = None  # the run in MLflow's UI, when its address is known (``run_ui_url``)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line for a person: ``mlpath-unit08 v2 @challenger: tied champion v1 at 0.3970 (quick)``."""
        if self.version is None:
            return "no model registered"
        return (f"{self.model_name} v{self.version} @{self.alias}"
                + (f": {self.reason}" if self.reason else ""))


class Promotion(NamedTuple):
    """What ``promote_if_better`` decided: the alias, the champion's metric before, and why."""

    alias: str
    champion_before: float | None
    reason: str


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
        if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before we tagged them
            mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return experiment.experiment_id
    tags = {EXPERIMENT_KIND_TAG: MODEL_TRAINING}
    if settings.tracking_uri().startswith(("http://", "https://")):
        # a tracking server keeps artifacts in its own store, where every client can read them
        return mlflow_client.create_experiment(name, tags=tags)
    location = (settings.artifact_root() / name).as_uri()
    return mlflow_client.create_experiment(name, artifact_location=location, tags=tags)


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


def _pair(new: float | None, old: float | None) -> tuple[str, str]:
    """The two values at 4 decimals, or as many more as it takes to tell them apart (up to 8)."""
    if new is None or old is None:
        return tuple("missing" if v is None else f"{v:.4f}" for v in (new, old))
    digits = next((d for d in range(4, 9) if f"{new:.{d}f}" != f"{old:.{d}f}"), 4)
    return f"{new:.{digits}f}", f"{old:.{digits}f}"


def promotion_reason(metric: str, new: float | None, new_profile: str, champion_version: str | None,
                     old: float | None, old_profile: str, greater_is_better: bool = True) -> str:
    """Why a new version becomes champion or challenger, in the words of ``beats``; no alias prefix.

    "test_accuracy 0.8905 beats v3's 0.8878 (full)", "tied champion v1 at 1.0000 (quick)".
    """
    wins = champion_version is None or beats(new, new_profile, old, old_profile, greater_is_better)
    new_text, old_text = _pair(new, old)
    direction = "" if greater_is_better else ", lower is better"
    if champion_version is None:
        return f"first version, {metric} {new_text} ({new_profile})"
    champion = f"v{champion_version}"
    new_rank, old_rank = _PROFILE_RANK.get(new_profile, 0), _PROFILE_RANK.get(old_profile, 0)
    if new is None:
        return f"logged no {metric}; champion {champion} stays"
    if new_rank != old_rank:
        if wins:
            return (f"a {new_profile} run replaces {champion}'s {old_profile} one "
                    f"({metric} {new_text} vs {old_text}; profiles are not compared)")
        return (f"a {new_profile} run never displaces {old_profile} champion {champion} "
                f"({metric} {new_text} vs {old_text})")
    if old is None:
        return f"{metric} {new_text} ({new_profile}); champion {champion} logged no {metric}"
    if wins:
        return f"{metric} {new_text} beats {champion}'s {old_text} ({new_profile}{direction})"
    if new == old:
        return f"tied champion {champion} at {new_text} ({new_profile})"
    return f"{metric} {new_text} does not beat champion {champion}'s {old_text} ({new_profile}{direction})"


def promote_if_better(model_name: str, version: str, metric: str, greater_is_better: bool = True
                      ) -> Promotion:
    """Give ``version`` the champion alias if it beats the champion (see ``beats``), else challenger.

    The version's description says why (``promotion_reason``). Returns (alias given, champion's
    metric before, reason).
    """
    mlflow_client = client()
    from mlflow.exceptions import MlflowException

    new_run = mlflow_client.get_run(mlflow_client.get_model_version(model_name, version).run_id)
    new_value = new_run.data.metrics.get(metric)
    new_profile = new_run.data.tags.get("mlpath.profile", "")
    try:
        champion = mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        champion = None
    before, old_profile = None, ""
    if champion is not None:
        old_run = mlflow_client.get_run(champion.run_id)
        before = old_run.data.metrics.get(metric)
        old_profile = old_run.data.tags.get("mlpath.profile", "")
    wins = champion is None or beats(new_value, new_profile, before, old_profile, greater_is_better)
    reason = promotion_reason(metric, new_value, new_profile, champion and str(champion.version),
                              before, old_profile, greater_is_better)
    alias = CHAMPION if wins else CHALLENGER
    mlflow_client.set_registered_model_alias(model_name, alias, version)
    mlflow_client.update_model_version(model_name, version, description=f"{alias}: {reason}")
    logger.info("%s v%s -> @%s: %s", model_name, version, alias, reason)
    return Promotion(alias, before, reason)


def _file_name(name: str) -> str:
    """A report's names are prose ("audit: conv/pool ..."); a slash would make a folder."""
    return name.replace("/", "-")


def _write_run_files(report: UnitReport, folder: Path) -> None:
    (folder / "figures").mkdir()
    for name, png in report.figures.items():
        (folder / "figures" / f"{_file_name(name)}.png").write_bytes(png)
    # What to look for in each figure, by file name (without .png), in the report's figure order.
    (folder / "figures" / "captions.json").write_text(json.dumps(
        {_file_name(name): report.captions.get(name, "") for name in report.figures},
        indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / "tables").mkdir()
    for name, table in report.tables.items():
        table.to_csv(folder / "tables" / f"{_file_name(name)}.csv")
    for name, text in report.texts.items():
        (folder / f"{_file_name(name)}.txt").write_text(text)
    (folder / "summary.md").write_text(report.summary_markdown())
    (folder / "data_refs.json").write_text(
        json.dumps([ref.as_dict() for ref in report.data_refs], indent=2))


def default_run_name(unit: str, profile: str) -> str:
    """``<unit>-<profile>-<UTC time>``: a run's name when no Prefect flow run names it."""
    return f"{unit}-{profile}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def _note(report: UnitReport, tags: Mapping[str, str]) -> str:
    """The run's description: the report's summary (cut at a line to fit MLflow's tag limit), and
    the Prefect flow run it came from."""
    link = ""
    if tags.get(PREFECT_FLOW_RUN_URL):
        name = tags.get(PREFECT_FLOW_RUN_NAME) or tags.get(PREFECT_FLOW_RUN_ID, "flow run")
        link = f"\nPrefect flow run: [{name}]({tags[PREFECT_FLOW_RUN_URL]})\n"
    summary = report.summary_markdown()
    room = _NOTE_LIMIT - len(link)
    if len(summary) > room:
        cut = "\n\n… (the whole summary is the run's summary.md artifact)\n"
        summary = summary[:room - len(cut)].rpartition("\n")[0] + cut
    return summary + link


def log_unit_run(report: UnitReport, run_name: str | None = None,
                 tags: Mapping[str, str] | None = None) -> Registration:
    """Log one unit run to MLflow and register its model with champion/challenger promotion.

    ``run_name`` defaults to ``default_run_name``; ``tags`` are added to the run's (a Prefect task
    passes ``<unit>-<profile>-<flow run name>`` and the ``PREFECT_*`` tags).
    """
    client()  # configures the environment and the tracking URI before mlflow is imported
    import mlflow

    experiment = f"mlpath-{report.unit}"
    experiment_id = ensure_experiment(experiment)
    _ = report.primary_value  # fail before logging anything if the primary metric is missing
    profile = str(report.params.get("profile", ""))
    extra = dict(tags or {})
    run_tags = {
        **extra,
        "mlpath.unit": report.unit,
        "mlpath.profile": profile,
        "mlpath.primary_metric": report.primary_metric,
        "mlflow.source.git.commit": git_commit(),
        NOTE_TAG: _note(report, extra),
    }
    run_name = run_name or default_run_name(report.unit, profile)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=run_tags) as run:
        mlflow.log_params({k: _param_value(v) for k, v in report.params.items()})
        for ref in report.data_refs:
            mlflow.log_params({f"data.{ref.name}.{k}": v for k, v in ref.as_dict().items()
                               if k != "name"})
        _log_datasets(report.data_refs)
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
    reason = None
    if version is not None:
        alias, before, reason = promote_if_better(model_name, version, report.primary_metric,
                                                  report.greater_is_better)
    return Registration(run.info.run_id, experiment, model_name, version, alias, before,
                        run.info.run_name, reason, run_ui_url(experiment_id, run.info.run_id))


def mlflow_ui_url() -> str | None:
    """Where MLflow's UI is: ``$MLPATH_MLFLOW_UI_URL`` (``mlpath ui`` sets it for its worker), else
    an HTTP tracking server (it serves the UI), else None (a SQLite store has no UI of its own)."""
    url = os.environ.get(MLFLOW_UI_ENV)
    if not url and settings.tracking_uri().startswith(("http://", "https://")):
        url = settings.tracking_uri()
    return url.rstrip("/") if url else None


def run_ui_url(experiment_id: str, run_id: str) -> str | None:
    """The run's page in MLflow's UI, on its model-training view; None when the UI is unknown."""
    base = mlflow_ui_url()
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING_VIEW}" if base else None


def _dataset_source(source: str):
    """An MLflow dataset source for a DataRef's ``kind:location`` source (the first, if several):
    a URL for a download, a file URI for the mirror, the cache or an override, else code."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    first = source.split(";", 1)[0]
    kind, _, location = first.partition(":")
    if location.startswith(("http://", "https://")):
        return HTTPDatasetSource(location)
    if location.startswith("/"):
        with warnings.catch_warnings():
            # MLflow registers its local source twice and warns that a file URI is ambiguous
            warnings.simplefilter("ignore", UserWarning)
            return resolve_dataset_source(Path(location).as_uri())
    return CodeDatasetSource({"mlflow.source.name": first or "unknown", "mlpath.origin": kind})


def _log_datasets(data_refs) -> None:
    """Each DataRef as an MLflow dataset input (context "training"): the run's Datasets panel.

    The digest is the DataRef version's first 10 hex digits (MLflow shows short digests); the
    dataset's profile holds the rows, the profile and the full version.
    """
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    class DataRefDataset(MetaDataset):
        """A MetaDataset with a profile (MetaDataset gives MLflow none)."""

        def __init__(self, ref):
            super().__init__(_dataset_source(ref.source), name=ref.name, digest=ref.version[:10])
            self._profile = {"rows": ref.rows, "profile": ref.profile, "version": ref.version}

        @property
        def profile(self) -> dict[str, Any]:
            return self._profile

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self._profile)}

    for ref in data_refs:
        mlflow.log_input(DataRefDataset(ref), context="training")


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
