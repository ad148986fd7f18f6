"""Unit 7: the NumPy network against finite differences and PyTorch as oracles.

Like micrograd: build the same network in torch with our weights copied in, run the same batch,
assert the same loss, gradients (relative error <= 1e-6 in float64) and SGD-with-momentum steps.
"""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipeline.data import load_dataset
from pipeline.evaluation import evaluate
from pipeline.lessons.mnist_mlp import FULL as UNIT07_FULL
from pipeline.lessons.mnist_mlp import QUICK as UNIT07_QUICK
from pipeline.scratch.mlp import (
    NeuralNetwork,
    NumpyMLPClassifier,
    cross_entropy,
    learning_rate,
    predict_logits,
    shift_images,
    train,
    train_epoch,
)

SIZES = (7, 6, 5, 4)  # two hidden layers: enough to exercise every backward step
TORCH_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def batch(n=8, n_in=SIZES[0], n_classes=SIZES[-1], seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.integers(0, n_classes, size=n)


def float64_net(activation, seed=0):
    net = NeuralNetwork(SIZES, activation, init="xavier", dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:  # non-zero biases, so their gradients are checked on general values
        b += rng.normal(scale=0.1, size=b.shape)
    return net


def torch_forward(params, X, activation):
    """The same network in torch: params is [(W, b), ...] with W (n_in, n_out) as ours."""
    a = X
    for i, (W, b) in enumerate(params):
        a = a @ W + b
        if i < len(params) - 1:
            a = TORCH_ACTIVATIONS[activation](a)
    return a


def torch_params(net):
    return [
        (torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True))
        for W, b in zip(net.weights, net.biases)
    ]


def relative_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)


def flat_mnist(profile, n_train=None, n_test=None):
    ds = load_dataset("mnist", profile)
    (X_train, y_train), (X_test, y_test) = ds.splits["train"], ds.splits["test"]
    X_train = X_train[:n_train].reshape(-1, 784).astype(np.float32) / 255
    X_test = X_test[:n_test].reshape(-1, 784).astype(np.float32) / 255
    return X_train, y_train[:n_train], X_test, y_test[:n_test]


# --- gradients ------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_backward_matches_central_finite_differences(activation):
    net = float64_net(activation)
    X, y = batch()
    net.forward(X)
    grads = net.backward(y)
    eps = 1e-6
    for (dW, db), W, b in zip(grads, net.weights, net.biases):
        for param, grad in ((W, dW), (b, db)):
            numeric = np.zeros_like(param)
            for i in np.ndindex(param.shape):
                original = param[i]
                param[i] = original + eps
                up = net.loss(X, y)
                param[i] = original - eps
                down = net.loss(X, y)
                param[i] = original
                numeric[i] = (up - down) / (2 * eps)
            assert relative_error(grad, numeric) <= 1e-6


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_loss_and_backward_match_torch_autograd(activation):
    net = float64_net(activation)
    X, y = batch(n=16)
    logits = net.forward(X)
    grads = net.backward(y)

    params = torch_params(net)
    torch_logits = torch_forward(params, torch.tensor(X), activation)
    torch_loss = torch.nn.functional.cross_entropy(torch_logits, torch.tensor(y))
    torch_loss.backward()

    assert relative_error(logits, torch_logits.detach().numpy()) <= 1e-12
    assert cross_entropy(logits, y) == pytest.approx(torch_loss.item(), rel=1e-12)
    assert net.loss(X, y) == pytest.approx(torch_loss.item(), rel=1e-12)
    for (dW, db), (W, b) in zip(grads, params):
        assert relative_error(dW, W.grad.numpy()) <= 1e-6
        assert relative_error(db, b.grad.numpy()) <= 1e-6


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_update_weights_matches_torch_sgd_with_momentum(weight_decay):
    """Our v = mu v + g (+ wd W), p -= lr v is torch's SGD; biases form a group without decay."""
    net = float64_net("tanh")
    params = torch_params(net)
    optimizer = torch.optim.SGD(
        [
            {"params": [W for W, _ in params], "weight_decay": weight_decay},
            {"params": [b for _, b in params], "weight_decay": 0.0},
        ],
        lr=0.1,
        momentum=0.9,
    )
    for step, lr in enumerate([0.1, 0.1, 0.05, 0.02]):  # a changing lr, as a schedule gives
        X, y = batch(seed=step)
        net.forward(X)
        net.update_weights(net.backward(y), lr=lr, momentum=0.9, weight_decay=weight_decay)

        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(torch_forward(params, torch.tensor(X), "tanh"), torch.tensor(y)).backward()
        optimizer.step()

    for W, b, (torch_W, torch_b) in zip(net.weights, net.biases, params):
        assert relative_error(W, torch_W.detach().numpy()) <= 1e-12
        assert relative_error(b, torch_b.detach().numpy()) <= 1e-12


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="forward"):
        NeuralNetwork(SIZES).backward(np.zeros(3, dtype=int))


