"""MLflow: one run per unit run, the model registered as ``mlpath-<unit>``, champion/challenger.

Promotion (``promote_if_better``) compares on the same evidence: the current champion is loaded
from the registry and scored on the new run's holdout (``UnitReport.holdout``) by the shared
evaluation (``pipeline.evaluation.evaluate``, fitted model, no CV), and so is the new model; the
new version takes ``champion`` only if it is strictly better there on the unit's primary metric
(direction-aware; a tie keeps the champion), else ``challenger``. A missing or NaN score never
wins and never blocks: a NaN or unscorable champion is replaced by a valid new model, a NaN new
model never takes the alias. Profiles come next: a full run always outranks a quick champion, a
quick run never displaces a full one. Without a holdout the runs' logged metrics are compared.
Both scores and the reason are tagged on the version and make its description.

Only "registered model does not exist" or "no champion alias" means no champion; any other
registry error fails the registration and moves no alias. Reading the champion, scoring it and
setting the alias happen under one lock per registered model (``registry_lock``, a file lock
under MLPATH_HOME), so two runs finishing together cannot both win; processes that do not share
MLPATH_HOME (a shared tracking server) need a Prefect global concurrency limit as well
(``tasks/register.py`` takes ``mlpath-register-<unit>`` when the tracking store is a server).

Registration is atomic from a reader's side: the model version is created only after the MLflow
run has finished, tagged ``mlpath.incomplete=true``; the alias is set last and the tag removed
after it. A run that fails or is killed leaves no alias change, and its version (if any) stays
marked; versions whose run is not FINISHED (RUNNING for a dead process, FAILED, KILLED) are
marked when the next run of the unit starts (``mark_incomplete_versions``). ``latest_results``
skips them all.

A run is named ``<unit>-<profile>-<Prefect flow run name>`` when the caller passes that context
(``tasks/register.py`` does, with the flow run's id and UI URL as tags; this module never imports
Prefect), else ``<unit>-<profile>-<UTC time>``. Its description (``mlflow.note.content``) is the
report's summary, its datasets are logged as MLflow dataset inputs (context ``training``), and
experiments are tagged as model-training experiments so MLflow's UI opens them on that view.

Nothing that could run code is stored or loaded. A scikit-learn-style model is a skops file that
trusts exactly the model's own types (``trusted_types``), each under ``TRUSTED_TYPE_PREFIXES``,
else saving fails; ``load_version`` checks the MLmodel's trusted list against the same allowlist
and refuses pickled models. A table model is registered as a ``pipeline.guard.GuardedModel``
(``guard_inputs``): it checks each input against its dataset's expectation suite. A torch-backed
model is safetensors weights plus a JSON reference to the code that builds its module
(``pipeline.training.export``), a ``python_function`` model with no pickle in it. A model that saves
itself (Unit 11's ``SentimentModel``: safetensors, tokenizer files, JSON) is a ``python_function``
model whose loader module must be on ``SAVED_MODEL_LOADERS``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
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
# Model version tags: a version is incomplete until its promotion is done (see the module's doc).
INCOMPLETE_TAG = "mlpath.incomplete"
INCOMPLETE_WHY_TAG = "mlpath.incomplete_reason"
CHALLENGER_SCORE_TAG = "mlpath.challenger_score"
CHAMPION_SCORE_TAG = "mlpath.champion_score_on_same_holdout"
COMPARED_WITH_TAG = "mlpath.compared_with_version"
REASON_TAG = "mlpath.promotion_reason"
BASIS_TAG = "mlpath.promotion_basis"  # "same holdout" or "logged metrics"
HOLDOUT_ROWS_TAG, HOLDOUT_DIGEST_TAG = "mlpath.holdout_rows", "mlpath.holdout_digest"
# On a run that registers a model: the results site shows such a run only through its version.
RUN_MODEL_TAG = "mlpath.registered_model"
SAME_HOLDOUT, LOGGED_METRICS = "same holdout", "logged metrics"

# Modules whose types skops may load back: our own estimators and feature code, and the
# scientific stack. No blanket ``builtins.`` (``builtins.eval`` is a builtin too) and no other
# ``pipeline.`` module: a model needing anything else fails loudly when it is saved, and a model
# whose file or MLmodel names anything else is refused when it is loaded.
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "pipeline.scratch.", "pipeline.features.",
                         "pipeline.estimators.", "pipeline.guard.")
# A torch model is a python_function model whose loader rebuilds it from safetensors and JSON.
TORCH_LOADER = "pipeline.training.export"
# Models that save themselves to a folder with no pickle (``save(folder)``: safetensors, JSON, text)
# and name the module that loads such a folder back (``mlflow_loader_module``, with ``_load_pyfunc``
# and ``load_model_folder``): only these modules are trusted to.
SAVED_MODEL_LOADERS = ("pipeline.models.sentiment",)
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
    reason: str | None = None  # why ``alias``: "tied champion v1 at 1.0000 on the same holdout (quick)"
    run_url: str | None = None  # the run in MLflow's UI, when its address is known (``run_ui_url``)
    challenger_score: float | None = None  # the new model's primary metric on the holdout
    champion_score: float | None = None  # the champion's on the same holdout (= champion_before)
    basis: str | None = None  # SAME_HOLDOUT, or LOGGED_METRICS when the report had no holdout
    extras: tuple[Registration, ...] = ()  # the report's extra models, each promoted on its own metric

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "extras": [extra.as_dict() for extra in self.extras]}

    def describe(self) -> str:
        """One line for a person: ``mlpath-unit08 v2 @challenger: tied champion v1 at 0.3970 (quick)``."""
        if self.version is None:
            return "no model registered"
        return "; ".join(f"{r.model_name} v{r.version} @{r.alias}" + (f": {r.reason}" if r.reason else "")
                         for r in (self, *self.extras))


class Promotion(NamedTuple):
    """What ``promote_if_better`` decided: the alias, the champion's score (on the same holdout)
    before, why, the new model's score, what was compared (SAME_HOLDOUT or LOGGED_METRICS), and
    the champion version it was compared with."""

    alias: str
    champion_before: float | None
    reason: str
    challenger_score: float | None = None
    basis: str = SAME_HOLDOUT
    compared_with: str | None = None


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


class UntrustedModelError(TypeError):
    """A model that holds, or a stored model that names, types outside ``TRUSTED_TYPE_PREFIXES``."""


def check_trusted(types: list[str], what: str = "model") -> list[str]:
    """``types`` when every one is under ``TRUSTED_TYPE_PREFIXES``, else UntrustedModelError."""
    foreign = sorted(t for t in types if not str(t).startswith(TRUSTED_TYPE_PREFIXES))
    if foreign:
        raise UntrustedModelError(
            f"{what} holds types outside the allowlist ({', '.join(TRUSTED_TYPE_PREFIXES)}): "
            f"{', '.join(foreign)}")
    return list(types)


def trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load ``model`` (``skops.io.get_untrusted_types`` of this very
    model, at save time), each checked against ``TRUSTED_TYPE_PREFIXES``: nothing else is trusted."""
    import skops.io

    return check_trusted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def holds_torch(model: Any) -> bool:
    """Whether a model wraps a torch module (a TorchClassifier, a TorchModel), which skops cannot store."""
    return "torch" in sys.modules and any(
        isinstance(value, sys.modules["torch"].nn.Module) for value in vars(model).values())


