"""Unit 9 — recurrent networks: gradients through time, a character LSTM, an LSTM price forecast.

Three parts, each plain functions over the library:

- **Gradients through time.** ``gradient_through_time`` back-propagates one loss at the last step
  of a long sequence and measures ‖∂L/∂h_t‖ at every earlier step, for a vanilla RNN, an LSTM and
  a GRU; ``exploding_runs`` trains a ReLU RNN with oversized recurrent weights with and without
  gradient clipping, in the shared loop.
- **Tiny Shakespeare.** ``train_char_lm``: a `CharLSTM` trained with truncated BPTT
  (`LanguageModelStep`) on the first 90 % of the text, scored in nats per character on the last
  10 %, and sampled from "To be or" at several temperatures.
- **MSFT prices.** ``price_windows`` cuts the closes into 30-day windows and a chronological
  train/val/test split; three forecasters with one contract — persistence, linear regression on
  the window and `LSTMForecaster` — go through the shared evaluation, plus directional accuracy.
  The LSTM and the linear model see the window as daily log returns standardised by a scaler
  fitted on the training windows only; the early stopping reads the validation period only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import RegressorMixin
from sklearn.linear_model import LinearRegression
from torch import nn

from pipeline.data.chars import CharVocab, char_split
from pipeline.evaluation import ModelAdapter
from pipeline.models.rnn import CharLSTM, PriceLSTM, RNNRegressor, predict_next_char, predict_price
from pipeline.training import ClassificationStep, Step, TrainConfig, Trainer
from pipeline.training.callbacks import EarlyStopping, MLflowLogger, ProgressBar
from pipeline.training.device import one_thread
from pipeline.training.lm import LanguageModelStep, evaluate_lm, lm_batches, sample

PROMPT = "To be or"
TEMPERATURES = (0.5, 0.8, 1.0)
CHAR_LM = "char_lstm"
PRICE_MODELS = ("persistence", "linear regression (window)", "LSTM")

# Per profile. Full: sized so the char LSTM reaches val <= 1.60 nats/char within ~25 min on one
# CPU thread shared with other work (1 x 256 LSTM: ~20,000 chars/s for training on an idle thread;
# batches of 32 x 100 characters give ~310 updates an epoch: updates, not characters, were the
# bottleneck of a 1 x 512 trial at 64 x 100, at 2.04 nats/char after one epoch).
# Quick is a smoke run: a slice of the text, a small net, a few hundred updates.
CHAR_SETTINGS = {
    "quick": {"chars": 120_000, "embed_dim": 32, "hidden": 128, "layers": 1, "dropout": 0.0, "seq_len": 50,
              "batch_size": 32, "epochs": 3, "lr": 3e-3, "sample_chars": 200},
    "full": {"chars": None, "embed_dim": 64, "hidden": 256, "layers": 1, "dropout": 0.0, "seq_len": 100,
             "batch_size": 32, "epochs": 10, "lr": 3e-3, "sample_chars": 500},
}
PRICE_SETTINGS = {
    "quick": {"hidden": 16, "epochs": 4, "patience": 3},
    "full": {"hidden": 32, "epochs": 60, "patience": 8},
}
VAL_FRACTION, TEST_FRACTION = 0.15, 0.15

CAPTIONS = {
    "gradient_through_time": "‖∂L/∂h_t‖ at every step t of one sequence, for a loss at the last step only "
                             "(log scale; untrained nets, same inputs). Look at how fast each line falls going "
                             "back in time: the vanilla RNN's gradient shrinks by a roughly constant factor per "
                             "step (a product of W_hh and tanh' terms), so early steps get almost no learning "
                             "signal. The LSTM's cell state is updated additively, scaled by the forget gate "
                             "only, so with the forget gate open (bias 1, the usual init) its gradient decays "
                             "far more slowly; the untrained GRU (update gate near 0.5) lies in between.",
    "exploding_gradients": "A ReLU RNN whose recurrent weights have spectral radius above 1, trained with the "
                           "same SGD settings with and without clip_grad_norm_ (left: training loss, right: the "
                           "gradient norm before clipping; log scales). Look for the unclipped run's loss "
                           "jumping to huge values or NaN (the line stops) after a few updates, while the "
                           "clipped run's steps stay bounded and its loss comes down.",
    "char_lm_curve": "Per-epoch loss of the character LSTM in nats per character, training (windows "
                     "of the first 90 % of the text) and validation (the last 10 %, never trained on). The "
                     "dashed line is the 1.60 target. A gap opening between the two lines is the model "
                     "starting to memorise the training text.",
    "price_forecasts": "Next-day MSFT closes in the test period (never used for training or early "
                       "stopping) and the three forecasts; the right panel zooms in on the last 60 days. Look "
                       "for how each forecast trails the actual price by a day: all three are close to "
                       "'tomorrow = today', which is why their errors are so similar.",
}






# --- gradients through time ------------------------------------------------------------------------


def _cell_rollout(cell: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run a torch cell over x (B, T, D) step by step; returns every h_t (kept for .grad) and h_T."""
    batch, hidden = x.shape[0], cell.hidden_size
    h = torch.zeros(batch, hidden, dtype=x.dtype)
    c = torch.zeros(batch, hidden, dtype=x.dtype)
    hs = []
    for t in range(x.shape[1]):
        if isinstance(cell, nn.LSTMCell):
            h, c = cell(x[:, t], (h, c))
        else:
            h = cell(x[:, t], h)
        h.retain_grad()  # a non-leaf's gradient is dropped unless asked for
        hs.append(h)
    return hs, h


