"""The shared torch training loop: learning, determinism, resume, checkpoints, early stopping,
clipping, metrics to callbacks and MLflow, and the sklearn wrapper under the Unit 6 evaluation."""

import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from pipeline import training
from pipeline.evaluation import evaluate
from pipeline.training import TorchClassifier, TrainConfig, Trainer, autocast_dtype, pick_device, seed_everything

TIMINGS = ("seconds", "samples_per_second")
CPU = TrainConfig(batch_size=50, device="cpu")


def blobs(n=600, seed=0):
    """Three well-separated Gaussian blobs in 2-D: X (n, 2) float64, y (n,) in {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    y = rng.integers(0, 3, n)
    return centres[y] + rng.normal(size=(n, 2)), y


def mlp(hidden=32, dropout=0.0, n_in=2, n_out=3):
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


def fit_mlp(config, X, y, X_val=None, y_val=None, dropout=0.0, **trainer_kwargs):
    seed_everything(config.seed)
    trainer = Trainer(mlp(dropout=dropout), config, **trainer_kwargs)
    return trainer, trainer.fit(X, y, X_val, y_val)


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in history]


def test_pick_device_is_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_config_rejects_unknown_choices():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="scheduler"):
        TrainConfig(scheduler="step")


def test_mlp_learns_separable_blobs_and_is_deterministic():
    X, y = blobs()
    config = TrainConfig(epochs=8, batch_size=64, lr=1e-2, device="cpu")
    trainer, result = fit_mlp(config, X[:400], y[:400], X[400:], y[400:])
    _, again = fit_mlp(config, X[:400], y[:400], X[400:], y[400:])

    assert result.history[-1]["val_accuracy"] > 0.95
    assert (trainer.predict_proba(X[400:]).argmax(1) == y[400:]).mean() > 0.95
    assert np.allclose(trainer.predict_proba(X[:5]).sum(1), 1, atol=1e-6)
    assert trainer.predict_logits(X[:5]).shape == (5, 3)
    assert result.epochs_run == 8 and result.resumed_from is None and result.device == "cpu"
    metrics = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", *TIMINGS}
    assert set(result.history[0]) == metrics
    assert without_timings(again.history) == without_timings(result.history)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    X, y = blobs(300)
    data = (X[:200], y[:200], X[200:], y[200:])
    config = replace(CPU, epochs=4, batch_size=32, lr=1e-2)
    straight, straight_result = fit_mlp(config, *data, dropout=0.3)  # dropout: the global RNG must resume too

    fit_mlp(replace(config, epochs=2, checkpoint_dir=str(tmp_path)), *data, dropout=0.3)
    seed_everything(123)  # other initial weights and RNG state: all must come from the checkpoint
    resumed = Trainer(mlp(dropout=0.3), replace(config, checkpoint_dir=str(tmp_path)))
    result = resumed.fit(*data)

    assert result.resumed_from == 2 and result.epochs_run == 4
    assert without_timings(result.history) == without_timings(straight_result.history)
    assert result.best_epoch == straight_result.best_epoch
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    X, y = blobs(200)
    config = replace(CPU, epochs=1, checkpoint_dir=str(tmp_path))
    fit_mlp(config, X, y)
    with pytest.raises(ValueError, match="different lr"):
        fit_mlp(replace(config, epochs=2, lr=0.5), X, y)
    with pytest.raises(ValueError, match="different training data"):
        fit_mlp(replace(config, epochs=2), X[:100], y[:100])
    scheduled = replace(config, scheduler="cosine", checkpoint_dir=str(tmp_path / "scheduled"))
    fit_mlp(scheduled, X, y)
    with pytest.raises(ValueError, match="epochs"):
        fit_mlp(replace(scheduled, epochs=3), X, y)
    fit_mlp(replace(config, epochs=2, early_stopping_patience=1, label="more"), X, y)  # these may change


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    X, y = blobs(200)
    config = replace(CPU, epochs=3, checkpoint_dir=str(tmp_path))
    real_save, calls = torch.save, []

    def save_then_crash_on_the_second_epoch(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"half a checkpoint")
            raise KeyboardInterrupt  # as if the process were stopped mid-write
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_crash_on_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit_mlp(config, X, y)
    monkeypatch.setattr(torch, "save", real_save)

    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert len(torch.load(tmp_path / "last.pt", weights_only=False)["run"]["history"]) == 1
    _, result = fit_mlp(config, X, y)
    assert result.resumed_from == 1 and result.epochs_run == 3


def test_early_stopping_stops_when_val_loss_rises_and_restores_the_best_weights():
    # Random labels: a wide MLP memorises the training set while the validation loss climbs.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 10)), rng.integers(0, 2, 200)
    X_val, y_val = rng.normal(size=(200, 10)), rng.integers(0, 2, 200)
    config = TrainConfig(epochs=50, batch_size=20, lr=1e-2, early_stopping_patience=3, device="cpu")
    seed_everything(0)
    trainer = Trainer(mlp(hidden=256, n_in=10, n_out=2), config)
    result = trainer.fit(X, y, X_val, y_val)

    val_losses = [row["val_loss"] for row in result.history]
    assert result.epochs_run < 50
    assert result.best_epoch == int(np.argmin(val_losses)) + 1 == result.epochs_run - 3
    restored = nn.functional.cross_entropy(torch.from_numpy(trainer.predict_logits(X_val)), torch.from_numpy(y_val))
    assert restored.item() == pytest.approx(min(val_losses), rel=1e-5)


def test_grad_clip_bounds_the_gradient_norm():
    X, y = blobs(200)
    X = X * 100  # large inputs, large gradients

    def gradient_norms(grad_clip):
        seed_everything(0)
        trainer = Trainer(mlp(), replace(CPU, epochs=2, grad_clip=grad_clip))
        norms = []
        trainer.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: norms.append(
                torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.model.parameters()])).item()
            )
        )
        trainer.fit(X, y)
        return np.array(norms)

    assert gradient_norms(None).max() > 1.0
    assert gradient_norms(1.0).max() <= 1.0 + 1e-5


def test_schedulers_shape_the_learning_rate():
    X, y = blobs(200)
    _, cosine = fit_mlp(replace(CPU, epochs=4, lr=0.1, scheduler="cosine"), X, y)
    _, onecycle = fit_mlp(replace(CPU, epochs=4, lr=0.1, scheduler="onecycle"), X, y)
    cosine_lrs = [row["lr"] for row in cosine.history]
    onecycle_lrs = [row["lr"] for row in onecycle.history]
    assert cosine_lrs == sorted(cosine_lrs, reverse=True) and cosine_lrs[-1] < 0.01
    assert max(onecycle_lrs) <= 0.1 and onecycle_lrs[-1] < onecycle_lrs[1]


def test_on_epoch_end_receives_each_epochs_metrics():
    X, y = blobs(200)
    calls = []
    _, result = fit_mlp(replace(CPU, epochs=3), X, y, on_epoch_end=lambda e, m: calls.append((e, m)))
    assert [epoch for epoch, _ in calls] == [1, 2, 3]
    assert [metrics for _, metrics in calls] == result.history
    assert "val_loss" not in calls[0][1] and result.best_epoch == 3


def test_progress_bar_on_a_terminal_only(capsys, monkeypatch):
    X, y = blobs(200)
    fit_mlp(replace(CPU, epochs=2, label="blobs"), X, y)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fit_mlp(replace(CPU, epochs=2, label="blobs"), X, y)
    err = capsys.readouterr().err
    assert "blobs 2/2" in err and "samples/s" in err


@pytest.fixture
def mlflow_at(tmp_path, monkeypatch):
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield mlflow
    mlflow.set_tracking_uri(previous)


def test_metrics_go_to_the_active_mlflow_run(mlflow_at):
    mlflow = mlflow_at
    X, y = blobs(200)
    with mlflow.start_run() as run:
        _, result = fit_mlp(replace(CPU, epochs=3), X[:150], y[:150], X[150:], y[150:])
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([row["val_loss"] for row in result.history])


def test_importing_the_trainer_does_not_import_mlflow():
    code = "import sys, pipeline.training; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_classifier_goes_through_evaluate_clone_and_pickle(tmp_path):
    X, y = blobs(400)
    labels = np.array(["north", "east", "west"])[y]  # string labels: classes_ maps them
    config = TrainConfig(epochs=6, batch_size=32, lr=1e-2, device="cpu", checkpoint_dir=str(tmp_path))
    model = TorchClassifier(mlp, config, input_transform=torch.nn.functional.normalize)

    twin = clone(model)
    assert twin.config == config and twin.module_factory is mlp
    result = evaluate(model, X[:300], labels[:300], X[300:], labels[300:], cv=2)
    assert result.metrics["test_accuracy"] > 0.95 and result.metrics["cv_accuracy_mean"] > 0.9
    assert "test_roc_auc" in result.metrics
    assert len(list(tmp_path.iterdir())) == 3  # two folds and the final fit: one checkpoint folder each

    fitted = result.model
    assert list(fitted.classes_) == ["east", "north", "west"] and len(fitted.history_) == 6
    restored = pickle.loads(pickle.dumps(fitted))
    assert not hasattr(restored, "trainer_") and hasattr(fitted, "trainer_")
    np.testing.assert_array_equal(restored.predict(X[300:]), fitted.predict(X[300:]))


class NoisyInputs:
    """A stand-in augmentation with its own random stream, like CifarTransform's generator."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x):
        return x + 0.5 * torch.randn(x.shape, generator=self.generator)