def _number(value: float | None) -> float | None:
    """A score, or None when it is missing or NaN (a NaN never wins and never blocks)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def beats(new: float | None, new_profile: str, old: float | None, old_profile: str,
          greater_is_better: bool = True) -> bool:
    """The champion rule on two scores of one holdout: a missing or NaN new score never wins, a
    missing or NaN champion score is always replaced, then a fuller profile wins, then a strictly
    better score (direction-aware; a tie keeps the champion)."""
    new, old = _number(new), _number(old)
    if new is None:
        return False
    if old is None:
        return True
    new_rank, old_rank = _PROFILE_RANK.get(new_profile, 0), _PROFILE_RANK.get(old_profile, 0)
    if new_rank != old_rank:
        return new_rank > old_rank
    return new > old if greater_is_better else new < old


def _pair(new: float | None, old: float | None) -> tuple[str, str]:
    """The two values at 4 decimals, or as many more as it takes to tell them apart (up to 8)."""
    if new is None or old is None:
        return tuple("missing" if v is None else f"{v:.4f}" for v in (new, old))
    digits = next((d for d in range(4, 9) if f"{new:.{d}f}" != f"{old:.{d}f}"), 4)
    return f"{new:.{digits}f}", f"{old:.{digits}f}"


def promotion_reason(metric: str, new: float | None, new_profile: str, champion_version: str | None,
                     old: float | None, old_profile: str, greater_is_better: bool = True, *,
                     same_holdout: bool = False, champion_problem: str | None = None) -> str:
    """Why a new version becomes champion or challenger, in the words of ``beats``; no alias prefix.

    "test_accuracy 0.8905 beats v3's 0.8878 (full)", "tied champion v1 at 1.0000 (quick)"; with
    ``same_holdout`` the scores are both on the new run's holdout and the reason says so
    ("... beats v3's 0.8878 on the same holdout (full)"). ``champion_problem`` says why the
    champion has no score ("could not be scored on this holdout (ValueError: ...)").
    """
    new, old = _number(new), _number(old)
    wins = beats(new, new_profile, old, old_profile, greater_is_better)
    new_text, old_text = _pair(new, old)
    direction = "" if greater_is_better else ", lower is better"
    on = " on the same holdout" if same_holdout else ""
    missing = f"scored no {metric} on its holdout (missing or NaN)" if same_holdout else f"logged no {metric}"
    if champion_version is None:
        if new is None:
            return f"{missing}; no champion until a version has one ({new_profile})"
        return f"first version, {metric} {new_text} ({new_profile})"
    champion = f"v{champion_version}"
    if new is None:
        return f"{missing}; champion {champion} stays"
    if old is None:
        problem = champion_problem or (f"scored no {metric} on the same holdout (missing or NaN)"
                                       if same_holdout else f"logged no {metric}")
        return f"{metric} {new_text} ({new_profile}); champion {champion} {problem}"
    new_rank, old_rank = _PROFILE_RANK.get(new_profile, 0), _PROFILE_RANK.get(old_profile, 0)
    if new_rank != old_rank:
        if wins:
            return (f"a {new_profile} run replaces {champion}'s {old_profile} one "
                    f"({metric} {new_text} vs {old_text}{on}; profiles are not compared)")
        return (f"a {new_profile} run never displaces {old_profile} champion {champion} "
                f"({metric} {new_text} vs {old_text}{on})")
    if wins:
        return f"{metric} {new_text} beats {champion}'s {old_text}{on} ({new_profile}{direction})"
    if new == old:
        return f"tied champion {champion} at {new_text}{on} ({new_profile})"
    return (f"{metric} {new_text} does not beat champion {champion}'s {old_text}{on} "
            f"({new_profile}{direction})")


def holdout_score(model: Any, holdout: tuple[Any, Any], metric: str) -> float | None:
    """``metric`` of a fitted ``model`` on ``holdout`` = (X, y), computed by the shared evaluation
    exactly as the unit computed its test metrics (``evaluate(..., fit=False, cv=0)``); a metric
    named for another holdout (``dev_accuracy``) is the evaluation's ``test_accuracy`` on these rows.
    None when the evaluation gives no such metric or NaN."""
    from pipeline.evaluation import evaluate

    X, y = holdout
    metrics = evaluate(model, None, None, X, y, cv=0, fit=False).metrics
    if metric not in metrics and "_" in metric:  # a metric named for its holdout ("dev_accuracy")
        metric = "test_" + metric.split("_", 1)[1]
    return _number(metrics.get(metric))


def holdout_tags(holdout: tuple[Any, Any] | None) -> dict[str, str]:
    """What identifies a holdout without storing it: its row count and a content digest."""
    if holdout is None:
        return {}
    import joblib

    X, y = holdout
    return {HOLDOUT_ROWS_TAG: str(len(y)), HOLDOUT_DIGEST_TAG: joblib.hash((X, y))[:16]}


def _does_not_exist(error: Exception) -> bool:
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def current_champion(mlflow_client, model_name: str) -> str | None:
    """The champion's version; None only when the registered model or its champion alias does not
    exist. Any other registry error propagates: a transient failure must never read as "no
    champion" (it would crown whatever comes next)."""
    from mlflow.exceptions import MlflowException

    try:
        registered = mlflow_client.get_registered_model(model_name)
    except MlflowException as error:
        if _does_not_exist(error):
            return None
        raise
    version = (registered.aliases or {}).get(CHAMPION)
    return None if version is None else str(version)


