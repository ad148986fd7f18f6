"""Unit 10's torch attention: a line-for-line mirror of ``pipeline.scratch.attention`` and a small
attention classifier built on it.

`scaled_dot_product_attention` and `MultiHeadSelfAttention` compute what the NumPy versions do
(the audit checks them equal, and the NumPy `MultiHeadAttention.from_torch` copies the weights);
they return the attention weights, which torch's fused kernels do not. `AttentionClassifier`:
token embedding + sinusoidal positions + one transformer encoder block (multi-head self-attention,
then a small feed-forward layer, each with a residual connection and layer norm) + mean pooling
over the real tokens + a linear layer. Its input is a batch of token ids (B, L), 0 for padding
(``pipeline.data.words``), padding at the end of each row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

PAD_ID = 0


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
                                 causal: bool = False) -> tuple[Tensor, Tensor]:
    """``softmax(q kᵀ / √d_k) v`` with the NumPy version's masks: ``mask`` boolean, True where a
    query may attend; ``causal`` keeps key j <= query i. Returns (outputs (..., L_q, d_v), weights
    (..., L_q, L_k))."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., L_q, L_k)
    if causal:
        n_q, n_k = scores.shape[-2:]
        scores = scores.masked_fill(~torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).tril(), -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.softmax(scores, dim=-1)  # subtracts the row maximum: stable
    return weights @ v, weights


def sinusoidal_positional_encoding(n_positions: int, d_model: int) -> Tensor:
    """The paper's encodings as a float32 tensor (n_positions, d_model); see the NumPy version."""
    positions = torch.arange(n_positions, dtype=torch.float64)[:, None]
    angles = positions / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.float()


class MultiHeadSelfAttention(nn.Module):
    """Multi-head attention with four ``nn.Linear`` projections ``q, k, v, o``.

    ``forward(x (B, L, d_model), mask=None, causal=False, key=None, value=None)`` returns
    (outputs (B, L, d_model), weights (B, n_heads, L, L_k)); ``mask`` broadcastable to
    (B, n_heads, L, L_k), True where attention is allowed.
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
        for layer in (self.q, self.k, self.v, self.o):  # as nn.MultiheadAttention initialises
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _split(self, x: Tensor) -> Tensor:
        *lead, length, _ = x.shape
        return x.reshape(*lead, length, self.n_heads, self.d_head).transpose(-2, -3)

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False,
                key: Tensor | None = None, value: Tensor | None = None) -> tuple[Tensor, Tensor]:
        key = x if key is None else key
        value = key if value is None else value
        heads, weights = scaled_dot_product_attention(
            self._split(self.q(x)), self._split(self.k(key)), self._split(self.v(value)), mask, causal)
        heads = heads.transpose(-2, -3)  # (B, L, n_heads, d_head)
        return self.o(heads.reshape(*heads.shape[:-2], self.d_model)), weights


class AttentionClassifier(nn.Module):
    """Embedding + sinusoidal positions + one encoder block + mean pooling + linear.

    ``forward(ids (B, L))`` gives logits (B, n_classes); ``attention(ids)`` the block's weights
    (B, n_heads, L, L). Rows are cut to their batch's longest sentence first (padding is at the
    end and masked out, so the result is the same, only faster).
    """

    def __init__(self, vocab_size: int, d_model: int = 64, n_heads: int = 4, n_classes: int = 2,
                 max_len: int = 64, d_ff: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
        # N(0, 1/d) scaled by √d in forward, as in the paper: unit-size vectors, like the
        # encodings, whose Adam steps are √d times larger than on N(0, 1) weights.
        nn.init.normal_(self.embed.weight, std=d_model ** -0.5)
        with torch.no_grad():
            self.embed.weight[PAD_ID].zero_()
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False)
        self.attn = MultiHeadSelfAttention(d_model, n_heads)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        d_ff = d_ff or 2 * d_model
        self.ff = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def _encode(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(hidden (B, L', d), attention weights (B, h, L', L'), real-token mask (B, L'))."""
        ids = ids.long()
        real = ids != PAD_ID  # (B, L)
        length = max(int(real.sum(dim=1).max()), 1)
        ids, real = ids[:, :length], real[:, :length]
        x = self.embed(ids) * math.sqrt(self.d_model) + self.pe[:length]  # (B, L', d)
        x = self.drop(x)
        attended, weights = self.attn(x, mask=real[:, None, None, :])  # keys: real tokens only
        x = self.norm1(x + self.drop(attended))
        x = self.norm2(x + self.drop(self.ff(x)))
        return x, weights, real

    def embeddings(self, ids: Tensor) -> Tensor:
        """What the attention block sees in eval mode: embedding · √d + positions (B, L', d)."""
        ids = ids.long()
        length = max(int((ids != PAD_ID).sum(dim=1).max()), 1)
        return self.embed(ids[:, :length]) * math.sqrt(self.d_model) + self.pe[:length]

    def forward(self, ids: Tensor) -> Tensor:
        x, _, real = self._encode(ids)
        keep = real.unsqueeze(-1).to(x.dtype)  # (B, L', 1)
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)  # mean over real tokens
        return self.head(self.drop(pooled))

    def attention(self, ids: Tensor) -> Tensor:
        """The block's attention weights (B, n_heads, L', L'), in eval mode."""
        return self._encode(ids)[1]


@dataclass(frozen=True)
class TokenIds:
    """Input transform: token ids arrive as integers and stay integers (int64), for the embedding."""

    def __call__(self, x: Tensor) -> Tensor:
        return x.long()


def predict_sentences(module: nn.Module, meta: dict, X, batch_size: int = 512) -> np.ndarray:
    """Class labels for raw sentences ``X`` (n,): the registered classifier's predict
    (``pipeline.training.export.TorchModel``). ``meta`` holds what the ids mean: ``vocab`` (the
    words by id), ``max_len`` and ``classes`` (the label of each output column)."""
    from pipeline.data.words import Vocabulary

    sentences = [str(s) for s in np.asarray(X, dtype=object).ravel()]
    ids = torch.as_tensor(Vocabulary(tuple(meta["vocab"])).encode(sentences, int(meta["max_len"])))
    device = next(module.parameters()).device
    module.eval()
    with torch.inference_mode():
        columns = [module(batch.to(device)).argmax(dim=-1).cpu() for batch in ids.split(batch_size)]
    return np.asarray(meta["classes"])[torch.cat(columns).numpy()] if columns else np.asarray([])
