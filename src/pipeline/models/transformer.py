"""The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), from our own modules.

`MultiHeadAttention` (checked against ``torch.nn.MultiheadAttention`` in ``pipeline.audit.transformer``),
`PositionwiseFeedForward`, post-norm residual layers (``LayerNorm(x + Dropout(sublayer(x)))``, as in the
paper), sinusoidal `PositionalEncoding`, the encoder–decoder `Transformer` with greedy decoding, and
the decoder-only `TransformerLM` (a causal character model). Masks follow torch's convention: True
marks a position that may NOT be attended to.

Token ids of the sequence models: 0 is padding, 1 begins a target, 2 ends it (`PAD`, `BOS`, `EOS`);
the characters of an alphabet follow from 3 (`encode_texts`, `decode_ids`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

PAD, BOS, EOS = 0, 1, 2
N_SPECIAL = 3


class MultiHeadAttention(nn.Module):
    """``softmax(Q Kᵀ / √d_k + mask) V`` in ``n_heads`` heads of ``d_k = d_model / n_heads``, then one
    output projection. Inputs are batch first: query (B, L, d_model), key and value (B, S, d_model).

    ``attn_mask`` (L, S) or (B, L, S), bool: True blocks a (query, key) pair (e.g. a causal mask);
    ``key_padding_mask`` (B, S), bool: True marks padded keys. Returns (B, L, d_model).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.d_k = d_model, n_heads, d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        B, L, _ = query.shape
        S = key.shape[1]
        q = self._heads(self.q_proj(query))  # (B, h, L, d_k)
        k = self._heads(self.k_proj(key))  # (B, h, S, d_k)
        v = self._heads(self.v_proj(value))  # (B, h, S, d_k)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, h, L, S)
        blocked = torch.zeros(B, 1, L, S, dtype=torch.bool, device=query.device)
        if attn_mask is not None:
            blocked = blocked | (attn_mask if attn_mask.dim() == 2 else attn_mask[:, None])
        if key_padding_mask is not None:
            blocked = blocked | key_padding_mask[:, None, None, :]
        scores = scores.masked_fill(blocked, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))  # (B, h, L, S)
        out = (weights @ v).transpose(1, 2).reshape(B, L, self.d_model)  # (B, L, d_model)
        return self.out_proj(out)

    def _heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_k).transpose(1, 2)  # (B, h, T, d_k)


class PositionwiseFeedForward(nn.Module):
    """``W₂ · ReLU(W₁ x + b₁) + b₂`` at every position alone: d_model -> d_ff -> d_model."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PositionalEncoding(nn.Module):
    """Adds ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``, ``PE(pos, 2i+1) = cos(...)`` to (B, T, d), then dropout."""

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoid_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > len(self.pe):
            raise ValueError(f"sequence of {x.shape[1]} positions; this encoding has {len(self.pe)}")
        return self.dropout(x + self.pe[: x.shape[1]].to(x.dtype))


def sinusoid_table(max_len: int, d_model: int) -> Tensor:
    """The paper's positional encodings, (max_len, d_model) float32."""
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
    rate = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d/2,)
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * rate)
    table[:, 1::2] = torch.cos(pos * rate[: d_model // 2])
    return table.float()


class EncoderLayer(nn.Module):
    """Self-attention, then the feed-forward net, each as ``LayerNorm(x + Dropout(sublayer(x)))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, key_padding_mask=key_padding_mask)))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


class DecoderLayer(nn.Module):
    """Masked self-attention, attention over the encoder's output (``cross_attention``; the decoder-only
    model has none), then the feed-forward net, each post-norm residual."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1, cross_attention: bool = True):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.cross_attn = MultiHeadAttention(d_model, n_heads) if cross_attention else None
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, causal_mask: Tensor, memory: Tensor | None = None,
                memory_padding_mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, x, x, attn_mask=causal_mask)))
        if self.cross_attn is not None:
            attended = self.cross_attn(x, memory, memory, key_padding_mask=memory_padding_mask)
            x = self.norm2(x + self.dropout(attended))
        return self.norm3(x + self.dropout(self.feed_forward(x)))


def causal_mask(T: int, device: torch.device | None = None) -> Tensor:
    """(T, T) bool, True above the diagonal: position t may attend to positions <= t only."""
    return torch.ones(T, T, dtype=torch.bool, device=device).triu(1)