@contextmanager
def registry_lock(model_name: str) -> Iterator[None]:
    """One holder at a time per registered model, across the processes sharing MLPATH_HOME: a file
    lock (``MLPATH_HOME/locks/<model>.lock``, ``flock``), released when its holder exits, even by
    ``kill -9``. It does not reach processes on other machines: with a shared tracking server
    also hold a Prefect global concurrency limit (``tasks/register.py``)."""
    path = settings.mlpath_home() / "locks" / f"{model_name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: filelock does the same (it comes with torch)
        from filelock import FileLock

        with FileLock(str(path)):
            yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_version(model_name: str, version: str) -> Any:
    """A registered version's model, checked before anything is deserialized (``load_model_dir``)."""
    import mlflow.artifacts

    client()
    return load_model_dir(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}"))


def load_model_dir(path: str | os.PathLike) -> Any:
    """A logged model's folder, loaded only in a form that cannot run code from the file: skops
    with the trusted types its MLmodel names, each on ``TRUSTED_TYPE_PREFIXES`` (skops refuses any
    other type in the file), or our torch pyfunc (safetensors weights, a JSON config naming an
    allowlisted module class). A pickled model (an older version) is refused with
    UntrustedModelError. sys.path is left as it was."""
    import mlflow.sklearn
    from mlflow.models import Model

    flavors = Model.load(Path(path) / "MLmodel").flavors
    saved = list(sys.path)
    try:
        if "sklearn" in flavors:
            conf = flavors["sklearn"]
            if conf.get("serialization_format") != "skops":
                raise UntrustedModelError(f"{path}: a {conf.get('serialization_format')} model is not "
                                          "loaded (pickles run code); register it again")
            check_trusted(conf.get("skops_trusted_types") or [], f"{path}: MLmodel")
            return mlflow.sklearn.load_model(str(path))
        pyfunc = flavors.get("python_function", {})
        if pyfunc.get("loader_module") == TORCH_LOADER:
            from pipeline.training.export import load_torch_model

            return load_torch_model(Path(path) / pyfunc["data"])
        if pyfunc.get("loader_module") in SAVED_MODEL_LOADERS:
            return importlib.import_module(pyfunc["loader_module"]).load_model_folder(path)
        raise UntrustedModelError(f"{path}: neither a skops sklearn model nor an mlpath torch model")
    finally:
        sys.path[:] = saved  # loading prepends the model's code folder; ours is already imported


