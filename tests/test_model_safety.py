"""Nothing unsafe gets in: a stored model or checkpoint that could run code when loaded is refused.

Checkpoints load with the weights-only unpickler (tests/test_training.py covers a tampered one);
scikit-learn-style models are skops files whose trusted types are the model's own, each on an
allowlist; torch models are safetensors weights plus a JSON reference to the code that builds
the module, with no pickle anywhere.
"""

from __future__ import annotations

import fractions
import json
import pickle
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from pipeline.registry import (
    TRUSTED_TYPE_PREFIXES,
    UntrustedModelError,
    check_trusted,
    client,
    load_version,
    log_unit_run,
    trusted_types,
)
from pipeline.report import UnitReport

X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = np.array([0, 0, 1, 1])


def _report(model) -> UnitReport:
    return UnitReport(unit="unit99", primary_metric="score", greater_is_better=True, params={"profile": "quick"},
                      metrics={"score": 1.0}, model=model, model_example=X[:2])


def _stored_model_dir(model_name: str, version: str) -> Path:
    """Where the registry keeps a version's files (what an attacker with store access edits)."""
    return Path(unquote(urlparse(client().get_model_version_download_uri(model_name, version)).path))


class _Payload:
    def __reduce__(self):
        return (print, ("tampered model ran code",))


# --- skops: the model's own types, each on the allowlist -------------------------------------------

def test_no_blanket_builtins_and_only_allowlisted_types_are_trusted():
    assert not any(prefix.startswith("builtins") for prefix in TRUSTED_TYPE_PREFIXES)
    assert check_trusted(["sklearn.tree._tree.Tree", "pipeline.scratch.tree.Node", "numpy.dtype"])
    with pytest.raises(UntrustedModelError, match="builtins.eval"):
        check_trusted(["numpy.dtype", "builtins.eval"])
    with pytest.raises(UntrustedModelError, match="pipeline.registry.Registration"):
        check_trusted(["pipeline.registry.Registration"])  # only our estimator modules, not all of pipeline


def test_saving_a_model_with_a_foreign_type_fails_loudly():
    model = LogisticRegression().fit(X, Y)
    assert trusted_types(model) == []
    model.note = fractions.Fraction(1, 3)
    with pytest.raises(UntrustedModelError, match="fractions.Fraction"):
        trusted_types(model)


def test_a_tampered_skops_file_is_refused_at_load(fresh_home):
    import skops.io

    registration = log_unit_run(_report(LogisticRegression().fit(X, Y)))
    folder = _stored_model_dir(registration.model_name, registration.version)
    assert load_version(registration.model_name, registration.version).predict(X).tolist() == Y.tolist()
    tampered = LogisticRegression().fit(X, Y)
    tampered.note = fractions.Fraction(1, 3)  # a type its MLmodel does not trust
    (folder / "model.skops").write_bytes(skops.io.dumps(tampered))
    with pytest.raises(skops.io.exceptions.UntrustedTypesFoundException, match="fractions.Fraction"):
        load_version(registration.model_name, registration.version)
    # trusting it in the MLmodel too does not help: the trusted list itself must be on the allowlist
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = ["fractions.Fraction"]
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(UntrustedModelError, match="fractions.Fraction"):
        load_version(registration.model_name, registration.version)


def test_a_pickled_sklearn_model_is_not_loaded(fresh_home):
    registration = log_unit_run(_report(LogisticRegression().fit(X, Y)))
    folder = _stored_model_dir(registration.model_name, registration.version)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (folder / "model.skops").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UntrustedModelError, match="cloudpickle model is not loaded"):
        load_version(registration.model_name, registration.version)


# --- torch: safetensors weights and a reference to code --------------------------------------------

@pytest.fixture
def torch_registration(fresh_home):
    import torch

    from pipeline.training import TorchClassifier, TrainConfig

    model = TorchClassifier(partial(torch.nn.Linear, 1, 2), TrainConfig(epochs=50, batch_size=4, lr=0.1)).fit(
        X.astype(np.float32), Y)
    registration = log_unit_run(_report(model))
    return registration, _stored_model_dir(registration.model_name, registration.version), model