def gradient_through_time(steps: int = 100, hidden_size: int = 32, input_size: int = 8, batch: int = 16,
                          seed: int = 0) -> pd.DataFrame:
    """‖∂L/∂h_t‖ (mean over the batch) for t = 1..steps, for an RNN, an LSTM and a GRU cell.

    The loss depends on the last hidden state only (a fixed random projection of h_T), so
    ∂L/∂h_t is what reaches step t by back-propagation through time. The LSTM's forget-gate bias
    is set to 1, the usual initialisation. Returns a frame with columns t, rnn, lstm, gru.
    """
    torch.manual_seed(seed)
    x = torch.randn(batch, steps, input_size, dtype=torch.float64)  # float64: float32 underflows to 0
    cells = {"rnn": nn.RNNCell(input_size, hidden_size), "lstm": nn.LSTMCell(input_size, hidden_size),
             "gru": nn.GRUCell(input_size, hidden_size)}
    cells = {name: cell.double() for name, cell in cells.items()}
    with torch.no_grad():  # forget gate is the 2nd of the (i, f, g, o) blocks
        cells["lstm"].bias_ih[hidden_size: 2 * hidden_size] = 1.0
        cells["lstm"].bias_hh[hidden_size: 2 * hidden_size] = 0.0
    readout = torch.randn(hidden_size, dtype=torch.float64)
    table = {"t": np.arange(1, steps + 1)}
    for name, cell in cells.items():
        hs, last = _cell_rollout(cell, x)
        (last @ readout).sum().backward()
        table[name] = np.array([float(h.grad.norm(dim=1).mean()) for h in hs])
    return pd.DataFrame(table)


class GradNormStep(Step):
    """Mean-squared error on ``(x, y)``, recording the gradient norm *before* any clipping."""

    def training_step(self, trainer, batch):
        x, y = batch
        loss = F.mse_loss(trainer.model(x), y)
        params = [p for p in trainer.model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, retain_graph=True)
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        trainer.optimize(loss)  # clips to config.grad_clip, when set
        return {"loss": loss.detach(), "grad_norm": norm}