def _champion_score(model_name: str, version: str, holdout: tuple[Any, Any], metric: str
                    ) -> tuple[float | None, str | None]:
    """The champion's score on ``holdout`` and, when it has none, why ("could not be loaded ...").

    A model that is gone, cannot be read back or cannot predict these rows is unscorable (and is
    replaced by a valid new model); a registry or I/O error that may pass propagates instead.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = load_version(model_name, version)
    except MlflowException as error:
        if not _does_not_exist(error):
            raise
        return None, f"could not be loaded ({error.message})"
    except OSError as error:
        if not isinstance(error, FileNotFoundError):
            raise
        return None, f"could not be loaded ({type(error).__name__}: {error})"
    except Exception as error:  # noqa: BLE001 - unreadable (unpickling, untrusted types): unscorable
        return None, f"could not be loaded ({type(error).__name__}: {error})"
    try:
        score = holdout_score(model, holdout, metric)
    except Exception as error:  # noqa: BLE001 - it cannot predict these rows: unscorable
        return None, f"could not be scored on the same holdout ({type(error).__name__}: {error})"
    return score, None


def _score_text(value: float | None) -> str:
    return "nan" if value is None else repr(float(value))


def promote_if_better(model_name: str, version: str, metric: str, greater_is_better: bool = True, *,
                      holdout: tuple[Any, Any] | None = None, model: Any | None = None) -> Promotion:
    """Give ``version`` the champion alias if it beats the champion (see ``beats``), else challenger.

    With ``holdout`` = (X, y) both are scored there by ``holdout_score``: the new version's
    ``model`` (loaded from the registry when not given) and the champion, loaded from the registry;
    without one, the runs' logged ``metric`` values are compared. Reading the champion, scoring it
    and setting the alias hold ``registry_lock``. The version gets the scores, the reason and the
    basis as tags and "<alias>: <reason>" as description, then the alias, and last loses its
    ``mlpath.incomplete`` tag. Returns (alias given, champion's score before, reason, new score,
    basis, champion version compared with).
    """
    mlflow_client = client()
    new_run = mlflow_client.get_run(mlflow_client.get_model_version(model_name, version).run_id)
    new_profile = new_run.data.tags.get("mlpath.profile", "")
    basis = LOGGED_METRICS if holdout is None else SAME_HOLDOUT
    if holdout is None:
        new_value = _number(new_run.data.metrics.get(metric))
    else:  # the new model does not change under the lock: score it before taking it
        new_value = holdout_score(model if model is not None else load_version(model_name, version),
                                  holdout, metric)
    with registry_lock(model_name):
        champion_version = current_champion(mlflow_client, model_name)
        before, old_profile, problem = None, "", None
        if champion_version is not None:
            old_run = mlflow_client.get_run(mlflow_client.get_model_version(model_name, champion_version).run_id)
            old_profile = old_run.data.tags.get("mlpath.profile", "")
            if holdout is None:
                before = _number(old_run.data.metrics.get(metric))
            else:
                before, problem = _champion_score(model_name, champion_version, holdout, metric)
        wins = beats(new_value, new_profile, before, old_profile, greater_is_better)
        reason = promotion_reason(metric, new_value, new_profile, champion_version, before, old_profile,
                                  greater_is_better, same_holdout=holdout is not None, champion_problem=problem)
        alias = CHAMPION if wins else CHALLENGER
        tags = {CHALLENGER_SCORE_TAG: _score_text(new_value), BASIS_TAG: basis, REASON_TAG: reason,
                CHAMPION_SCORE_TAG: ("none" if champion_version is None else _score_text(before)),
                COMPARED_WITH_TAG: champion_version or "none"}
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(model_name, version, key, value)
        mlflow_client.update_model_version(model_name, version, description=f"{alias}: {reason}")
        mlflow_client.set_registered_model_alias(model_name, alias, version)
        mlflow_client.delete_model_version_tag(model_name, version, INCOMPLETE_TAG)
    logger.info("%s v%s -> @%s: %s", model_name, version, alias, reason)
    return Promotion(alias, before, reason, new_value, basis, champion_version)


def _run_status(mlflow_client, run_id: str | None) -> str | None:
    """The run's status (FINISHED, RUNNING, FAILED, KILLED), None when the run is gone."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return mlflow_client.get_run(run_id).info.status
    except MlflowException as error:
        if _does_not_exist(error):
            return None
        raise


