"""Attention from scratch in NumPy (float64): scaled dot-product, multi-head, positional encoding.

``scaled_dot_product_attention(q, k, v)`` is ``softmax(q kᵀ / √d) v``: each query scores every key
by a dot product, the scores become weights that sum to 1 over the keys, and the output is the
weights' average of the values. ``mask`` (boolean, True where a query may attend to a key, as in
``torch.nn.functional.scaled_dot_product_attention``) and ``causal`` (a query sees only keys at
its own position or before) set the scores of forbidden pairs to -inf before the softmax, so
their weights are exactly 0.

`SelfAttention` is one head: the same input projected three ways, ``q = x W_q + b_q``,
``k = x W_k + b_k``, ``v = x W_v + b_v``, then attention and an output projection ``W_o``.
`MultiHeadAttention` splits ``d_model`` into ``n_heads`` heads of ``d_model / n_heads`` dimensions,
each attending on its own, and concatenates them before ``W_o``; ``from_torch`` copies the weights
of a ``torch.nn.MultiheadAttention`` (which computes ``x Wᵀ + b``: ours are its transposes).

Shapes: inputs are (..., L, d_model) with any leading batch dimensions; weights come back as
(..., n_heads, L_q, L_k). A query whose every key is masked has no weights to share out: its
row is NaN, as torch's is.
"""

from __future__ import annotations

import numpy as np

PE_BASE = 10000.0  # the paper's base wavelength factor


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax: the row maximum is subtracted first, so exp never overflows.

    -inf scores get weight exactly 0; a row of only -inf is NaN (0 / 0).
    """
    scores = np.asarray(scores, dtype=np.float64)
    top = np.max(scores, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # an all -inf row stays -inf - 0 = -inf
    e = np.exp(scores - top)
    with np.errstate(invalid="ignore"):
        return e / np.sum(e, axis=axis, keepdims=True)


def causal_mask(n_queries: int, n_keys: int | None = None) -> np.ndarray:
    """(n_queries, n_keys) booleans, True where query i may see key j: j <= i (lower triangle).

    Aligned at the top left, as torch's ``is_causal``: row i sees the first i + 1 keys.
    """
    n_keys = n_queries if n_keys is None else n_keys
    return np.tril(np.ones((n_queries, n_keys), dtype=bool))


def scaled_dot_product_attention(q, k, v, mask=None, causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(q kᵀ / √d_k + masking) v``.

    q (..., L_q, d_k), k (..., L_k, d_k), v (..., L_k, d_v); ``mask`` boolean, broadcastable to
    (..., L_q, L_k), True where attention is allowed; ``causal`` adds `causal_mask`.
    Returns (outputs (..., L_q, d_v), weights (..., L_q, L_k)), each weight row summing to 1.
    """
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)  # (..., L_q, L_k)
    allowed = np.ones(scores.shape[-2:], dtype=bool)
    if causal:
        allowed = causal_mask(*scores.shape[-2:])
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
        allowed = allowed & mask
    scores = np.where(allowed, scores, -np.inf)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def sinusoidal_positional_encoding(n_positions: int, d_model: int) -> np.ndarray:
    """The Transformer's positional encodings, (n_positions, d_model).

    ``PE[pos, 2i] = sin(pos / 10000^(2i / d_model))`` and ``PE[pos, 2i + 1] = cos(same angle)``:
    each pair of columns is a clock at its own frequency, from one turn per 2π positions (i = 0)
    down to one per 10000·2π, so every position gets a distinct pattern and a fixed offset is the
    same rotation wherever it starts.
    """
    positions = np.arange(n_positions, dtype=np.float64)[:, None]  # (n, 1)
    two_i = np.arange(0, d_model, 2, dtype=np.float64)  # (ceil(d / 2),)
    angles = positions / PE_BASE ** (two_i / d_model)  # (n, ceil(d / 2))
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return pe


def _init(rng: np.random.Generator, d_in: int, d_out: int) -> np.ndarray:
    """Xavier-uniform (d_in, d_out), torch's initialisation of attention input projections."""
    bound = np.sqrt(6.0 / (d_in + d_out))
    return rng.uniform(-bound, bound, size=(d_in, d_out))