def exploding_runs(updates: int = 40, steps: int = 40, radius: float = 1.8, clip: float = 1.0, lr: float = 0.01,
                   seed: int = 0) -> pd.DataFrame:
    """Train the same ReLU RNN (recurrent weights: an orthogonal matrix × ``radius``) with SGD on one
    batch, without and with ``clip_grad_norm_`` at ``clip``. The task: predict the mean of a
    sequence of ``steps`` numbers. Returns one row per update and run: run, update, loss, grad_norm
    (before clipping; NaN/inf where the run blew up)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, steps, 1, generator=gen)
    y = x.mean(dim=(1, 2))
    rows = []
    for run, grad_clip in (("no clipping", None), (f"clip_grad_norm_ {clip:g}", clip)):
        torch.manual_seed(seed)
        model = RNNRegressor(1, 32, nonlinearity="relu")
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(seed)))
            model.rnn.weight_hh_l0.copy_(radius * q)  # every direction grows by `radius` per step
        config = TrainConfig(epochs=updates, batch_size=64, lr=lr, optimizer="sgd", momentum=0.0,
                             grad_clip=grad_clip, seed=seed, label=run)
        history = Trainer(model, config, GradNormStep(), callbacks=[]).fit([(x, y)]).history
        rows += [{"run": run, "update": r["epoch"], "loss": r["train_loss"], "grad_norm": r["train_grad_norm"]}
                 for r in history]
    return pd.DataFrame(rows)


def gradient_figure(norms: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    labels = {"rnn": "vanilla RNN (tanh)", "lstm": "LSTM (forget bias 1)", "gru": "GRU"}
    for name, label in labels.items():
        ax.semilogy(norms["t"], norms[name], label=label)
    ax.set(xlabel="timestep t (loss at the last step)", ylabel="‖∂L/∂h_t‖",
           title="How much gradient reaches each step")
    ax.legend()
    fig.tight_layout()
    return fig


def exploding_figure(runs: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for (run, rows), style in zip(runs.groupby("run", sort=False), ({"marker": "o", "markersize": 8},
                                                                    {"marker": ".", "linestyle": "--"}), strict=False):
        finite = rows.replace([np.inf, -np.inf], np.nan)
        axes[0].semilogy(finite["update"], finite["loss"], label=run, **style)
        axes[1].semilogy(finite["update"], finite["grad_norm"], label=run, **style)
        blown = rows[~np.isfinite(rows["loss"])]
        if len(blown):  # NaN and inf do not plot: mark where the run stopped being a number
            for ax in axes:
                ax.axvline(blown["update"].iloc[0], color="red", linestyle=":")
            axes[0].annotate(f"{run}: loss NaN/inf from update {int(blown['update'].iloc[0])}",
                             (blown["update"].iloc[0], 1.0), xytext=(8, 0), textcoords="offset points",
                             color="red", xycoords=("data", "axes fraction"), va="top")
    axes[0].set(xlabel="update", ylabel="training loss (MSE)", title="Loss")
    axes[1].set(xlabel="update", ylabel="‖gradient‖ before clipping", title="Gradient norm")
    axes[0].legend()
    fig.tight_layout()
    return fig


# --- Tiny Shakespeare ------------------------------------------------------------------------------


@dataclass
class CharLM:
    """A trained character LSTM and what the unit reports about it."""

    model: CharLSTM
    vocab: CharVocab
    settings: dict
    history: list[dict[str, float]]
    val_nats: float
    samples: dict[float, str]
    seconds: float
    train_chars: int
    val_chars: int
    model_kwargs: dict = field(default_factory=dict)

    @property
    def val_bits(self) -> float:
        return self.val_nats / math.log(2)

    def torch_model(self):
        """The model to register: next-character ids for (n, T) contexts of ids, the vocabulary as meta."""
        from pipeline.training.export import TorchModel

        return TorchModel(self.model, CharLSTM, self.model_kwargs, predict_next_char,
                          {"vocab": self.vocab.to_json(), "prompt": PROMPT})

    def example_contexts(self, n: int = 3, length: int = 16) -> np.ndarray:
        """A few (n, length) contexts of ids from the prompt's vocabulary, for the model signature."""
        ids = self.vocab.encode((PROMPT + " not to be") * 4)[:length]
        return np.stack([np.roll(ids, k) for k in range(n)])