class _Embedding(nn.Module):
    """Token embedding times √d_model (the paper's scaling), initialised N(0, 1/d_model) so that the
    scaled vectors have unit variance, like the positional encodings they are added to."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        self.scale = math.sqrt(d_model)

    def forward(self, ids: Tensor) -> Tensor:
        return self.embed(ids) * self.scale


class Transformer(nn.Module):
    """The encoder–decoder Transformer: ``forward(src (B, S), tgt_in (B, T)) -> logits (B, T, vocab)``.

    ``share_embeddings`` (one vocabulary for source and target) uses one embedding matrix for the
    encoder and the decoder, as the paper does; otherwise each has its own. The output projection
    is always the target embedding matrix (the paper's weight tying).
    Padding (`PAD`) in ``src`` is masked out of every attention over it.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 128, n_heads: int = 4,
                 n_encoder_layers: int = 2, n_decoder_layers: int = 2, d_ff: int = 512,
                 dropout: float = 0.1, max_len: int = 64, share_embeddings: bool = True):
        super().__init__()
        if share_embeddings and src_vocab != tgt_vocab:
            raise ValueError(f"shared embeddings need one vocabulary; got {src_vocab} and {tgt_vocab}")
        self.src_embed = _Embedding(src_vocab, d_model)
        # Shared matrices are used, not registered twice: a stored state dict holds each tensor once.
        self.separate_tgt_embed = None if share_embeddings else _Embedding(tgt_vocab, d_model)
        self.positions = PositionalEncoding(d_model, max_len, dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_decoder_layers))
        self.max_len = max_len

    @property
    def tgt_embed(self) -> _Embedding:
        return self.src_embed if self.separate_tgt_embed is None else self.separate_tgt_embed

    def generator(self, x: Tensor) -> Tensor:
        """Logits (B, T, vocab): the output projection is the target embedding matrix (tied)."""
        return nn.functional.linear(x, self.tgt_embed.embed.weight)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's output (B, S, d_model) and the source padding mask (B, S)."""
        padding = src == PAD
        x = self.positions(self.src_embed(src))
        for layer in self.encoder:
            x = layer(x, key_padding_mask=padding)
        return x, padding

    def decode(self, tgt_in: Tensor, memory: Tensor, memory_padding: Tensor) -> Tensor:
        """Next-token logits (B, T, vocab) for every prefix of ``tgt_in`` (B, T)."""
        mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        x = self.positions(self.tgt_embed(tgt_in))
        for layer in self.decoder:
            x = layer(x, mask, memory, memory_padding)
        return self.generator(x)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, padding = self.encode(src)
        return self.decode(tgt_in, memory, padding)

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, max_len: int) -> Tensor:
        """Target ids (B, max_len) by greedy decoding from `BOS`: each step appends the most likely
        token; after `EOS` a row is padded with `PAD` (the EOS itself is kept)."""
        memory, padding = self.encode(src)
        ys = torch.full((len(src), 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            next_id = self.decode(ys, memory, padding)[:, -1].argmax(dim=-1)  # (B,)
            next_id = next_id.masked_fill(done, PAD)
            ys = torch.cat([ys, next_id[:, None]], dim=1)
            done |= next_id == EOS
            if bool(done.all()):
                break
        out = ys[:, 1:]
        return nn.functional.pad(out, (0, max_len - out.shape[1]), value=PAD)


class TransformerLM(nn.Module):
    """The decoder-only Transformer as a causal language model over ``block_size`` positions.

    ``forward(x (B, T), state=None) -> (logits (B, T, vocab), None)``: the same call as an RNN's, with
    no state to carry (the context is the input itself; T <= block_size). The output projection
    shares the embedding matrix.
    """

    def __init__(self, vocab_size: int, d_model: int = 128, n_heads: int = 4, n_layers: int = 4,
                 d_ff: int = 512, dropout: float = 0.1, block_size: int = 128):
        super().__init__()
        self.embed = _Embedding(vocab_size, d_model)
        self.positions = PositionalEncoding(d_model, block_size, dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, cross_attention=False) for _ in range(n_layers))
        self.block_size = block_size

    def forward(self, x: Tensor, state: None = None) -> tuple[Tensor, None]:
        mask = causal_mask(x.shape[1], x.device)
        h = self.positions(self.embed(x))  # (B, T, d_model)
        for layer in self.layers:
            h = layer(h, mask)
        return nn.functional.linear(h, self.embed.embed.weight), None  # tied output projection


def encode_texts(texts, alphabet: str, length: int, bos: bool = False, eos: bool = False) -> Tensor:
    """Strings as ids (N, length): optional `BOS`, each character's id (3 + its index in ``alphabet``),
    optional `EOS`, then `PAD` up to ``length``."""
    index = {ch: N_SPECIAL + i for i, ch in enumerate(alphabet)}
    out = torch.full((len(texts), length), PAD, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [BOS] * bos + [index[ch] for ch in text] + [EOS] * eos
        if len(ids) > length:
            raise ValueError(f"{text!r} needs {len(ids)} positions; the encoding has {length}")
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def decode_ids(ids, alphabet: str) -> list[str]:
    """Rows of ids back to strings, up to the first `EOS` (or `PAD`); other special ids are skipped."""
    texts = []
    for row in np.asarray(ids, dtype=np.int64):
        chars = []
        for i in row:
            if i in (EOS, PAD):
                break
            if i >= N_SPECIAL:
                chars.append(alphabet[i - N_SPECIAL])
        texts.append("".join(chars))
    return texts


def predict_sequences(module: Transformer, meta: dict, X) -> np.ndarray:
    """A registered seq2seq Transformer's outputs for strings X (n,): greedy decoding, as strings.

    ``meta``: ``alphabet`` (the characters), ``src_len`` and ``tgt_len`` (positions of source ids
    and of target ids with `EOS`)."""
    texts = [str(x) for x in np.asarray(X, dtype=object).reshape(-1)]
    module.eval()
    device = next(module.parameters()).device
    src = encode_texts(texts, meta["alphabet"], meta["src_len"]).to(device)
    out = []
    for start in range(0, len(src), 1024):
        out.append(module.greedy_decode(src[start:start + 1024], meta["tgt_len"]).cpu())
    ids = torch.cat(out) if out else torch.zeros(0, meta["tgt_len"], dtype=torch.long)
    return np.asarray(decode_ids(ids, meta["alphabet"]), dtype=object)
