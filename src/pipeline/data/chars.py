"""Characters as integers: the vocabulary and the train/validation split of a character-level LM.

A character-level language model sees text as a stream of ids, one per character. `CharVocab` is
the mapping (the sorted set of characters of the training text, so the same text always gives the
same ids) and stores as plain JSON beside a registered model. `char_split` cuts the text in two
contiguous pieces: a language model's validation text must be text it never read, not characters
sprinkled between training ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

FORMAT = "mlpath-char-vocab/1"


@dataclass(frozen=True)
class CharVocab:
    """The characters a model knows, sorted; a character's id is its index in ``chars``."""

    chars: list[str]

    @classmethod
    def fit(cls, text: str) -> CharVocab:
        """The vocabulary of ``text``: its distinct characters, sorted."""
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def _index(self) -> dict[str, int]:
        return {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text: str) -> np.ndarray:
        """Ids of ``text``'s characters, int64 (len(text),); KeyError names an unknown character."""
        index = self._index
        try:
            return np.fromiter((index[ch] for ch in text), dtype=np.int64, count=len(text))
        except KeyError as error:
            raise KeyError(f"character {error.args[0]!r} is not in the vocabulary of {len(self)} "
                           "characters") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (any iterable of ints, an array, a tensor)."""
        chars = self.chars
        return "".join(chars[int(i)] for i in np.asarray(ids).ravel())

    def to_json(self) -> dict:
        return {"format": FORMAT, "chars": list(self.chars)}

    @classmethod
    def from_json(cls, d: dict) -> CharVocab:
        if not isinstance(d, dict) or d.get("format", FORMAT) != FORMAT or not isinstance(d.get("chars"), list):
            raise ValueError(f"not a {FORMAT} vocabulary: {str(d)[:80]!r}")
        chars = [str(c) for c in d["chars"]]
        if len(set(chars)) != len(chars) or chars != sorted(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("a vocabulary's chars must be distinct single characters, sorted")
        return cls(chars)


def char_split(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """The first ``1 - val_fraction`` of ``text`` for training, the rest for validation (contiguous)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(round(len(text) * (1.0 - val_fraction)))
    if cut == 0 or cut == len(text):
        raise ValueError(f"text of {len(text)} characters is too short to split at {val_fraction}")
    return text[:cut], text[cut:]