def char_settings(profile: str, epochs: int | None = None, hidden: int | None = None,
                  seq_len: int | None = None) -> dict:
    """The profile's char-LM settings with the unit's overrides."""
    settings = dict(CHAR_SETTINGS[profile])
    for key, value in (("epochs", epochs), ("hidden", hidden), ("seq_len", seq_len)):
        if value is not None:
            settings[key] = value
    return settings


def train_char_lm(text: str, settings: dict, temperatures=TEMPERATURES, seed: int = 0) -> CharLM:
    """Train a `CharLSTM` on the first 90 % of ``text`` (cut to ``settings["chars"]``) with TBPTT.

    The vocabulary is fitted on the training text; the validation loss (nats per character, the
    state carried across windows) is on the last 10 %. The best epoch's weights are kept (early
    stopping by validation loss, no patience: all epochs run). Samples start from `PROMPT`.
    """
    if settings["chars"] is not None:
        text = text[: settings["chars"]]
    train_text, val_text = char_split(text, 0.1)
    vocab = CharVocab.fit(train_text)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    batch, seq_len = settings["batch_size"], settings["seq_len"]
    val_batch = max(1, min(16, len(val_ids) // (4 * seq_len)))
    kwargs = {"vocab_size": len(vocab), "embed_dim": settings["embed_dim"], "hidden_size": settings["hidden"],
              "num_layers": settings["layers"], "dropout": settings["dropout"]}
    torch.manual_seed(seed)
    model = CharLSTM(**kwargs)
    config = TrainConfig(epochs=settings["epochs"], batch_size=batch, lr=settings["lr"], optimizer="adamw",
                         scheduler="cosine", grad_clip=1.0, seed=seed, label="char LSTM")
    started = time.perf_counter()
    with one_thread():
        result = Trainer(model, config, LanguageModelStep(),
                         callbacks=[ProgressBar(), MLflowLogger(), EarlyStopping()]).fit(
            lm_batches(train_ids, batch, seq_len), X_val=lm_batches(val_ids, val_batch, seq_len))
        seconds = time.perf_counter() - started
        model.cpu()
        val_nats = evaluate_lm(model, val_ids, val_batch, seq_len)
        samples = {t: sample(model, vocab, PROMPT, settings["sample_chars"], temperature=t, seed=seed)
                   for t in temperatures}
    return CharLM(model, vocab, settings, result.history, val_nats, samples, seconds, len(train_text),
                  len(val_text), kwargs)


def char_history(lm: CharLM) -> pd.DataFrame:
    """Per epoch: train and validation loss in nats and bits per character, seconds, chars/s."""
    rows = [{"epoch": r["epoch"], "train_nats": r["train_loss"], "val_nats": r["val_loss"],
             "train_bits": r["train_bits"], "val_bits": r["val_bits"], "seconds": r["seconds"],
             "chars_per_second": r["samples_per_second"] * lm.settings["seq_len"]} for r in lm.history]
    return pd.DataFrame(rows)


def char_curve_figure(lm: CharLM, target: float = 1.60):
    from matplotlib.figure import Figure

    table = char_history(lm)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot(table["epoch"], table["train_nats"], marker="o", label="train")
    ax.plot(table["epoch"], table["val_nats"], marker="o", label="validation")
    ax.axhline(target, linestyle="--", color="grey", label=f"target {target:.2f}")
    ax.set(xlabel="epoch", ylabel="nats per character", title="Character LSTM on Tiny Shakespeare")
    ax.legend()
    fig.tight_layout()
    return fig


# --- MSFT prices -----------------------------------------------------------------------------------


@dataclass
class PriceWindows:
    """30-day windows of closes (n, window) and the next close (n,), split chronologically by the
    target's date; ``dates_*`` are the target days. Every training window (inputs and target)
    lies before ``train_end``; validation and test windows read the days before them, never after."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    dates_train: np.ndarray
    dates_val: np.ndarray
    dates_test: np.ndarray

    @property
    def train_end(self):
        return self.dates_train[-1]


def price_windows(prices: pd.DataFrame, window: int = 30, val_fraction: float = VAL_FRACTION,
                  test_fraction: float = TEST_FRACTION) -> PriceWindows:
    """Windows of ``window`` closes -> the next close, split 70/15/15 (by default) in time order."""
    frame = prices.sort_values("Date")
    closes = frame["Close"].to_numpy(dtype=np.float64)
    dates = frame["Date"].to_numpy()
    n = len(closes)
    n_train = int(n * (1.0 - val_fraction - test_fraction))
    n_val = int(n * val_fraction)
    if n_train <= window + 1:
        raise ValueError(f"{n} days leave no training windows of {window} days")
    targets = np.arange(window, n)  # index of the predicted day
    X = np.lib.stride_tricks.sliding_window_view(closes, window)[: n - window]  # X[k] = closes[k : k + window]
    y = closes[targets]
    parts = [targets < n_train, (targets >= n_train) & (targets < n_train + n_val), targets >= n_train + n_val]
    (X_train, X_val, X_test), (y_train, y_val, y_test), (d_train, d_val, d_test) = (
        [X[p].copy() for p in parts], [y[p] for p in parts], [dates[targets][p] for p in parts])
    return PriceWindows(X_train, y_train, X_val, y_val, X_test, y_test, d_train, d_val, d_test)


class ReturnScaler:
    """Windows of prices as standardised daily log returns; its mean and scale fitted on training data only.

    ``inputs(X)``: (n, window) prices -> (n, window - 1) standardised returns within each window.
    ``target(X, y)``: the standardised log return from each window's last close to y.
    """

    def fit(self, X, y) -> ReturnScaler:
        returns = np.concatenate([np.diff(np.log(X), axis=1).ravel(), np.log(y / X[:, -1])])
        self.mean_, self.scale_ = float(returns.mean()), float(returns.std())
        return self

    def inputs(self, X) -> np.ndarray:
        return (np.diff(np.log(np.asarray(X, dtype=np.float64)), axis=1) - self.mean_) / self.scale_

    def target(self, X, y) -> np.ndarray:
        return (np.log(np.asarray(y, dtype=np.float64) / np.asarray(X)[:, -1]) - self.mean_) / self.scale_

    def price(self, X, z) -> np.ndarray:
        """Back from a standardised return to a price, from each window's last close."""
        return np.asarray(X, dtype=np.float64)[:, -1] * np.exp(np.asarray(z) * self.scale_ + self.mean_)

    def to_json(self) -> dict:
        return {"mean": self.mean_, "scale": self.scale_}


class Persistence(RegressorMixin, ModelAdapter):
    """Tomorrow's close = today's: the last value of each window. Learns nothing."""

    def fit(self, X, y):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=np.float64)[:, -1]


class LinearWindow(RegressorMixin, ModelAdapter):
    """Linear regression from the window's standardised log returns to the next one (a linear AR model)."""

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.scaler_ = ReturnScaler().fit(X, y)
        self.linear_ = LinearRegression().fit(self.scaler_.inputs(X), self.scaler_.target(X, y))
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return self.scaler_.price(X, self.linear_.predict(self.scaler_.inputs(X)))


class LSTMForecaster(RegressorMixin, ModelAdapter):
    """A `PriceLSTM` over the window's standardised log returns, predicting the next one.

    ``fit(X, y, X_val, y_val)`` fits the scaler on (X, y) only, trains with the shared loop (MSE,
    AdamW, gradient clipping) and keeps the epoch with the lowest validation loss, stopping after
    ``patience`` epochs without one: the validation period picks the weights, the test period is
    never seen.
    """

    def __init__(self, hidden_size: int = 32, epochs: int = 60, patience: int = 8, batch_size: int = 64,
                 lr: float = 1e-3, seed: int = 0):
        self.hidden_size, self.epochs, self.patience = hidden_size, epochs, patience
        self.batch_size, self.lr, self.seed = batch_size, lr, seed

    def fit(self, X, y, X_val=None, y_val=None):
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.scaler_ = ReturnScaler().fit(X, y)
        torch.manual_seed(self.seed)
        self.module_ = PriceLSTM(1, self.hidden_size)
        config = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, grad_clip=1.0,
                             early_stopping_patience=self.patience, seed=self.seed, label="price LSTM")
        val = (None, None) if X_val is None else (self.scaler_.inputs(X_val), self.scaler_.target(X_val, y_val))
        result = Trainer(self.module_, config, ClassificationStep(loss_fn=F.mse_loss),
                         callbacks=[ProgressBar(), MLflowLogger(), EarlyStopping(self.patience)]).fit(
            self.scaler_.inputs(X).astype(np.float32), self.scaler_.target(X, y).astype(np.float32),
            None if val[0] is None else val[0].astype(np.float32),
            None if val[1] is None else val[1].astype(np.float32))
        self.module_.cpu()
        self.history_, self.best_epoch_ = result.history, result.best_epoch
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return predict_price(self.module_, self.scaler_.to_json(), X)


