"""A simple word-level tokenizer: words and punctuation, a vocabulary from the training text only.

``Vocabulary.build(train_sentences)`` keeps the words seen at least ``min_count`` times, most
frequent first, after two reserved ids: 0 pads, 1 stands for any unknown word. ``encode`` turns
sentences into a padded id matrix (n, max_len) for a torch model; `TokenCounts` turns that matrix
into word counts (a sparse bag of words) for a linear baseline on the very same rows.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_TOKEN = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*|'[^\W_]+|[^\w\s]|_")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (with inner apostrophes and hyphens, so SST's "n't" stays one word), clitics
    such as "'s", and single punctuation marks: "It's not good!" -> ["it's", "not", "good", "!"]."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Words by id (``words[i]`` is id i; ids 0 and 1 are `PAD` and `UNK`)."""

    words: tuple[str, ...]

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """From training sentences only: words seen ``min_count`` times or more, most frequent first
        (ties alphabetical), at most ``max_size`` ids in all."""
        counts = Counter(word for sentence in sentences for word in tokenize(sentence))
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        words = (PAD, UNK, *ranked)
        return cls(words[:max_size] if max_size else words)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, sentences: Iterable[str], max_len: int) -> np.ndarray:
        """Token ids (n, max_len) int64: each sentence's first ``max_len`` tokens, unknown words as
        `UNK_ID`, padded with `PAD_ID` at the end; an empty sentence is one `UNK_ID`."""
        index = self.index
        rows = []
        for sentence in sentences:
            ids = [index.get(w, UNK_ID) for w in tokenize(sentence)][:max_len] or [UNK_ID]
            rows.append(ids + [PAD_ID] * (max_len - len(ids)))
        return np.asarray(rows, dtype=np.int64).reshape(-1, max_len)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of one id row, padding left out."""
        return [self.words[i] for i in ids if i != PAD_ID]


class TokenCounts(TransformerMixin, BaseEstimator):
    """Id matrix (n, L) -> sparse word counts (n, vocab_size); padding is not counted."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def fit(self, X, y=None) -> TokenCounts:
        return self

    def transform(self, X) -> sparse.csr_matrix:
        X = np.asarray(X, dtype=np.int64)
        rows = np.repeat(np.arange(len(X)), X.shape[1])
        ids = X.ravel()
        keep = ids != PAD_ID
        counts = sparse.csr_matrix((np.ones(keep.sum()), (rows[keep], ids[keep])),
                                   shape=(len(X), self.vocab_size))
        counts.sum_duplicates()
        return counts
