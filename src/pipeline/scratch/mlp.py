"""Unit 7: a multilayer perceptron from scratch — NumPy forward pass, backpropagation, SGD.

A dense network is a chain ``a_0 = X``, ``z_l = a_{l-1} @ W_l + b_l``, ``a_l = act(z_l)``, with
raw scores (logits) from the last layer and softmax cross-entropy on top. Backpropagation runs
the chain rule backwards: the loss gradient with respect to the logits is
``(softmax(logits) - onehot(y)) / B``; each layer turns the gradient at its output into
``dW = a_in.T @ delta``, ``db = delta.sum(0)`` and the gradient at its input,
``delta @ W.T * act'(z)``. Every activation here has a derivative expressible through its own
output, so the forward pass caches only the layer outputs.

``NeuralNetwork`` is the maths; ``train_epoch``/``train`` the mini-batch loop with momentum and a
learning-rate schedule; ``NumpyMLPClassifier`` the scikit-learn-style estimator the Unit 6
evaluation takes. The tests check the gradients against finite differences and
``torch.autograd``, and the update against ``torch.optim.SGD``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pipeline.evaluation import ModelAdapter

ACTIVATIONS = ("relu", "tanh", "sigmoid")
INITS = ("he", "xavier")
LR_SCHEDULES = ("constant", "step", "cosine")



class NeuralNetwork:
    """A dense feed-forward network with a softmax cross-entropy head.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from input to output, e.g. ``(784, 512, 256, 10)``: two hidden layers.
    activation : {"relu", "tanh", "sigmoid"}
        Non-linearity after every hidden layer; the last layer gives raw logits.
    init : {"he", "xavier"}
        Weights drawn from ``N(0, 2 / fan_in)`` (He, for ReLU) or ``N(0, 2 / (fan_in + fan_out))``
        (Xavier/Glorot, for tanh and sigmoid); biases start at zero.
    dtype : numpy float type
        float32 for training speed, float64 for gradient checks.
    seed : int
        Seeds the initial weights. They are drawn in float64 and then cast, so the same seed
        gives the same network in either dtype, up to rounding.

    Attributes
    ----------
    weights : list of ndarray, shapes (n_in, n_out) per layer
    biases : list of ndarray, shapes (n_out,)
    velocities : list of (ndarray, ndarray)
        Momentum buffers for ``(W, b)`` of each layer, used by `update_weights`.
    """

    def __init__(self, layer_sizes: Sequence[int], activation="relu", init="he", dtype=np.float32, seed=0):
        if len(layer_sizes) < 2 or any(int(n) < 1 for n in layer_sizes):
            raise ValueError(f"layer_sizes needs an input and an output width, all >= 1; got {layer_sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.activation = activation
        self.init = init
        self.dtype = np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.weights, self.biases = [], []
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            variance = 2.0 / fan_in if init == "he" else 2.0 / (fan_in + fan_out)
            self.weights.append(rng.normal(0.0, math.sqrt(variance), size=(fan_in, fan_out)).astype(self.dtype))
            self.biases.append(np.zeros(fan_out, dtype=self.dtype))
        self.velocities = [(np.zeros_like(W), np.zeros_like(b)) for W, b in zip(self.weights, self.biases)]
        self._cache = None

    def forward(self, X, *, cache: bool = True) -> np.ndarray:
        """Logits for X of shape (B, n_in): shape (B, n_out).

        With ``cache`` (the default) the layer outputs are kept for the next `backward`;
        prediction passes ``cache=False`` so nothing is held.
        """
        a = np.asarray(X, dtype=self.dtype)  # (B, n_in)
        outputs = [a]
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            z = a @ W  # (B, H)
            z += b
            a = _activate(z, self.activation)  # in place: z is not needed again
            outputs.append(a)
        logits = a @ self.weights[-1]  # (B, K)
        logits += self.biases[-1]
        if cache:
            self._cache = (outputs, logits)
        return logits

    def backward(self, y) -> list[tuple[np.ndarray, np.ndarray]]:
        """Gradients of the mean cross-entropy of the last `forward` batch with labels y (B,).

        ``y`` holds class indices ``0 .. n_out - 1``. Returns ``[(dW, db), ...]`` per layer,
        the shapes of ``weights`` and ``biases``.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs the activations of a forward() pass with cache=True first")
        outputs, logits = self._cache
        n = len(logits)
        # d(mean CE)/d logits = (softmax - onehot) / B
        delta = softmax(logits)  # (B, K)
        delta[np.arange(n), y] -= 1.0
        delta /= n
        grads = []
        for layer in reversed(range(len(self.weights))):
            a_in = outputs[layer]  # (B, n_in) of this layer
            grads.append((a_in.T @ delta, delta.sum(axis=0)))  # (n_in, n_out), (n_out,)
            if layer > 0:  # no gradient needed for the input data itself
                delta = delta @ self.weights[layer].T  # (B, n_in)
                _multiply_by_derivative(delta, a_in, self.activation)
        grads.reverse()
        return grads

    def update_weights(self, grads, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        """One SGD step with momentum, in place; the same update as ``torch.optim.SGD``.

        Per parameter ``p`` with gradient ``g``: ``g += weight_decay * p`` (weights only),
        ``v = momentum * v + g``, ``p -= lr * v``. That is PyTorch's form (dampening 0,
        nesterov off), not the ``v = momentum * v - lr * g; p += v`` of some textbooks: the two
        agree for a constant lr but differ once the schedule changes it. Biases are not decayed,
        as usual; in torch that is a parameter group with ``weight_decay=0``.
        """
        for W, b, (vW, vb), (dW, db) in zip(self.weights, self.biases, self.velocities, grads):
            vW *= momentum
            vW += dW
            if weight_decay:
                vW += weight_decay * W
            vb *= momentum
            vb += db
            W -= lr * vW
            b -= lr * vb

    def loss(self, X, y) -> float:
        """Mean softmax cross-entropy of X (B, n_in) against labels y (B,); no weight decay term."""
        return cross_entropy(self.forward(X, cache=False), y)

    def __getstate__(self):
        # The cache is scratch space for one backward pass, not part of the model.
        return {**self.__dict__, "_cache": None}


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of (B, K) logits, as a new array."""
    # Subtracting the row max leaves softmax unchanged and keeps exp from overflowing.
    p = logits - logits.max(axis=1, keepdims=True)  # (B, K)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)
    return p


def cross_entropy(logits, y) -> float:
    """Mean of ``-log softmax(logits)[i, y_i]`` over the batch; equals torch's ``F.cross_entropy``."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # (B, K)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1))  # (B,)
    return float(np.mean(log_normaliser - shifted[np.arange(len(y)), y]))


def _activate(z, activation: str) -> np.ndarray:
    """Apply the activation to z in place and return it."""
    if activation == "relu":
        np.maximum(z, 0, out=z)
    elif activation == "tanh":
        np.tanh(z, out=z)
    else:
        # sigmoid(z) = (1 + tanh(z / 2)) / 2: the same function without exp overflowing.
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
    return z


def _multiply_by_derivative(delta, a, activation: str) -> None:
    """delta *= act'(z), with the derivative written through the output a = act(z)."""
    if activation == "relu":
        np.multiply(delta, a > 0, out=delta)
    elif activation == "tanh":
        delta *= 1.0 - a * a
    else:
        delta *= a * (1.0 - a)


def shift_images(X, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each flattened square image of X (B, side*side) moved by a random whole-pixel offset.

    Offsets are drawn independently per image and axis from ``-max_shift .. max_shift``; the
    pixels shifted in are 0 (MNIST's background). A cheap augmentation: a digit moved by a pixel
    or two is the same digit, and a dense network does not know that by itself.
    """
    n, n_pixels = X.shape
    side = math.isqrt(n_pixels)
    if side * side != n_pixels:
        raise ValueError(f"shift augmentation needs square images flattened; {n_pixels} features is not a square")
    k = max_shift
    padded = np.zeros((n, side + 2 * k, side + 2 * k), dtype=X.dtype)  # (B, side + 2k, side + 2k)
    padded[:, k : k + side, k : k + side] = X.reshape(n, side, side)
    windows = sliding_window_view(padded, (side, side), axis=(1, 2))  # (B, 2k+1, 2k+1, side, side), a view
    dy, dx = rng.integers(0, 2 * k + 1, size=(2, n))
    return windows[np.arange(n), dy, dx].reshape(n, n_pixels)


def learning_rate(schedule: str, base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate for ``epoch`` (0-based) of ``epochs``.

    "constant": ``base_lr``; "step": divided by 10 after half and again after three quarters
    of the epochs; "cosine": ``base_lr * (1 + cos(pi * epoch / epochs)) / 2``, from base_lr
    towards 0.
    """
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * 0.1 ** sum(epoch >= m * epochs for m in (0.5, 0.75))
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


def train_epoch(
    net: NeuralNetwork,
    X,
    y,
    batch_size: int,
    lr: float,
    momentum: float,
    rng: np.random.Generator,
    *,
    weight_decay: float = 0.0,
    max_shift: int = 0,
) -> tuple[float, float]:
    """One pass over X (N, n_in), y (N,) in shuffled mini-batches, one SGD step per batch.

    Returns the mean loss and accuracy over the epoch's batches, measured on each batch just
    before its step (the running figures Keras reports, cheaper than a second pass).
    """
    n = len(X)
    order = rng.permutation(n)
    total_loss, correct = 0.0, 0
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        X_batch, y_batch = X[batch], y[batch]  # (B, n_in), (B,)
        if max_shift:
            X_batch = shift_images(X_batch, max_shift, rng)
        logits = net.forward(X_batch)  # (B, K)
        total_loss += cross_entropy(logits, y_batch) * len(batch)
        correct += int(np.count_nonzero(logits.argmax(axis=1) == y_batch))
        net.update_weights(net.backward(y_batch), lr, momentum, weight_decay)
    return total_loss / n, correct / n


def train(
    net: NeuralNetwork,
    X,
    y,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    lr_schedule: str = "cosine",
    max_shift: int = 0,
    seed: int = 0,
    X_val=None,
    y_val=None,
    score_train_rows: int = 0,
    on_epoch_end: Callable[[int, dict[str, list[float]]], None] | None = None,
) -> dict[str, list[float]]:
    """Train ``net`` in place for ``epochs`` epochs with a learning-rate schedule.

    X (N, n_in) and y (N,) class indices; ``X_val``/``y_val`` likewise, scored after each epoch.
    ``score_train_rows`` > 0 also scores the first that many training rows after each epoch, as
    they are (no shift) with the weights of that moment: a training curve measured the way the
    validation one is, where the running figures mix a whole epoch of changing weights and
    shifted images. Scoring reads the weights only: training is the same with or without it.
    ``on_epoch_end(epoch, history)`` is called after each epoch, e.g. to log progress.

    Returns
    -------
    dict
        Per-epoch lists: ``lr``, ``loss``, ``accuracy`` (running, see `train_epoch`); with
        ``score_train_rows``, ``train_loss`` and ``train_accuracy``; with validation data,
        ``val_loss`` and ``val_accuracy``.
    """
    rng = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"lr": [], "loss": [], "accuracy": []}
    scored = {}
    if score_train_rows > 0:
        scored["train"] = (X[:score_train_rows], y[:score_train_rows])
    if X_val is not None:
        scored["val"] = (X_val, y_val)
    for prefix in scored:
        history.update({f"{prefix}_loss": [], f"{prefix}_accuracy": []})
    for epoch in range(epochs):
        epoch_lr = learning_rate(lr_schedule, lr, epoch, epochs)
        loss, accuracy = train_epoch(
            net, X, y, batch_size, epoch_lr, momentum, rng, weight_decay=weight_decay, max_shift=max_shift
        )
        history["lr"].append(epoch_lr)
        history["loss"].append(loss)
        history["accuracy"].append(accuracy)
        if not np.isfinite(loss):
            raise FloatingPointError(f"training diverged in epoch {epoch} (loss {loss}); lower lr={lr}")
        for prefix, (X_scored, y_scored) in scored.items():
            logits = predict_logits(net, X_scored)
            history[f"{prefix}_loss"].append(cross_entropy(logits, y_scored))
            history[f"{prefix}_accuracy"].append(float(np.mean(logits.argmax(axis=1) == y_scored)))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history


def predict_logits(net: NeuralNetwork, X, chunk_size: int = 4096) -> np.ndarray:
    """Logits (N, K) for X (N, n_in), in chunks so large inputs need little extra memory."""
    return np.concatenate([net.forward(X[i : i + chunk_size], cache=False) for i in range(0, len(X), chunk_size)])


class NumpyMLPClassifier(ClassifierMixin, ModelAdapter):
    """Multilayer perceptron classifier on `NeuralNetwork`, with the scikit-learn contract.

    Defaults are Unit 7's full settings (``pipeline.lessons.mnist_mlp.FULL``) without its shift
    augmentation, which only makes sense for images: 98.3 % on the full MNIST as they are, 98.9 %
    with ``max_shift=2``.

    Parameters
    ----------
    hidden : tuple of int, default=(512, 256)
        Widths of the hidden layers.
    activation : {"relu", "tanh", "sigmoid"}, default="relu"
    init : {"auto", "he", "xavier"}, default="auto"
        "auto" is He for ReLU and Xavier for tanh and sigmoid.
    epochs : int, default=20
    batch_size : int, default=128
    lr : float, default=0.05
        Learning rate of the first epoch; ``lr_schedule`` takes it from there.
    momentum : float, default=0.9
    weight_decay : float, default=5e-4
        L2 decay added to the weights' gradients (torch's ``weight_decay``).
    lr_schedule : {"constant", "step", "cosine"}, default="cosine"
        Per-epoch schedule, see `learning_rate`.
    max_shift : int, default=0
        Random shifts of up to this many pixels per training image (0 = no augmentation);
        needs square images flattened, like MNIST's (n, 784).
    seed : int, default=0
        Seeds the initial weights, the shuffling and the shifts.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    net_ : NeuralNetwork
    history_ : dict of per-epoch lists, see `train`
    n_features_in_ : int
    """

    def __init__(
        self,
        hidden=(512, 256),
        activation="relu",
        init="auto",
        epochs=20,
        batch_size=128,
        lr=0.05,
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule="cosine",
        max_shift=0,
        seed=0,
    ):
        self.hidden = hidden
        self.activation = activation
        self.init = init
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.max_shift = max_shift
        self.seed = seed

    def fit(self, X, y, X_val=None, y_val=None, on_epoch_end=None, score_train_rows=0):
        """Train on X (n_samples, n_features), ideally scaled to [0, 1], and labels y (n_samples,).

        ``X_val``, ``y_val`` (optional) are scored after every epoch into ``history_``, and so are
        the first ``score_train_rows`` training rows; both are only measured (see `train`).
        ``on_epoch_end`` goes to `train`. Returns self.
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"Need at least 2 classes to fit, got only one class: {self.classes_}.")
        val_codes = None
        if X_val is not None:
            X_val = validate_data(self, X_val, dtype=np.float32, reset=False)
            val_codes = self._codes(np.asarray(y_val))
        init = self.init
        if init == "auto":
            init = "he" if self.activation == "relu" else "xavier"
        self.net_ = NeuralNetwork(
            (X.shape[1], *self.hidden, len(self.classes_)), self.activation, init, np.float32, self.seed
        )
        self.history_ = train(
            self.net_,
            X,
            codes,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            lr_schedule=self.lr_schedule,
            max_shift=self.max_shift,
            seed=self.seed,
            X_val=X_val,
            y_val=val_codes,
            score_train_rows=score_train_rows,
            on_epoch_end=on_epoch_end,
        )
        return self

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns ordered as ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return softmax(predict_logits(self.net_, X))

    def predict(self, X):
        """Most probable class for each sample, shape (n_samples,)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def _codes(self, y) -> np.ndarray:
        codes = np.searchsorted(self.classes_, y)
        unseen = (codes >= len(self.classes_)) | (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y)
        if unseen.any():
            raise ValueError(f"y_val has labels not seen in training: {np.unique(y[unseen]).tolist()}")
        return codes