def price_models(profile: str, seed: int, epochs: int | None = None) -> dict:
    """The three forecasters, unfitted."""
    s = PRICE_SETTINGS[profile]
    return {"persistence": Persistence(), "linear regression (window)": LinearWindow(),
            "LSTM": LSTMForecaster(hidden_size=s["hidden"], epochs=epochs or s["epochs"],
                                   patience=s["patience"], seed=seed)}


def fit_price_models(models: dict, windows: PriceWindows) -> dict:
    """Fit every forecaster on the training windows; the LSTM also gets the validation windows for
    early stopping."""
    with one_thread():
        for model in models.values():
            if isinstance(model, LSTMForecaster):
                model.fit(windows.X_train, windows.y_train, windows.X_val, windows.y_val)
            else:
                model.fit(windows.X_train, windows.y_train)
    return models


def directional_accuracy(X, y, y_pred) -> float:
    """Share of days whose predicted move from today's close (up, down, none) is the actual move."""
    last = np.asarray(X, dtype=np.float64)[:, -1]
    return float(np.mean(np.sign(np.asarray(y_pred) - last) == np.sign(np.asarray(y) - last)))


def price_table(results: dict, X, y, period: str) -> pd.DataFrame:
    """RMSE, MAE, R² (from the shared evaluation) and directional accuracy per model for one period."""
    rows = []
    for name, result in results.items():
        m = result.metrics
        rows.append({"model": name, "period": period, "rmse": m["test_rmse"], "mae": m["test_mae"],
                     "r2": m["test_r2"], "directional_accuracy": directional_accuracy(X, y, result.y_pred)})
    return pd.DataFrame(rows).set_index("model")


