"""The shared torch training loop: learning, determinism, resume, checkpoints, early stopping,
clipping, metrics to callbacks and MLflow, streamed data, steps of other shapes (a two-optimizer
GAN, an LSTM carrying its state across batches), and the sklearn wrapper under the Unit 6 evaluation."""

import json
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from pipeline.evaluation import evaluate
from pipeline.training import (
    Callback,
    ClassificationStep,
    OnEpochEnd,
    Step,
    TorchClassifier,
    TrainConfig,
    Trainer,
    autocast_dtype,
    default_callbacks,
    pick_device,
    seed_everything,
    settings_key,
    stable_repr,
)
from pipeline.training import data as training_data
from pipeline.training import device as training_device

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


def fit_mlp(config, X, y, X_val=None, y_val=None, dropout=0.0, step=None, callbacks=None):
    seed_everything(config.seed)
    trainer = Trainer(mlp(dropout=dropout), config, step, callbacks)
    return trainer, trainer.fit(X, y, X_val, y_val)


def without_timings(history):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in history]


def assert_same_weights(a: nn.Module, b: nn.Module, atol=0.0):
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=atol)


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
    with pytest.raises(ValueError, match="both X_val and y_val"):
        trainer.fit(X, y, X_val=X)


class DataPlacement(Callback):
    """Records where the training data lives during fit: on the device whole, or streamed."""

    def on_fit_start(self, trainer):
        self.resident = trainer.train_batches.resident
        self.device = trainer.train_batches.tensors[0].device.type


def fit_streamed_and_resident(config, monkeypatch, *data):
    """The same fit with the data kept on the device and streamed to it: ((trainer, result, placement), ...)."""
    runs = []
    for streamed in (False, True):
        if streamed:
            monkeypatch.setattr(training_data, "fits_on_device", lambda nbytes, device: False)  # as if too big
        placement = DataPlacement()
        runs.append((*fit_mlp(config, *data, dropout=0.3, callbacks=[placement]), placement))
    return runs


def test_streamed_batches_train_exactly_like_batches_kept_on_the_device(monkeypatch):
    X, y = blobs(300)
    config = replace(CPU, epochs=3, batch_size=32, lr=1e-2)
    resident, streamed = fit_streamed_and_resident(config, monkeypatch, X[:200], y[:200], X[200:], y[200:])

    assert resident[2].resident and not streamed[2].resident
    assert without_timings(streamed[1].history) == without_timings(resident[1].history)
    assert_same_weights(streamed[0].model, resident[0].model)
    assert resident[0].train_batches is None  # a trainer kept after fit does not hold on to the data


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streaming_to_the_gpu_matches_keeping_the_data_there(monkeypatch):
    X, y = blobs(300)
    config = TrainConfig(epochs=3, batch_size=32, lr=1e-2, amp=False, device="cuda")
    resident, streamed = fit_streamed_and_resident(config, monkeypatch, X, y)

    assert (resident[2].device, streamed[2].device) == ("cuda", "cpu")
    for a, b in zip(without_timings(resident[1].history), without_timings(streamed[1].history), strict=True):
        assert a == pytest.approx(b, rel=1e-4)


def test_an_iterable_of_batches_trains_like_arrays():
    X, y = blobs(400)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y)),
        batch_size=32, shuffle=True)
    config = replace(CPU, epochs=5, lr=1e-2, scheduler="cosine")
    trainer, result = fit_mlp(config, loader, None, loader)

    assert result.history[-1]["val_accuracy"] > 0.95 and result.history[-1]["lr"] < 1e-3
    with pytest.raises(ValueError, match="number of batches per epoch"):
        fit_mlp(config, (batch for batch in loader), None)  # a generator has no len() for the schedule
    with pytest.raises(ValueError, match="targets go with arrays"):
        trainer.fit(loader, y)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, capsys):
    X, y = blobs(300)
    data = (X[:200], y[:200], X[200:], y[200:])
    config = replace(CPU, epochs=4, batch_size=32, lr=1e-2)
    straight, straight_result = fit_mlp(config, *data, dropout=0.3)  # dropout: the global RNG must resume too

    fit_mlp(replace(config, epochs=2, checkpoint_dir=str(tmp_path)), *data, dropout=0.3)
    assert "resumed" not in capsys.readouterr().err  # a fresh run says nothing of resuming
    seed_everything(123)  # other initial weights and RNG state: all must come from the checkpoint
    resumed = Trainer(mlp(dropout=0.3), replace(config, checkpoint_dir=str(tmp_path)))
    result = resumed.fit(*data)

    assert result.resumed_from == 2 and result.epochs_run == 4
    assert f"train: resumed from epoch 2/4 of checkpoint {tmp_path / 'last.pt'}" in capsys.readouterr().err
    assert without_timings(result.history) == without_timings(straight_result.history)
    assert result.best_epoch == straight_result.best_epoch
    assert_same_weights(resumed.model, straight.model, atol=1e-6)