def _data_dir(folder: Path) -> Path:
    return next(folder.rglob("weights.safetensors")).parent


def test_a_torch_model_round_trips_without_pickle(torch_registration, tmp_path):
    from pipeline.training.export import load_torch_classifier, save_torch_classifier

    registration, folder, model = torch_registration
    config = json.loads((_data_dir(folder) / "config.json").read_text())
    assert config["module_factory"] == {"target": "torch.nn.modules.linear:Linear", "args": [1, 2], "kwargs": {}}
    loaded = load_torch_classifier(save_torch_classifier(model, tmp_path / "m"))
    assert np.allclose(loaded.predict_proba(X.astype(np.float32)), model.predict_proba(X.astype(np.float32)))
    assert load_version(registration.model_name, registration.version).predict(X).tolist() == \
        model.predict(X.astype(np.float32)).tolist()


def test_any_torch_module_registers_as_a_torch_model_without_pickle(fresh_home):
    import mlflow.pyfunc
    import torch

    from pipeline.models.predict import forward_numpy
    from pipeline.training.export import TorchModel, load_torch_model, save_torch_model

    torch.manual_seed(0)
    rows = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype=np.float32)
    model = TorchModel(torch.nn.Linear(2, 3), torch.nn.Linear, {"in_features": 2, "out_features": 3},
                       forward_numpy, {"vocab": ["a", "b"]})
    report = _report(model)
    report.model_example = rows[:2]
    registration = log_unit_run(report)
    folder = _data_dir(_stored_model_dir(registration.model_name, registration.version))
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "mlpath-torch-module/1" and config["meta"] == {"vocab": ["a", "b"]}
    assert config["factory"] == {"target": "torch.nn.modules.linear:Linear", "args": [],
                                 "kwargs": {"in_features": 2, "out_features": 3}}
    assert config["predict"]["target"] == "pipeline.models.predict:forward_numpy"
    loaded = load_version(registration.model_name, registration.version)
    assert isinstance(loaded, TorchModel) and loaded.meta == {"vocab": ["a", "b"]}
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registration.model_name}/{registration.version}")
    np.testing.assert_allclose(pyfunc.predict(rows), model.predict(rows), rtol=1e-6)

    # a tampered config: the prediction function may only come from pipeline.models.
    config["predict"] = {"target": "os:system", "args": [], "kwargs": {}}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UntrustedModelError, match="'os:system' is not allowed"):
        load_torch_model(folder)
    with pytest.raises(TypeError, match="not a plain JSON value"):
        save_torch_model(TorchModel(torch.nn.Linear(2, 3), torch.nn.Linear, {}, forward_numpy,
                                    {"scaler": object()}), fresh_home / "m")


def test_a_tampered_torch_weights_file_is_refused(torch_registration, capsys):
    registration, folder, _ = torch_registration
    (_data_dir(folder) / "weights.safetensors").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UntrustedModelError, match="not a safetensors file"):
        load_version(registration.model_name, registration.version)
    assert "tampered model ran code" not in capsys.readouterr().out


def test_a_torch_config_naming_foreign_code_is_refused(torch_registration):
    registration, folder, _ = torch_registration
    path = _data_dir(folder) / "config.json"
    config = json.loads(path.read_text())
    config["module_factory"] = {"target": "os:system", "args": ["echo pwned"], "kwargs": {}}
    path.write_text(json.dumps(config))
    with pytest.raises(UntrustedModelError, match="'os:system' is not allowed"):
        load_version(registration.model_name, registration.version)


# --- a registered table model guards its inputs with its dataset's suite ----------------------------

