"""Parse each dataset's canonical files into the split dictionaries of the catalog.

Every reader takes ``paths`` (file name -> local path) and returns ``{split: data}``; the
formats are listed in :mod:`pipeline.data`. Readers only parse: finding and checking the files is
:mod:`pipeline.data.fetch`'s job, subsampling is the catalog's. Every file is read inside
``errors.reading(path)``, so a parse, encoding or decompression failure is a ``DataLoadError``
naming that file.
"""

from __future__ import annotations

import csv
import gzip
import io
import pickle
import struct
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data.errors import reading

Paths = Mapping[str, Path]
Splits = dict[str, Any]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
    "native-country", "income",
)  # fmt: skip

_IDX_IMAGES_MAGIC, _IDX_LABELS_MAGIC = 2051, 2049


def load_iris(paths: Paths) -> Splits:
    """Iris from scikit-learn's bundled copy (``paths`` is empty)."""
    from sklearn.datasets import load_iris as sklearn_iris  # lazy: sklearn is heavy to import

    bunch = sklearn_iris()
    frame = pd.DataFrame(bunch.data, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    frame["species"] = pd.Series(bunch.target_names[bunch.target], dtype=str)
    frame["target"] = bunch.target.astype(np.int64)
    return {"data": frame}


# Unit 3's line: y = LINE_SLOPE · x + LINE_INTERCEPT + N(0, LINE_NOISE²), x ~ U(LINE_X_RANGE).
LINE_SLOPE, LINE_INTERCEPT, LINE_NOISE = 3.0, 2.0, 1.0
LINE_X_RANGE = (-3.0, 3.0)
LINE_ROWS, LINE_SEED = 1000, 3


def make_line(paths: Paths) -> Splits:
    """Unit 3's generated line (``paths`` is empty): columns ``x`` and ``y``, 1,000 rows from a
    fixed recipe and seed, so every run sees the same points and the version hash is stable."""
    rng = np.random.default_rng(LINE_SEED)
    x = rng.uniform(*LINE_X_RANGE, size=LINE_ROWS)
    y = LINE_SLOPE * x + LINE_INTERCEPT + rng.normal(0.0, LINE_NOISE, size=LINE_ROWS)
    return {"data": pd.DataFrame({"x": x, "y": y})}


# The paper unit's digit strings: DIGIT_ROWS distinct strings of DIGIT_LENGTHS digits (uniform length),
# each with its reversal as the target, dealt into train/val/test with no string in two splits.
DIGIT_LENGTHS = (5, 12)
DIGIT_ROWS = {"train": 20000, "val": 1000, "test": 1000}
DIGIT_SEED = 16


def make_digit_strings(paths: Paths) -> Splits:
    """The paper unit's generated sequence-to-sequence task (``paths`` is empty): DataFrames with
    str ``source`` (5-12 digits, leading zeros allowed) and ``target`` (its reversal), from a fixed
    recipe and seed; held-out strings never occur in train."""
    rng = np.random.default_rng(DIGIT_SEED)
    total = sum(DIGIT_ROWS.values())
    seen: dict[str, None] = {}
    while len(seen) < total:
        length = int(rng.integers(DIGIT_LENGTHS[0], DIGIT_LENGTHS[1] + 1))
        seen.setdefault("".join(map(str, rng.integers(0, 10, size=length))), None)
    sources = list(seen)
    splits, start = {}, 0
    for name, rows in DIGIT_ROWS.items():
        part = sources[start:start + rows]
        splits[name] = pd.DataFrame({"source": pd.Series(part, dtype=object),
                                     "target": pd.Series([s[::-1] for s in part], dtype=object)})
        start += rows
    return splits


def read_titanic(paths: Paths) -> Splits:
    """Kaggle Titanic train (12 columns) and test (11 columns, no ``Survived``)."""
    return {"train": _read_csv(paths["train.csv"]), "test": _read_csv(paths["test.csv"])}


def read_mall_customers(paths: Paths) -> Splits:
    """Mall customers: the five original columns under their original names."""
    return {"data": _read_csv(paths["Mall_Customers.csv"])}


def read_stocks(paths: Paths) -> Splits:
    """MSFT daily prices with ``Date`` parsed as datetime64."""
    dtypes = {"Open": "float64", "High": "float64", "Low": "float64", "Close": "float64"}
    dtypes |= {"Volume": "int64", "OpenInt": "int64"}
    return {"prices": _read_csv(paths["msft.us.txt"], parse_dates=["Date"], dtype=dtypes)}


def _read_csv(path: Path, **options: Any) -> pd.DataFrame:
    with reading(path):
        return pd.read_csv(path, **options)


def read_tinyshakespeare(paths: Paths) -> Splits:
    """The whole corpus as one string, byte for byte (no newline translation)."""
    with reading(paths["input.txt"]):
        return {"text": paths["input.txt"].read_bytes().decode("utf-8")}


def read_adult(paths: Paths) -> Splits:
    """UCI Adult train and test, with ``?`` as NaN and the test labels' trailing ``.`` removed."""
    return {"train": _read_adult_file(paths["adult.data"]), "test": _read_adult_file(paths["adult.test"])}


def _read_adult_file(path: Path) -> pd.DataFrame:
    with reading(path):
        return _parse_adult_file(path)


def _parse_adult_file(path: Path) -> pd.DataFrame:
    with open(path, encoding="utf-8") as stream:
        # adult.test opens with the line "|1x3 Cross validator"; adult.data has no such line.
        skip = 1 if stream.readline().startswith("|") else 0
    frame = pd.read_csv(
        path,
        header=None,
        names=list(ADULT_COLUMNS),
        skiprows=skip,
        sep=",",
        skipinitialspace=True,  # fields are separated by ", "
        na_values=["?"],
        keep_default_na=False,
        skip_blank_lines=True,
    )
    for column in frame.select_dtypes(exclude="number").columns:
        frame[column] = frame[column].str.strip()
    frame["income"] = frame["income"].str.rstrip(".")
    return frame


def read_sst2(paths: Paths) -> Splits:
    """GLUE SST-2 train and dev, and ``test`` from the mirror-only ``test_labeled.tsv``."""
    return {
        "train": _read_sst2_file(paths["train.tsv"]),
        "dev": _read_sst2_file(paths["dev.tsv"]),
        "test": _read_sst2_file(paths["test_labeled.tsv"]),
    }


def _read_sst2_file(path: Path) -> pd.DataFrame:
    with reading(path):
        frame = pd.read_csv(
            path,
            sep="\t",
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,  # "null" and "nan" are words here, not missing values
            dtype={"sentence": str, "label": np.int64},
        )
    frame["sentence"] = frame["sentence"].str.rstrip()
    return frame


def read_mnist(paths: Paths) -> Splits:
    """MNIST from the four gzipped IDX files: images ``(N, 28, 28)`` uint8, labels ``(N,)`` int64."""
    return {
        split: (
            read_idx_images(paths[f"{prefix}-images-idx3-ubyte.gz"]),
            read_idx_labels(paths[f"{prefix}-labels-idx1-ubyte.gz"]).astype(np.int64),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }


def read_idx_images(path: Path) -> np.ndarray:
    """A gzipped IDX3 image file as a uint8 array ``(N, rows, cols)``."""
    with reading(path):
        return _parse_idx_images(path)


def _parse_idx_images(path: Path) -> np.ndarray:
    raw = _read_idx(path, _IDX_IMAGES_MAGIC, header_ints=4)
    n, rows, cols = struct.unpack(">III", raw[4:16])
    return _idx_payload(path, raw, 16, (n, rows, cols))


def read_idx_labels(path: Path) -> np.ndarray:
    """A gzipped IDX1 label file as a uint8 array ``(N,)``."""
    with reading(path):
        return _parse_idx_labels(path)


def _parse_idx_labels(path: Path) -> np.ndarray:
    raw = _read_idx(path, _IDX_LABELS_MAGIC, header_ints=2)
    (n,) = struct.unpack(">I", raw[4:8])
    return _idx_payload(path, raw, 8, (n,))


def _read_idx(path: Path, magic: int, header_ints: int) -> bytes:
    with gzip.open(path, "rb") as stream:
        raw = stream.read()
    found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 * header_ints else None
    if found != magic:
        raise ValueError(f"not an IDX file of this kind: magic number {found}, expected {magic}")
    return raw


def _idx_payload(path: Path, raw: bytes, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    expected = offset + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"header says shape {shape} ({expected} bytes), file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def read_cifar10(paths: Paths) -> Splits:
    """CIFAR-10 python batches, read straight from the tarball: images ``(N, 32, 32, 3)`` HWC uint8."""
    with reading(paths["cifar-10-python.tar.gz"]):
        return _parse_cifar10(paths["cifar-10-python.tar.gz"])


def _parse_cifar10(tarball: Path) -> Splits:
    batches: dict[str, dict[bytes, Any]] = {}
    # Stream mode reads the 170 MB archive once, front to back; random access would re-decompress.
    with tarfile.open(tarball, "r|gz") as archive:
        for member in archive:
            name = Path(member.name).name
            if member.isfile() and (name.startswith("data_batch_") or name in ("test_batch", "batches.meta")):
                stream = archive.extractfile(member)
                assert stream is not None  # regular files always have a stream
                batches[name] = _NumpyOnlyUnpickler(io.BytesIO(stream.read()), encoding="bytes").load()

    names = tuple(label.decode() for label in batches["batches.meta"][b"label_names"])
    if names != CIFAR10_CLASSES:
        raise ValueError(f"CIFAR-10 label names {names} differ from {CIFAR10_CLASSES}")
    train = sorted(name for name in batches if name.startswith("data_batch_"))
    return {
        "train": _cifar_arrays([batches[name] for name in train]),
        "test": _cifar_arrays([batches["test_batch"]]),
    }


def _cifar_arrays(batches: list[dict[bytes, Any]]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([batch[b"data"] for batch in batches])  # (N, 3072): R plane, G plane, B plane
    images = np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (N, 32, 32, 3)
    labels = np.concatenate([np.asarray(batch[b"labels"], dtype=np.int64) for batch in batches])
    return images, labels


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global but the few numpy needs, so an untrusted batch cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which is not allowed")
        return super().find_class(module, name)