def mark_incomplete_versions(model_name: str) -> list[str]:
    """Tag ``mlpath.incomplete=true`` on versions whose MLflow run is not FINISHED (RUNNING for a
    process that died, FAILED, KILLED, or gone) and that hold no alias; returns their numbers.

    This module creates a version only after its run has finished, so such a version is a
    leftover (a ``kill -9`` between "Created version" and the alias under the old order).
    """
    mlflow_client = client()
    marked = []
    for found in mlflow_client.search_model_versions(f"name = '{model_name}'"):
        if found.tags.get(INCOMPLETE_TAG) == "true" or found.tags.get(REASON_TAG):
            continue  # already marked, or promoted (so its run had finished)
        status = _run_status(mlflow_client, found.run_id)
        if status == "FINISHED" or mlflow_client.get_model_version(model_name, found.version).aliases:
            continue
        version = str(found.version)
        mlflow_client.set_model_version_tag(model_name, version, INCOMPLETE_TAG, "true")
        mlflow_client.set_model_version_tag(model_name, version, INCOMPLETE_WHY_TAG,
                                            f"its run is {status or 'gone'}, not FINISHED")
        marked.append(version)
    if marked:
        logger.warning("%s: versions %s are incomplete (their runs never finished)", model_name, marked)
    return marked