def _titanic_rows(n: int = 40, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "Pclass": rng.integers(1, 4, n), "Age": rng.uniform(1, 80, n), "SibSp": rng.integers(0, 4, n),
        "Parch": rng.integers(0, 3, n), "Fare": rng.uniform(5, 300, n),
        "Sex": rng.choice(["male", "female"], n), "Embarked": rng.choice(["S", "C", "Q"], n)})
    X.loc[3, "Age"] = np.nan  # the suite lets Age be missing (mostly 0.75): the model imputes
    return X, (X["Sex"] == "female").astype(int).to_numpy()


def test_input_rules_come_from_the_suite():
    from pipeline.guard import input_rules
    from pipeline.validation import suite_path

    rules = input_rules(suite_path("titanic"), ["Pclass", "Age", "Sex"])
    assert rules["Pclass"] == {"nullable": False, "values": [1, 2, 3]}
    assert rules["Age"] == {"nullable": True, "min": 0, "max": 100, "strict_min": True, "strict_max": False}
    assert rules["Sex"]["values"] == ["male", "female"]


@pytest.mark.parametrize("column, value, message", [
    ("Pclass", 7, "column Pclass: value 7 is outside the allowed values [1, 2, 3] of expectations/titanic.json"),
    ("Age", -50.0, "column Age: value -50.0 is outside the allowed range (0, 100] of expectations/titanic.json"),
    ("Sex", "robot", "column Sex: value 'robot' is outside the allowed values ['male', 'female']"),
])
def test_a_registered_titanic_model_refuses_rows_outside_its_suite(fresh_home, column, value, message):
    import mlflow.pyfunc

    from pipeline.data import DataRef
    from pipeline.features import with_titanic_features
    from pipeline.guard import GuardedModel, InputOutOfRangeError

    X, y = _titanic_rows()
    model = with_titanic_features(LogisticRegression()).fit(X, y)
    report = UnitReport(unit="unit99", primary_metric="score", greater_is_better=True,
                        params={"profile": "quick"}, metrics={"score": 1.0}, model=model,
                        model_example=X.head(5),
                        data_refs=[DataRef("iris", "1" * 64, 150, "sklearn", "quick"),
                                   DataRef("titanic", "2" * 64, 891, "mirror:/data/titanic", "quick")])
    registration = log_unit_run(report)
    loaded = load_version(registration.model_name, registration.version)
    assert isinstance(loaded, GuardedModel)
    assert loaded.predict(X).tolist() == model.predict(X).tolist()  # rows the suite allows pass
    bad = X.head(3).copy()
    bad[column] = bad[column].astype(object)
    bad.loc[bad.index[1], column] = value
    with pytest.raises(InputOutOfRangeError) as exc:
        loaded.predict(bad)
    assert message in str(exc.value)
    if column == "Pclass":  # the pyfunc interface guards the same way
        pyfunc = mlflow.pyfunc.load_model(f"models:/{registration.model_name}@champion")
        with pytest.raises(Exception, match="column Pclass: value 7"):
            pyfunc.predict(bad.astype({"Pclass": "int64"}))


def test_a_cifar_cnn_with_its_input_transform_round_trips(tmp_path):
    import torch

    from pipeline.augment import cifar_eval_transform, cifar_train_transform
    from pipeline.models.cnn import SimpleCNN
    from pipeline.training import TorchClassifier, TrainConfig
    from pipeline.training.export import load_torch_classifier, save_torch_classifier

    images = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(12) % 3
    model = TorchClassifier(partial(SimpleCNN, num_classes=3), TrainConfig(epochs=1, batch_size=4, device="cpu"),
                            train_transform=cifar_train_transform(torch.Generator().manual_seed(0)),
                            input_transform=cifar_eval_transform()).fit(images, labels)
    folder = save_torch_classifier(model, tmp_path / "cnn")
    config = json.loads((folder / "config.json").read_text())
    assert config["module_factory"]["target"] == "pipeline.models.cnn:SimpleCNN"
    assert config["input_transform"]["target"] == "pipeline.augment:CifarTransform"
    loaded = load_torch_classifier(folder)
    assert np.allclose(loaded.predict_proba(images), model.predict_proba(images), atol=1e-6)