def diebold_mariano(y, pred_a, pred_b) -> tuple[float, float]:
    """Is forecast a's squared error lower than b's by more than chance? The Diebold–Mariano statistic
    (mean loss difference over its standard error; one-step forecasts, so no autocorrelation
    correction) and its two-sided p-value from the normal distribution."""
    d = (np.asarray(pred_a) - np.asarray(y)) ** 2 - (np.asarray(pred_b) - np.asarray(y)) ** 2
    stat = float(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))))
    return stat, math.erfc(abs(stat) / math.sqrt(2))


def price_verdict(test_table: pd.DataFrame, X_test, y_test, predictions: dict) -> str:
    """Plain sentences: does the LSTM beat persistence on the test period, and by more than chance?"""
    lstm, naive = test_table.loc["LSTM"], test_table.loc["persistence"]
    up_share = float(np.mean(np.asarray(y_test) > np.asarray(X_test)[:, -1]))
    beats = lstm["rmse"] < naive["rmse"] and lstm["mae"] < naive["mae"]
    stat, p = diebold_mariano(y_test, predictions["LSTM"], predictions["persistence"])
    if not beats:
        verdict = "No: the LSTM does not beat persistence on the test period"
    elif p < 0.05:
        verdict = "Yes: the LSTM beats persistence on the test period"
    else:
        verdict = ("Not convincingly: the LSTM's errors on the test period are slightly lower than "
                   "persistence's, by less than chance explains")
    return (f"{verdict}: RMSE {lstm['rmse']:.3f} vs {naive['rmse']:.3f} and MAE {lstm['mae']:.3f} vs "
            f"{naive['mae']:.3f} dollars ({lstm['rmse'] / naive['rmse'] - 1:+.1%} RMSE; Diebold–Mariano "
            f"statistic {stat:.2f}, p = {p:.2f}, on {len(y_test)} days). Its directional accuracy is "
            f"{lstm['directional_accuracy']:.1%}, against {up_share:.1%} for always guessing 'up' "
            f"(persistence predicts no move, so it is right only on unchanged days: "
            f"{naive['directional_accuracy']:.1%}).")