def _mark_failed_registration(model_name: str, version: str, error: BaseException) -> None:
    """Best effort: say on a version whose promotion failed why it is incomplete."""
    try:
        mlflow_client = client()
        mlflow_client.set_model_version_tag(model_name, version, INCOMPLETE_TAG, "true")
        why = f"promotion failed: {type(error).__name__}: {error}"[:500]
        mlflow_client.set_model_version_tag(model_name, version, INCOMPLETE_WHY_TAG, why)
        mlflow_client.update_model_version(model_name, version, description=f"incomplete: {why}")
    except Exception:  # noqa: BLE001 - the tag set at creation already marks it
        logger.warning("%s v%s: could not note the failed promotion", model_name, version)


def _file_name(name: str) -> str:
    """A report's names are prose ("audit: conv/pool ..."); a slash would make a folder."""
    return name.replace("/", "-")


def _file_path(name: str) -> PurePosixPath:
    """A report file's relative path (folders allowed), refused if it could leave ``files/``."""
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"report file {name!r}: expected a relative path without empty, '.' or '..' parts")
    return PurePosixPath(name)


def _write_run_files(report: UnitReport, folder: Path) -> None:
    (folder / "figures").mkdir()
    for name, png in report.figures.items():
        (folder / "figures" / f"{_file_name(name)}.png").write_bytes(png)
    # What to look for in each figure, by file name (without .png), in the report's figure order;
    # then the animated GIFs among the files (the site shows them too), by their path without .gif.
    captions = {_file_name(name): report.captions.get(name, "") for name in report.figures}
    for name in report.files:
        if name.endswith(".gif"):
            captions[_file_name(name.removesuffix(".gif"))] = report.captions.get(name, "")
    (folder / "figures" / "captions.json").write_text(json.dumps(captions, indent=2, ensure_ascii=False),
                                                      encoding="utf-8")
    (folder / "tables").mkdir()
    for name, table in report.tables.items():
        table.to_csv(folder / "tables" / f"{_file_name(name)}.csv")
    for name, text in report.texts.items():
        (folder / f"{_file_name(name)}.txt").write_text(text)
    if report.documents:
        (folder / "reports").mkdir()
    for name in report.documents:
        (folder / "reports" / f"{_file_name(name)}.md").write_text(document_for_folder(report, name, "../figures"),
                                                                  encoding="utf-8")
    for name, data in report.files.items():
        path = folder / "files" / _file_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / "summary.md").write_text(report.summary_markdown())
    (folder / "data_refs.json").write_text(
        json.dumps([ref.as_dict() for ref in report.data_refs], indent=2))