def test_a_checkpoint_holds_only_tensors_and_plain_values(tmp_path):
    X, y = blobs(200)
    fit_mlp(replace(CPU, epochs=1, checkpoint_dir=str(tmp_path), scheduler="onecycle"), X, y, X, y)
    state = torch.load(tmp_path / "last.pt", weights_only=True)  # the weights-only unpickler reads it all
    assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
    assert isinstance(state["rng"]["python"]["words"], torch.Tensor)


class _Payload:
    """What a tampered checkpoint smuggles in: unpickling it would run code."""

    def __reduce__(self):
        return (print, ("tampered checkpoint ran code",))


def test_a_tampered_checkpoint_is_refused_not_run(tmp_path, capsys):
    X, y = blobs(200)
    config = replace(CPU, epochs=2, checkpoint_dir=str(tmp_path))
    fit_mlp(replace(config, epochs=1), X, y)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["history"].append(_Payload())
    torch.save(state, tmp_path / "last.pt")  # a full pickle, as an attacker would write it
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        fit_mlp(config, X, y)
    assert "tampered checkpoint ran code" not in capsys.readouterr().out


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
    assert len(torch.load(tmp_path / "last.pt", weights_only=True)["history"]) == 1
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
    restored = F.cross_entropy(torch.from_numpy(trainer.predict_logits(X_val)), torch.from_numpy(y_val))
    assert restored.item() == pytest.approx(min(val_losses), rel=1e-5)


class GradientNorms(Callback):
    """Records the gradient norm the optimizer stepped with, after every batch."""

    def __init__(self):
        self.norms = []

    def on_batch_end(self, trainer, index, metrics):
        grads = [p.grad.norm() for p in trainer.model.parameters()]
        self.norms.append(torch.linalg.vector_norm(torch.stack(grads)).item())


def test_grad_clip_bounds_the_gradient_norm():
    X, y = blobs(200)
    X = X * 100  # large inputs, large gradients

    def gradient_norms(grad_clip):
        recorder = GradientNorms()
        fit_mlp(replace(CPU, epochs=2, grad_clip=grad_clip), X, y, callbacks=[recorder])
        return np.array(recorder.norms)

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
    config, calls = replace(CPU, epochs=3), []
    callbacks = [*default_callbacks(config), OnEpochEnd(lambda e, m: calls.append((e, m)))]
    _, result = fit_mlp(config, X, y, callbacks=callbacks)
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

    def noisy():
        return ClassificationStep(train_transform=NoisyInputs())

    _, straight = fit_mlp(config, X, y, step=noisy())
    fit_mlp(replace(config, epochs=2, checkpoint_dir=str(tmp_path)), X, y, step=noisy())
    _, resumed = fit_mlp(replace(config, checkpoint_dir=str(tmp_path)), X, y, step=noisy())

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


def test_settings_key_is_built_from_names_and_values_not_addresses():
    def key(hidden=16, seed=0, config=CPU):
        return settings_key(config, partial(mlp, hidden=hidden), NoisyInputs(seed), F.normalize)

    assert key() == key()  # new objects, other addresses: the same key
    assert len({key(), key(hidden=8), key(seed=1), key(config=replace(CPU, lr=0.5))}) == 4
    text = stable_repr((partial(mlp, hidden=16), NoisyInputs(), CPU, F.normalize))
    assert "0x" not in text and "test_training.mlp" in text and "hidden" in text and "lr" in text
    with pytest.raises(TypeError, match="no stable description"):
        settings_key(object())


# Trains blobs with a TorchClassifier that checkpoints under argv[1]; with argv[2] = k, the process
# dies (no clean-up, no exception) right after saving epoch k. Prints the run as JSON.
FRESH_PROCESS_RUN = textwrap.dedent("""
    import json, os, sys
    from functools import partial
    import numpy as np, torch
    from pipeline.training import Checkpoint, TorchClassifier, TrainConfig

    def mlp(hidden):
        return torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                   torch.nn.Linear(hidden, 3))

    class NoisyInputs:
        def __init__(self, seed):
            self.generator = torch.Generator().manual_seed(seed)

        def __call__(self, x):
            return x + 0.5 * torch.randn(x.shape, generator=self.generator)

    folder, die_after = sys.argv[1], int(sys.argv[2])
    save = Checkpoint.on_epoch_end

    def save_then_die(self, trainer, epoch, row):
        save(self, trainer, epoch, row)
        if epoch == die_after:
            os._exit(3)

    Checkpoint.on_epoch_end = save_then_die
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    X = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])[y] + rng.normal(size=(300, 2))
    config = TrainConfig(epochs=4, batch_size=32, lr=1e-2, device="cpu", checkpoint_dir=folder)
    model = TorchClassifier(partial(mlp, 16), config, train_transform=NoisyInputs(7)).fit(X, y)
    history = [{k: v for k, v in row.items() if k not in ("seconds", "samples_per_second")}
               for row in model.history_]
    weights = {k: v.tolist() for k, v in model.module_.state_dict().items()}
    print(json.dumps({"resumed_from": model.trainer_.resumed_from, "history": history, "weights": weights}))
""")