def price_figure(windows: PriceWindows, predictions: dict, last_days: int = 60):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for ax, days in zip(axes, (len(windows.y_test), last_days), strict=True):
        dates = windows.dates_test[-days:]
        ax.plot(dates, windows.y_test[-days:], color="black", linewidth=1.5, label="actual close")
        for name, y_pred in predictions.items():
            ax.plot(dates, np.asarray(y_pred)[-days:], linewidth=0.9, label=name)
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].set(title="MSFT next-day close, test period", ylabel="USD")
    axes[1].set(title=f"last {last_days} days")
    axes[0].legend()
    fig.tight_layout()
    return fig


# --- the report ------------------------------------------------------------------------------------


def report_document(lm: CharLM, test_table: pd.DataFrame, verdict: str, windows: PriceWindows,
                    norms: pd.DataFrame, runs: pd.DataFrame) -> str:
    """The unit's Markdown report: the two questions, the figures, the numbers, the sample."""
    first, last = norms.iloc[0], norms.iloc[-1]
    blown = runs[(runs["run"] == "no clipping") & ~np.isfinite(runs["loss"])]
    blew = f"its loss is no longer finite from update {int(blown['update'].iloc[0])} on" if len(blown) else \
        f"its loss peaks at {runs[runs['run'] == 'no clipping']['loss'].max():.3g}"
    samples = "\n\n".join(f"**temperature {t}**\n\n```text\n{text}\n```" for t, text in lm.samples.items())
    history = char_history(lm)[["epoch", "train_nats", "val_nats", "val_bits", "seconds"]]
    return f"""# Unit 9 — recurrent networks

## Why gradients vanish and explode

![gradient through time](figures/gradient_through_time.png)

With the loss at step {int(last['t'])}, the gradient reaching step 1 is {first['rnn']:.2e} for the
vanilla RNN, {first['lstm']:.2e} for the LSTM and {first['gru']:.2e} for the GRU (at the last step:
{last['rnn']:.2e}, {last['lstm']:.2e}, {last['gru']:.2e}).

![exploding gradients](figures/exploding_gradients.png)

Without clipping, {blew}; with `clip_grad_norm_` the same run trains.

## A character-level LSTM on Tiny Shakespeare

{lm.train_chars:,} training and {lm.val_chars:,} validation characters (the last 10 %, contiguous),
{len(lm.vocab)} distinct characters; a {lm.settings['layers']}-layer LSTM of {lm.settings['hidden']} units,
truncated BPTT over {lm.settings['seq_len']}-character windows with the hidden state carried between them.

![char LM curve](figures/char_lm_curve.png)

**Validation loss: {lm.val_nats:.3f} nats/char ({lm.val_bits:.3f} bits/char)** after {len(lm.history)}
epochs, {lm.seconds / 60:.1f} minutes.

{history.to_markdown(index=False, floatfmt=".3f")}

Samples from the prompt "{PROMPT}":

{samples}

## Forecasting MSFT's next close

Windows of {windows.X_train.shape[1]} closes; {len(windows.y_train)} training days (to
{pd.Timestamp(windows.train_end).date()}), {len(windows.y_val)} validation days (early stopping only)
and {len(windows.y_test)} test days ({pd.Timestamp(windows.dates_test[0]).date()} to
{pd.Timestamp(windows.dates_test[-1]).date()}).

![price forecasts](figures/price_forecasts.png)

{test_table.to_markdown(floatfmt=".4f")}

{verdict}
"""