def document_for_folder(report: UnitReport, name: str, figures: str) -> str:
    """Document ``name`` with its figure links pointing at ``figures`` (the PNGs' folder, relative
    to the document's); a link to a figure the report does not have is a ValueError."""
    from pipeline.report import FIGURE_LINK

    missing = [f for f in report.document_figures(name) if f not in report.figures]
    if missing:
        raise ValueError(f"{report.unit}: document {name!r} shows figures the report lacks: {missing}; "
                         f"figures are {sorted(report.figures)}")
    return FIGURE_LINK.sub(lambda m: m.group(0).replace(f"(figures/{m.group(1)}.png)",
                                                        f"({figures}/{_file_name(m.group(1))}.png)"),
                           report.documents[name])


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
    passes ``<unit>-<profile>-<flow run name>`` and the ``PREFECT_*`` tags). The run ends first;
    then its model version is created (tagged incomplete) and promoted (``promote_if_better`` on
    ``report.holdout``). If anything fails after the version exists, it stays marked incomplete
    and no alias moves.
    """
    client()  # configures the environment and the tracking URI before mlflow is imported
    import mlflow

    experiment = f"mlpath-{report.unit}"
    experiment_id = ensure_experiment(experiment)
    _ = report.primary_value  # fail before logging anything if the primary metric is missing
    for name in report.documents:  # or a document shows a figure the report lacks
        document_for_folder(report, name, "figures")
    for name in report.files:  # or a file's path would leave files/
        _file_path(name)
    profile = str(report.params.get("profile", ""))
    model_name = report.registered_name if report.model is not None else None
    extra_names = {key: f"{report.registered_name}-{key}" for key in report.extra_models}
    for key, extra in report.extra_models.items():  # fail before logging: each needs its metric
        if extra.metric not in report.metrics:
            raise KeyError(f"{report.unit}: extra model {key!r} is promoted on {extra.metric!r}, which was "
                           f"not computed; metrics are {sorted(report.metrics)}")
    for name in ([model_name] if model_name else []) + list(extra_names.values()):
        mark_incomplete_versions(name)
    extra = dict(tags or {})
    run_tags = {
        **extra,
        "mlpath.unit": report.unit,
        "mlpath.profile": profile,
        "mlpath.primary_metric": report.primary_metric,
        "mlflow.source.git.commit": git_commit(),
        NOTE_TAG: _note(report, extra),
        **({RUN_MODEL_TAG: model_name} if model_name else {}),
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
        info = _log_model(report) if model_name is not None else None
        extra_infos = {key: _log_model(report, extra.model, extra.example, name=f"model-{key}")
                       for key, extra in report.extra_models.items()}
    # The run is FINISHED, its artifacts and models written: only now versions, then the aliases.
    version = alias = before = reason = new_score = basis = None
    if info is not None:
        version, (alias, before, reason, new_score, basis, _) = _register_and_promote(
            info, model_name, report.primary_metric, report.greater_is_better,
            holdout=report.holdout, model=report.model)
    extras = []
    for key, extra in report.extra_models.items():
        extra_version, promotion = _register_and_promote(extra_infos[key], extra_names[key], extra.metric,
                                                         extra.greater_is_better)
        extras.append(Registration(run.info.run_id, experiment, extra_names[key], extra_version,
                                   promotion.alias, promotion.champion_before, run.info.run_name,
                                   promotion.reason, run_ui_url(experiment_id, run.info.run_id),
                                   challenger_score=promotion.challenger_score,
                                   champion_score=promotion.champion_before, basis=promotion.basis))
    return Registration(run.info.run_id, experiment, model_name, version, alias, before, run.info.run_name,
                        reason, run_ui_url(experiment_id, run.info.run_id),
                        challenger_score=new_score, champion_score=before, basis=basis, extras=tuple(extras))


def _register_and_promote(info, model_name: str, metric: str, greater_is_better: bool, *,
                          holdout: tuple[Any, Any] | None = None, model: Any | None = None
                          ) -> tuple[str, Promotion]:
    """A version of the logged model ``info`` (tagged incomplete), then ``promote_if_better``; if
    that fails or is interrupted, the version stays marked incomplete and no alias moves."""
    import mlflow

    created = mlflow.register_model(info.model_uri, model_name, await_registration_for=0,
                                    tags={INCOMPLETE_TAG: "true", **holdout_tags(holdout)})
    version = str(created.version)
    try:
        return version, promote_if_better(model_name, version, metric, greater_is_better,
                                          holdout=holdout, model=model)
    except BaseException as error:  # interrupted too: the version stays incomplete, no alias moved
        _mark_failed_registration(model_name, version, error)
        raise


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


def _log_model(report: UnitReport, model: Any = None, example: Any = None, name: str = "model"):
    """A model as a logged model of the active run, not yet registered (``log_unit_run`` does):
    the report's, or ``model`` (an extra one) with its input ``example``, under ``name``."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    import pipeline

    if model is None:
        model, example = report.model, report.model_example
    signature = None
    if example is not None:
        with warnings.catch_warnings():
            # "integer columns cannot hold missing values": true, and the feature pipeline imputes.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(example, model.predict(example))
    with_torch = holds_torch(model)
    code_paths = [str(Path(pipeline.__file__).parent)]
    if saved_model_loader(model) is not None:
        return _log_saved_model(model, signature, code_paths, name)
    if with_torch:
        return _log_torch_model(model, signature, code_paths, name)
    model = guard_inputs(report, model, example)
    # skops loads only the types it is told to trust: the model's own, each on the allowlist.
    return mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format="skops",
        skops_trusted_types=trusted_types(model),
        pip_requirements=_model_requirements(False),
        # Our estimators' classes travel with the model, so it loads where mlpath is not installed.
        code_paths=code_paths,
        signature=signature,
    )