class MultiHeadAttention:
    """Multi-head attention with projections as arrays: ``W_q, W_k, W_v, W_o`` (d_model, d_model)
    and biases ``b_q, b_k, b_v, b_o`` (d_model,), applied as ``x W + b`` (Xavier-uniform weights, as torch
    initialises its input projections, and zero biases at first).

    ``__call__(query, key=None, value=None, mask=None, causal=False)`` (key and value default to
    the query: self-attention) returns (outputs (..., L_q, d_model), per-head weights
    (..., n_heads, L_q, L_k)). ``mask`` as in `scaled_dot_product_attention`, broadcast over the
    heads: (L_q, L_k) or (..., 1, L_q or 1, L_k).
    """

    def __init__(self, d_model: int, n_heads: int = 1, seed: int = 0):
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        rng = np.random.default_rng(seed)
        self.W_q, self.W_k, self.W_v = (_init(rng, d_model, d_model) for _ in range(3))
        self.W_o = _init(rng, d_model, d_model)
        self.b_q, self.b_k, self.b_v, self.b_o = (np.zeros(d_model) for _ in range(4))

    def _split(self, x: np.ndarray) -> np.ndarray:
        """(..., L, d_model) -> (..., n_heads, L, d_head)."""
        *lead, length, _ = x.shape
        return np.swapaxes(x.reshape(*lead, length, self.n_heads, self.d_head), -2, -3)

    def _merge(self, x: np.ndarray) -> np.ndarray:
        """(..., n_heads, L, d_head) -> (..., L, d_model): the heads side by side."""
        x = np.swapaxes(x, -2, -3)
        return x.reshape(*x.shape[:-2], self.d_model)

    def __call__(self, query, key=None, value=None, mask=None, causal: bool = False):
        query = np.asarray(query, dtype=np.float64)
        key = query if key is None else np.asarray(key, dtype=np.float64)
        value = key if value is None else np.asarray(value, dtype=np.float64)
        q = self._split(query @ self.W_q + self.b_q)
        k = self._split(key @ self.W_k + self.b_k)
        v = self._split(value @ self.W_v + self.b_v)
        heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
        return self._merge(heads) @ self.W_o + self.b_o, weights

    @classmethod
    def from_torch(cls, module) -> MultiHeadAttention:
        """A copy of a ``torch.nn.MultiheadAttention`` (packed in-projection, same q/k/v size)
        or of a ``pipeline.models.attention.MultiHeadSelfAttention``, in float64."""
        n_heads = module.num_heads if hasattr(module, "num_heads") else module.n_heads
        d_model = module.embed_dim if hasattr(module, "embed_dim") else module.d_model
        ours = cls(d_model, n_heads)

        def array(t) -> np.ndarray:
            return t.detach().cpu().double().numpy().copy()

        if hasattr(module, "in_proj_weight"):  # torch.nn.MultiheadAttention: x Wᵀ + b, W (3d, d)
            if module.in_proj_weight is None:
                raise ValueError("only nn.MultiheadAttention with equal q/k/v sizes (packed weights)")
            W = array(module.in_proj_weight)
            b = array(module.in_proj_bias) if module.in_proj_bias is not None else np.zeros(3 * d_model)
            ours.W_q, ours.W_k, ours.W_v = (W[i * d_model:(i + 1) * d_model].T for i in range(3))
            ours.b_q, ours.b_k, ours.b_v = (b[i * d_model:(i + 1) * d_model] for i in range(3))
            out = module.out_proj
        else:  # our torch mirror: four nn.Linear layers
            ours.W_q, ours.W_k, ours.W_v = (array(lin.weight).T for lin in (module.q, module.k, module.v))
            ours.b_q, ours.b_k, ours.b_v = (array(lin.bias) for lin in (module.q, module.k, module.v))
            out = module.o
        ours.W_o = array(out.weight).T
        ours.b_o = array(out.bias) if out.bias is not None else np.zeros(d_model)
        return ours


class SelfAttention(MultiHeadAttention):
    """One attention head over the whole ``d_model``: `MultiHeadAttention` with ``n_heads=1``."""

    def __init__(self, d_model: int, seed: int = 0):
        super().__init__(d_model, 1, seed)