# --- shapes, initialisation, dtypes ---------------------------------------------------------


def test_shapes_and_dtype():
    net = NeuralNetwork(SIZES, dtype=np.float32)
    X, y = batch(n=9)
    logits = net.forward(X)
    grads = net.backward(y)
    assert logits.shape == (9, SIZES[-1]) and logits.dtype == np.float32
    assert [W.shape for W in net.weights] == [(7, 6), (6, 5), (5, 4)]
    assert [(dW.shape, db.shape) for dW, db in grads] == [((7, 6), (6,)), ((6, 5), (5,)), ((5, 4), (4,))]
    assert all(dW.dtype == np.float32 and db.dtype == np.float32 for dW, db in grads)


@pytest.mark.parametrize(("init", "variance"), [("he", 2 / 400), ("xavier", 2 / 700)])
def test_initialisation_variance(init, variance):
    net = NeuralNetwork((400, 300), init=init, dtype=np.float64)
    assert net.weights[0].var() == pytest.approx(variance, rel=0.02)
    assert not net.biases[0].any()


def test_same_seed_same_network_in_either_dtype():
    net32, net64 = NeuralNetwork(SIZES, dtype=np.float32), NeuralNetwork(SIZES, dtype=np.float64)
    for W32, W64 in zip(net32.weights, net64.weights):
        np.testing.assert_allclose(W32, W64, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"activation": "gelu"}, "activation"), ({"init": "lecun"}, "init"), ({"layer_sizes": (5,)}, "layer_sizes")],
)
def test_invalid_network_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeuralNetwork(**{"layer_sizes": SIZES, **kwargs})


# --- training --------------------------------------------------------------------------------


def test_training_reduces_the_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0)  # three non-linear classes
    net = NeuralNetwork((10, 32, 3), seed=0)
    before = net.loss(X, y)
    history = train(net, X, y, epochs=20, batch_size=32, lr=0.1, momentum=0.9, X_val=X, y_val=y)
    assert net.loss(X, y) < 0.5 * before
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    assert set(history) == {"lr", "loss", "accuracy", "val_loss", "val_accuracy"}


def test_train_epoch_visits_every_sample_once_per_epoch():
    X, y = batch(n=50)
    net = NeuralNetwork(SIZES)
    _, accuracy = train_epoch(net, X, y, batch_size=16, lr=0.0, momentum=0.0, rng=np.random.default_rng(0))
    # lr=0: the weights never move, so the running accuracy is that of the initial network
    assert accuracy == np.mean(net.forward(X).argmax(axis=1) == y)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", [0.1, 0.1, 0.1, 0.1]),
        ("step", [0.1, 0.1, 0.01, 0.001]),
        ("cosine", [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05, 0.1 * (1 + np.cos(3 * np.pi / 4)) / 2]),
    ],
)
def test_learning_rate_schedules(schedule, expected):
    assert [learning_rate(schedule, 0.1, e, 4) for e in range(4)] == pytest.approx(expected)


def test_shift_images_moves_whole_images_within_bounds():
    rng = np.random.default_rng(0)
    image = np.zeros((28, 28), dtype=np.float32)
    image[10:14, 12:15] = 1.0
    shifted = shift_images(np.tile(image.ravel(), (200, 1)), 2, rng).reshape(200, 28, 28)
    assert (shifted.sum(axis=(1, 2)) == image.sum()).all()  # the digit is moved, never cut
    rows, cols = np.nonzero(shifted.sum(axis=2))[1], np.nonzero(shifted.sum(axis=1))[1]
    assert rows.min() == 8 and rows.max() == 15 and cols.min() == 10 and cols.max() == 16
    with pytest.raises(ValueError, match="square"):
        shift_images(np.zeros((2, 10)), 1, rng)