def guard_inputs(report: UnitReport, model: Any = None, example: Any = None) -> Any:
    """The model to register: for a table model (its example a DataFrame), a ``GuardedModel`` that
    checks every input against the ranges and allowed values of the suite of the report's dataset
    whose columns hold the example's (``expectations/<dataset>.json``); else the model itself."""
    import pandas as pd

    from pipeline.guard import GuardedModel, input_rules
    from pipeline.validation import suite_path

    if model is None:
        model, example = report.model, report.model_example
    if not isinstance(example, pd.DataFrame) or model is None:
        return model
    columns = [str(c) for c in example.columns]
    for ref in report.data_refs:
        path = suite_path(ref.name)
        if not path.is_file():
            continue
        suite = json.loads(path.read_text())
        table = next((e["kwargs"]["column_set"] for e in suite.get("expectations", [])
                      if e.get("type") == "expect_table_columns_to_match_set"), None)
        if table is not None and set(columns) <= set(table):
            return GuardedModel(model, input_rules(path, columns), f"expectations/{ref.name}.json")
    return model


def _log_torch_model(model: Any, signature: Any, code_paths: list[str], name: str = "model"):
    """A torch-backed model without pickle: safetensors weights and a JSON config naming the code
    that builds its module (``pipeline.training.export``), as a ``python_function`` model that
    ``mlflow.pyfunc.load_model`` and ``load_version`` rebuild from our code."""
    import mlflow.pyfunc

    from pipeline.training.export import save_torch_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_torch_model(model, Path(tmp) / "torch_model")
        return mlflow.pyfunc.log_model(
            name=name,
            loader_module=TORCH_LOADER,
            data_path=str(folder),
            code_paths=code_paths,
            pip_requirements=_model_requirements(True) + _safetensors_requirement(),
            signature=signature,
        )


def saved_model_loader(model: Any) -> str | None:
    """The loader module of a model that saves itself (``SAVED_MODEL_LOADERS``), else None."""
    loader = getattr(type(model), "mlflow_loader_module", None)
    return loader if loader in SAVED_MODEL_LOADERS and callable(getattr(model, "save", None)) else None


def _log_saved_model(model: Any, signature: Any, code_paths: list[str], name: str = "model"):
    """A model that saves itself (a ``SentimentModel``: safetensors, tokenizer files, JSON) as a
    ``python_function`` model whose loader module reads that folder back: no pickle in it."""
    from importlib.metadata import version

    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "saved_model")
        extra = [f"{package}=={version(package)}" for package in ("transformers", "tokenizers")]
        return mlflow.pyfunc.log_model(
            name=name,
            loader_module=saved_model_loader(model),
            data_path=str(folder),
            code_paths=code_paths,
            pip_requirements=_model_requirements(True) + _safetensors_requirement() + extra,
            signature=signature,
        )


def _safetensors_requirement() -> list[str]:
    from importlib.metadata import version

    return [f"safetensors=={version('safetensors')}"]


def _param_value(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else value


def is_complete(mlflow_client, version) -> bool:
    """Whether a model version finished registering: its run is FINISHED and it is not tagged
    ``mlpath.incomplete`` (unless it holds an alias, set only once promotion decided)."""
    if _run_status(mlflow_client, version.run_id) != "FINISHED":
        return False
    if version.tags.get(INCOMPLETE_TAG) != "true":
        return True
    # search results carry no aliases; the version itself does
    return bool(mlflow_client.get_model_version(version.name, version.version).aliases)


def latest_results(unit_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per unit: its newest complete model version (see ``is_complete``), that run's metrics, and
    the champion. Incomplete versions (a failed or killed registration) are never shown."""
    mlflow_client = client()
    results: dict[str, dict[str, Any]] = {}
    for unit_id in unit_ids:
        name = f"mlpath-{unit_id}"
        versions = sorted(mlflow_client.search_model_versions(f"name = '{name}'"),
                          key=lambda v: int(v.version), reverse=True)
        newest = next((v for v in versions if is_complete(mlflow_client, v)), None)
        if newest is None:
            continue
        run = mlflow_client.get_run(newest.run_id)
        results[unit_id] = {
            "model": name,
            "version": str(newest.version),
            # search results carry no aliases; the version itself does
            "aliases": sorted(mlflow_client.get_model_version(name, newest.version).aliases),
            "champion_version": current_champion(mlflow_client, name),
            "run_id": newest.run_id,
            "profile": run.data.tags.get("mlpath.profile"),
            "primary_metric": run.data.tags.get("mlpath.primary_metric"),
            "metrics": dict(sorted(run.data.metrics.items())),
        }
    return results