def test_torch_classifier_resumes_an_interrupted_run_in_a_fresh_process(tmp_path):
    def run(folder, die_after=0):
        done = subprocess.run([sys.executable, "-c", FRESH_PROCESS_RUN, str(tmp_path / folder), str(die_after)],
                              capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    code, out, err = run("straight")
    assert code == 0, err
    straight = json.loads(out)
    assert run("interrupted", die_after=2)[0] == 3
    assert [p.name for p in (tmp_path / "interrupted").glob("*/last.pt")] == ["last.pt"]
    code, out, err = run("interrupted")
    assert code == 0, err
    assert "resumed from epoch 2/4 of checkpoint" in err  # the resumed run's log says where it went on
    resumed = json.loads(out)

    assert straight["resumed_from"] is None and resumed["resumed_from"] == 2
    assert resumed["history"] == straight["history"]
    assert resumed["weights"] == straight["weights"]


def test_torch_classifier_trains_on_a_copy_of_its_augmentation():
    X, y = blobs(200)
    augment = NoisyInputs()
    state = augment.generator.get_state()
    model = TorchClassifier(mlp, replace(CPU, epochs=2), train_transform=augment)

    first = model.fit(X, y).predict_proba(X)
    assert torch.equal(augment.generator.get_state(), state)  # the caller's generator did not move
    second = model.fit(X, y).predict_proba(X)
    from_clone = clone(model).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(from_clone, first)


@dataclass(frozen=True)
class TabularMLP:
    """A module factory sized by the data, as ``size_from_data`` calls it (a dataclass: a readable test id)."""

    hidden: int = 16

    def __call__(self, n_features, n_classes):
        return mlp(self.hidden, n_in=n_features, n_out=n_classes)


@parametrize_with_checks([TorchClassifier(TabularMLP(), TrainConfig(epochs=10, batch_size=32, lr=1e-2, device="cpu"),
                                          size_from_data=True)])
def test_torch_classifier_keeps_the_sklearn_contract(estimator, check):
    check(estimator)  # every check passes: fitting is seeded, so even fit-twice and pipeline checks agree


class GAN(nn.Module):
    """A generator mapping noise z (B, 1) to samples (B, 1), and a discriminator scoring them (B, 1)."""

    def __init__(self):
        super().__init__()
        self.generator = nn.Linear(1, 1)  # an affine map of N(0, 1): it can match any 1-D Gaussian
        self.discriminator = nn.Sequential(nn.Linear(1, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


class GANStep(Step):
    """The discriminator's update, then the generator's, on every batch of real samples."""

    def __init__(self):
        self.updates = []

    def configure_optimizers(self, model, config):
        return [torch.optim.Adam(model.discriminator.parameters(), lr=config.lr, betas=(0.5, 0.999)),
                torch.optim.Adam(model.generator.parameters(), lr=config.lr, betas=(0.5, 0.999))]

    def training_step(self, trainer, batch):
        (real,) = batch  # (B, 1)
        gan, (d_optimizer, g_optimizer) = trainer.model, trainer.optimizers
        real_label, fake_label = torch.ones_like(real), torch.zeros_like(real)
        fake = gan.generator(torch.randn_like(real))  # (B, 1)
        d_loss = (F.binary_cross_entropy_with_logits(gan.discriminator(real), real_label)
                  + F.binary_cross_entropy_with_logits(gan.discriminator(fake.detach()), fake_label))
        trainer.optimize(d_loss, d_optimizer)
        self.updates.append("D")
        g_loss = F.binary_cross_entropy_with_logits(gan.discriminator(fake), real_label)  # fool the new D
        trainer.optimize(g_loss, g_optimizer)
        self.updates.append("G")
        return {"d_loss": d_loss, "g_loss": g_loss}


def test_a_gan_step_alternates_two_optimizers_in_the_same_loop():
    real = 3.0 + 0.5 * torch.randn(512, 1, generator=torch.Generator().manual_seed(0))  # N(3, 0.5²), no labels
    seed_everything(0)
    gan, step = GAN(), GANStep()
    with torch.no_grad():
        start_mean = gan.generator(torch.randn(4096, 1)).mean().item()
    trainer = Trainer(gan, TrainConfig(epochs=30, batch_size=64, lr=2e-2, device="cpu"), step)
    result = trainer.fit(real)

    n_batches = 30 * 512 // 64
    assert step.updates == ["D", "G"] * n_batches
    for optimizer in trainer.optimizers:  # each stepped its own parameters once per batch
        assert [state["step"].item() for state in optimizer.state.values()] == [n_batches] * len(optimizer.state)
    assert {"train_d_loss", "train_g_loss"} <= set(result.history[0])
    with torch.no_grad():
        end_mean = gan.generator(torch.randn(4096, 1)).mean().item()
    assert abs(end_mean - 3.0) < 0.5 < abs(start_mean - 3.0) / 2


class CharLSTM(nn.Module):
    """Token ids (B, T) -> next-token logits (B, T, V), from and to an LSTM state ((1, B, H), (1, B, H))."""

    def __init__(self, vocab=6, hidden=32):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        out, state = self.lstm(self.embed(x), state)  # (B, T, H)
        return self.head(out), state


class TruncatedBPTTStep(Step):
    """Back-propagates through one window of T steps, carrying the LSTM state to the next window.

    ``carry_across_epochs`` keeps it from one epoch to the next too (a stream read round and round):
    then the state is part of the run and goes in the checkpoint, unless ``checkpointed`` is False.
    """

    def __init__(self, carry_across_epochs=False, checkpointed=True):
        self.carry_across_epochs, self.checkpointed = carry_across_epochs, checkpointed
        self.state, self.received, self.kept = None, [], []

    def on_epoch_start(self, trainer):
        if not self.carry_across_epochs:
            self.state = None

    def training_step(self, trainer, batch):
        x, y = batch  # (B, T), (B, T)
        self.received.append(self.state)
        logits, state = trainer.model(x, self.state)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        trainer.optimize(loss)
        self.state = tuple(s.detach() for s in state)  # carried to the next window, cut from this graph
        self.kept.append(self.state)
        return {"loss": loss}

    def state_dict(self):
        return {"state": self.state} if self.checkpointed else {}

    def load_state_dict(self, state):
        self.state = state.get("state")


def bptt_windows(batch=4, window=6):
    """A periodic token stream (period 12; after a 0 comes a 1 or a 2, so the past matters), as
    ``batch`` rows at different phases, cut into consecutive windows: [(x (B, T), y (B, T))]."""
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2, 4, 1, 3, 5])
    stream = pattern.repeat(9)[:97]
    rows = torch.stack([stream.roll(-3 * b) for b in range(batch)])  # (B, 97)
    x, y = rows[:, :-1], rows[:, 1:]  # (B, 96): y is x shifted by one
    return [(x[:, t : t + window], y[:, t : t + window]) for t in range(0, x.shape[1], window)]


def test_an_lstm_step_carries_its_state_across_batches_detached():
    windows = bptt_windows()
    seed_everything(0)
    step = TruncatedBPTTStep()
    result = Trainer(CharLSTM(), TrainConfig(epochs=15, lr=1e-2, device="cpu"), step).fit(windows)

    per_epoch = len(windows)
    for epoch in range(15):
        received = step.received[epoch * per_epoch : (epoch + 1) * per_epoch]
        kept = step.kept[epoch * per_epoch : (epoch + 1) * per_epoch]
        assert received[0] is None  # each epoch reads the stream from its start
        assert all(received[k + 1] is kept[k] for k in range(per_epoch - 1))  # batch k's state feeds k + 1
    assert all(s.grad_fn is None and not s.requires_grad for state in step.kept for s in state)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.2 * losses[0]


def test_a_steps_own_state_is_checkpointed_and_resumed(tmp_path):
    windows = bptt_windows()
    config = TrainConfig(epochs=4, lr=1e-2, device="cpu")

    def fit(config, **step_kwargs):
        seed_everything(0)
        return Trainer(CharLSTM(), config, TruncatedBPTTStep(carry_across_epochs=True, **step_kwargs)).fit(windows)

    straight = fit(config)
    for checkpointed, folder in ((True, tmp_path / "with"), (False, tmp_path / "without")):
        fit(replace(config, epochs=2, checkpoint_dir=str(folder)), checkpointed=checkpointed)
        resumed = fit(replace(config, checkpoint_dir=str(folder)), checkpointed=checkpointed)
        assert resumed.resumed_from == 2
        same = without_timings(resumed.history) == without_timings(straight.history)
        assert same == checkpointed  # without the carried state in the checkpoint, epoch 3 starts cold


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
    monkeypatch.setattr(training_device, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype(cpu, replace(CPU, cpu_bf16=True)) == torch.bfloat16
    assert autocast_dtype(cpu, CPU) is None  # opt-in: plain float32 unless asked
    monkeypatch.setattr(training_device, "cpu_has_native_bf16", lambda: False)
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
    monkeypatch.setattr(training_device, "cpu_has_native_bf16", lambda: True)  # emulated where not: slow, same maths
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