def gradient_demos(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both demos: ‖∂L/∂h_t‖ per step (`gradient_through_time`) and the clipped/unclipped runs."""
    with one_thread():
        return gradient_through_time(seed=seed), exploding_runs(seed=seed)


def unit_report(unit, params, lm: CharLM, windows: PriceWindows, val_results: dict, test_results: dict,
                norms: pd.DataFrame, runs: pd.DataFrame, audits: dict, data_refs: list):
    """The run's `UnitReport`: the char LSTM registered (primary metric: validation nats/char), the
    price models' tables, the demos' figures, the samples and the report document."""
    from pipeline.plots import figure_to_png
    from pipeline.report import UnitReport

    val_table = price_table(val_results, windows.X_val, windows.y_val, "validation")
    test_table = price_table(test_results, windows.X_test, windows.y_test, "test")
    verdict = price_verdict(test_table, windows.X_test, windows.y_test,
                            {name: r.y_pred for name, r in test_results.items()})
    metrics = {"val_loss": lm.val_nats, "val_bits_per_char": lm.val_bits,
               "char_train_seconds": lm.seconds, "char_epochs": float(len(lm.history))}
    for name, row in test_table.iterrows():
        key = short_name(name)
        metrics |= {f"msft_{key}_test_{m}": float(row[m]) for m in ("rmse", "mae", "r2", "directional_accuracy")}
    headline = lm.samples[params.temperature] if params.temperature in lm.samples else next(iter(lm.samples.values()))
    report = UnitReport(
        unit.id, unit.primary_metric, unit.greater_is_better, params.model_dump(), metrics=metrics,
        data_refs=data_refs, model=lm.torch_model(), model_example=lm.example_contexts(),
        figures={"gradient_through_time": figure_to_png(gradient_figure(norms)),
                 "exploding_gradients": figure_to_png(exploding_figure(runs)),
                 "char_lm_curve": figure_to_png(char_curve_figure(lm)),
                 "price_forecasts": figure_to_png(price_figure(
                     windows, {name: r.y_pred for name, r in test_results.items()}))},
        captions=dict(CAPTIONS),
        tables={"char LSTM per epoch": char_history(lm), "MSFT forecasts": pd.concat([val_table, test_table]),
                "gradient norm by step": norms.iloc[::10]},
        texts={f"sample (temperature {t})": text for t, text in lm.samples.items()} | {"verdict": verdict},
        documents={"unit09_report": report_document(lm, test_table, verdict, windows, norms, runs)},
        histories={CHAR_LM: lm.history, "price_lstm": test_results["LSTM"].model.history_},
        notes=(f"Character LSTM: **{lm.val_nats:.3f} nats/char** ({lm.val_bits:.3f} bits/char) on the last 10 % "
               f"of Tiny Shakespeare.\n\nSample (temperature {params.temperature}):\n\n```text\n{headline}\n```"
               f"\n\n{verdict}"),
        holdout=None,
    )
    report.add_evaluation(test_results["LSTM"], prefix="msft_lstm_")
    for label, audit in audits.items():
        report.add_audit(audit, label)
    return report


def short_name(name: str) -> str:
    """"linear regression (window)" -> "linear", for metric names."""
    return {"persistence": "persistence", "linear regression (window)": "linear", "LSTM": "lstm"}[name]