def test_resume_continues_the_augmentation_stream(tmp_path):
    X, y = blobs(300)
    config = replace(CPU, epochs=4, batch_size=32, lr=1e-2)
    _, straight = fit_mlp(config, X, y, train_transform=NoisyInputs())

    fit_mlp(replace(config, epochs=2, checkpoint_dir=str(tmp_path)), X, y, train_transform=NoisyInputs())
    _, resumed = fit_mlp(replace(config, checkpoint_dir=str(tmp_path)), X, y, train_transform=NoisyInputs())

    assert resumed.resumed_from == 2
    assert without_timings(resumed.history) == without_timings(straight.history)


def test_a_finished_checkpoint_is_trained_anew_not_reused(tmp_path):
    X, y = blobs(200)
    config = replace(CPU, epochs=2, checkpoint_dir=str(tmp_path))
    _, first = fit_mlp(config, X, y)
    _, again = fit_mlp(config, X, y)
    assert first.resumed_from is None and again.resumed_from is None
    assert again.epochs_run == 2
    assert without_timings(again.history) == without_timings(first.history)  # trained again, same seed


def test_torch_classifier_keeps_a_checkpoint_per_settings(tmp_path):
    X, y = blobs(200)
    config = replace(CPU, epochs=2, scheduler="cosine", checkpoint_dir=str(tmp_path))
    TorchClassifier(mlp, config).fit(X, y)
    longer = TorchClassifier(mlp, replace(config, epochs=3)).fit(X, y)  # would clash in one folder
    assert len(longer.history_) == 3
    assert len(list(tmp_path.glob("*/last.pt"))) == 2


