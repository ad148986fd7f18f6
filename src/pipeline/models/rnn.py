"""Recurrent networks for Unit 9: a character-level LSTM language model and an LSTM price regressor.

An LSTM reads a sequence one step at a time and carries two vectors from step to step: the hidden
state h (what it outputs) and the cell state c (its memory, changed only by gated, additive
updates, which is why gradients survive many steps). Both modules take and return that state, so
training can carry it from one window of text to the next (truncated backpropagation through
time, ``pipeline.training.lm``) and sampling can feed one character at a time.

``predict_next_char`` and ``predict_price`` are the registered models' predict functions
(``pipeline.training.export.TorchModel``): plain arrays in, plain arrays out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]  # (h, c), each (num_layers, B, hidden_size)


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> linear: logits of the next character at every position.

    ``forward(x (B, T) int64, state=None)`` returns ``(logits (B, T, V), (h, c))``; pass the
    returned state back in to continue the same streams.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 256, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embed = nn.Embedding(vocab_size, embed_dim)
        # nn.LSTM's dropout acts between stacked layers only; one layer would warn.
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: Tensor, state: LSTMState | None = None) -> tuple[Tensor, LSTMState]:
        out, state = self.lstm(self.embed(x), state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)


class PriceLSTM(nn.Module):
    """An LSTM over a window of scaled inputs, a linear head on its last hidden state.

    ``forward(x)`` takes (B, T) or (B, T, n_features) floats and returns (B,): one number per window.
    """

    def __init__(self, n_features: int = 1, hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.n_features = n_features
        self.lstm = nn.LSTM(n_features, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(-1)  # (B, T, 1)
        out, _ = self.lstm(x)  # (B, T, H)
        return self.head(out[:, -1]).squeeze(-1)  # (B,)


class RNNRegressor(nn.Module):
    """A vanilla RNN (tanh or relu) with a linear head on its last hidden state: (B, T, D) -> (B,).

    The exploding-gradient demo of Unit 9 scales its recurrent weights up to make gradients blow up.
    """

    def __init__(self, n_features: int = 1, hidden_size: int = 32, nonlinearity: str = "tanh"):
        super().__init__()
        self.rnn = nn.RNN(n_features, hidden_size, batch_first=True, nonlinearity=nonlinearity)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x if x.ndim == 3 else x.unsqueeze(-1))  # (B, T, H)
        return self.head(out[:, -1]).squeeze(-1)  # (B,)


def predict_next_char(module: CharLSTM, meta: dict, X) -> np.ndarray:
    """The most likely next character's id after each context: X (n, T) int ids -> (n,) int64.

    ``meta`` holds the vocabulary (``{"vocab": CharVocab.to_json()}``); ids outside it are refused.
    """
    x = torch.as_tensor(np.asarray(X, dtype=np.int64))
    if x.ndim == 1:
        x = x.unsqueeze(0)
    vocab_size = len(meta["vocab"]["chars"])
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(f"character ids must be in [0, {vocab_size}), got {int(x.min())}..{int(x.max())}")
    module.eval()
    with torch.inference_mode():
        logits, _ = module(x)  # (n, T, V)
    return logits[:, -1].argmax(dim=-1).numpy().astype(np.int64)


def predict_price(module: PriceLSTM, meta: dict, X) -> np.ndarray:
    """Next close from windows of closes: X (n, window) prices -> (n,) prices.

    The module predicts a scaled log return; ``meta`` holds the scaler fitted on the training
    period (``mean``, ``scale`` of the daily log returns), so the whole transform is in the data.
    """
    closes = np.asarray(X, dtype=np.float64)
    mean, scale = float(meta["mean"]), float(meta["scale"])
    x = (np.diff(np.log(closes), axis=1) - mean) / scale  # (n, window - 1)
    module.eval()
    with torch.inference_mode():
        z = module(torch.as_tensor(x, dtype=torch.float32)).double().numpy()  # (n,)
    return closes[:, -1] * np.exp(z * scale + mean)