# --- the estimator --------------------------------------------------------------------------


@parametrize_with_checks([NumpyMLPClassifier(hidden=(16,), epochs=5)])
def test_classifier_passes_sklearn_check_estimator(estimator, check):
    check(estimator)


def test_classifier_evaluates_on_mnist_subsample():
    X_train, y_train, X_test, y_test = flat_mnist("quick", n_train=2000, n_test=1000)
    model = NumpyMLPClassifier(hidden=(128,), epochs=8)
    result = evaluate(model, X_train, y_train, X_test, y_test, cv=0)
    assert result.metrics["test_accuracy"] > 0.85
    assert "roc_auc" in result.metric_names
    fitted = result.model
    assert len(fitted.history_["loss"]) == 8
    proba = fitted.predict_proba(X_test[:5])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(axis=1), 1.0)


def test_classifier_history_records_validation_and_string_labels():
    X, y = batch(n=60, n_in=16, n_classes=3)
    labels = np.array(["cat", "dog", "eel"])[y]
    model = NumpyMLPClassifier(hidden=(8,), epochs=3, max_shift=1).fit(X, labels, X_val=X[:10], y_val=labels[:10])
    assert list(model.classes_) == ["cat", "dog", "eel"]
    assert set(model.predict(X)) <= set(model.classes_)
    assert len(model.history_["val_accuracy"]) == 3
    with pytest.raises(ValueError, match="not seen"):
        model.fit(X, labels, X_val=X[:2], y_val=np.array(["cat", "fox"]))


def test_classifier_survives_clone_and_pickle():
    X, y = batch(n=40, n_in=9, n_classes=3)
    model = NumpyMLPClassifier(hidden=(6,), epochs=2, lr=0.1)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.predict(X)
    model.fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert restored.net_._cache is None
    refit = clone(model).fit(X, y)  # same seed, same data: the same network
    np.testing.assert_array_equal(refit.predict_proba(X), model.predict_proba(X))


def test_unit_settings_are_valid_classifier_params():
    for settings in (UNIT07_FULL, UNIT07_QUICK):
        assert NumpyMLPClassifier(**settings).get_params() == settings
    assert NumpyMLPClassifier().get_params() == {**UNIT07_FULL, "max_shift": 0}  # augmentation is opt-in


def test_validation_is_only_measured_training_is_unchanged():
    X, y = batch(n=80, n_in=16, n_classes=3)
    settings = {"hidden": (8,), "epochs": 4, "batch_size": 16, "max_shift": 1, "seed": 3}
    plain = NumpyMLPClassifier(**settings).fit(X, y)
    validated = NumpyMLPClassifier(**settings).fit(X, y, X_val=X[60:], y_val=y[60:], score_train_rows=30)
    for W, W_val in zip(plain.net_.weights, validated.net_.weights):
        np.testing.assert_array_equal(W, W_val)
    assert plain.history_["loss"] == validated.history_["loss"]
    assert set(validated.history_) - set(plain.history_) == {"train_loss", "train_accuracy", "val_loss",
                                                              "val_accuracy"}
    assert all(len(validated.history_[key]) == 4 for key in validated.history_)
    for prefix, rows in (("val", slice(60, None)), ("train", slice(0, 30))):  # the end-of-epoch weights
        expected = cross_entropy(predict_logits(validated.net_, X[rows].astype(np.float32)), y[rows])
        assert validated.history_[f"{prefix}_loss"][-1] == pytest.approx(expected, rel=1e-6)


def test_unit07_trains_with_a_held_out_history_and_shows_progress_only_on_a_terminal():
    import io

    from pipeline.features import Split
    from pipeline.lessons.mnist_mlp import OURS, train_mlp

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    X, y = batch(n=60, n_in=16, n_classes=3)
    split = Split(X[:40], X[40:], y[:40], y[40:])
    quiet, terminal = io.StringIO(), Terminal()
    model = train_mlp(NumpyMLPClassifier(hidden=(8,), epochs=2), split, stream=quiet)[OURS]
    assert quiet.getvalue() == "" and len(model.history_["val_accuracy"]) == 2
    train_mlp(NumpyMLPClassifier(hidden=(8,), epochs=2), split, stream=terminal)
    lines = [line for line in terminal.getvalue().splitlines() if "epoch" in line]
    assert any("NumPy MLP epoch 2/2" in line and "val_loss" in line for line in lines)