def halves(n=400, seed=0):
    """Images (n, 3, 8, 8) float32; the label says whether the left half is the brighter one."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, n)
    X[:, :, :, :4] += np.where(y == 1, 1.0, -1.0)[:, None, None, None]
    return X, y


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 2))


def test_cpu_bf16_autocasts_only_where_the_cpu_computes_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype(cpu, replace(CPU, cpu_bf16=True)) == torch.bfloat16
    assert autocast_dtype(cpu, CPU) is None  # opt-in: plain float32 unless asked
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype(cpu, replace(CPU, cpu_bf16=True)) is None  # emulated bf16 would be slower


def test_channels_last_changes_the_layout_not_the_results():
    X, y = halves()
    config = replace(CPU, epochs=2, lr=1e-2)
    seed_everything(0)
    plain = Trainer(small_cnn(), config)
    plain.fit(X, y)
    seed_everything(0)
    nhwc = Trainer(small_cnn(), replace(config, channels_last=True))
    nhwc.fit(X, y)

    weight = nhwc.model[0].weight  # (8, 3, 3, 3)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    np.testing.assert_allclose(nhwc.predict_logits(X), plain.predict_logits(X), atol=1e-4)


def test_cpu_bf16_trains_in_bf16_and_still_learns(monkeypatch):
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)  # emulated where it is not: slow, same maths
    X, y = halves()
    config = replace(CPU, epochs=3, lr=1e-2, cpu_bf16=True, channels_last=True)
    seed_everything(0)
    trainer = Trainer(small_cnn(), config)
    dtypes = []
    trainer.model[0].register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    trainer.fit(X[:300], y[:300])

    assert trainer.amp_dtype == torch.bfloat16 and set(dtypes) == {torch.bfloat16}
    assert trainer.model[0].weight.dtype == torch.float32  # autocast computes in bf16, keeps fp32 weights
    logits = trainer.predict_logits(X[300:])
    assert logits.dtype == np.float32 and (logits.argmax(1) == y[300:]).mean() > 0.9


def test_label_smoothing_caps_the_confidence_it_trains_towards():
    X, y = blobs(600)
    config = replace(CPU, epochs=30, lr=5e-2, optimizer="sgd")
    plain, _ = fit_mlp(config, X, y)
    smoothed, _ = fit_mlp(replace(config, label_smoothing=0.3), X, y)

    # With ε = 0.3 over K = 3 classes the loss is lowest at p(true) = 1 - ε + ε/K = 0.8.
    assert plain.predict_proba(X).max(1).mean() > 0.95
    assert 0.75 < smoothed.predict_proba(X).max(1).mean() < 0.85
    assert (smoothed.predict_proba(X).argmax(1) == y).mean() > 0.95  # still right, just less sure
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)
