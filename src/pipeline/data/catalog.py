"""The dataset catalog: name -> canonical files, official URLs and checksums, loader, quick size.

Checksums are the officially published ones (md5 where only md5 is published), written as pooch's
registry writes them (``"algorithm:hexdigest"``). Where no official checksum exists, the mirror's
sha256 stands in, marked as such below.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data import loaders
from pipeline.data.fetch import FileSpec, ResolvedFile, file_digest, resolve_file
from pipeline.settings import PROFILES


class UnknownDatasetError(LookupError):
    """The catalog has no dataset of this name."""


@dataclass(frozen=True)
class DatasetSpec:
    """One catalog entry.

    ``quick_sizes`` maps a split to its row count under ``profile="quick"``; splits not listed
    are kept whole. ``bundled_by`` names the library that ships a file-less dataset (else "").
    ``appendable`` maps each tabular file to the split it holds: the files ``load_dataset``'s
    ``append`` can add rows to.
    """

    name: str
    files: tuple[FileSpec, ...]
    loader: Callable[[Mapping[str, Path]], dict[str, Any]]
    quick_sizes: Mapping[str, int] = field(default_factory=dict)
    bundled_by: str = ""
    appendable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DataRef:
    """What was loaded, for lineage: ``version`` hashes the files' sha256s and the profile.

    ``appended`` lists rows appended to catalog files (``load_dataset``'s ``append``), one
    ``file+=path (rows, sha256 prefix)`` per appended file, ``; ``-separated; "" when none. Those
    rows count in ``rows`` and their sha256s in ``version``.
    """

    name: str
    version: str
    rows: int
    source: str
    profile: str
    appended: str = ""

    def as_dict(self) -> dict[str, str | int]:
        """The fields as a flat dict, ready for ``mlflow.log_params`` (``appended`` only when set)."""
        data = asdict(self)
        if not self.appended:
            del data["appended"]
        return data


@dataclass
class Dataset:
    """A loaded dataset: ``splits`` in the format documented in :mod:`pipeline.data`."""

    name: str
    splits: dict[str, Any]
    ref: DataRef
    appended_rows: int = 0  # rows that ``append`` added (already in ``splits``)


_MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
_GLUE_SST2_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
_TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
_KAGGLE_API = "https://www.kaggle.com/api/v1/"
_TITANIC_URL = _KAGGLE_API + "competitions/data/download/titanic/"
_MALL_URL = _KAGGLE_API + "datasets/download/vjchoudhary7/customer-segmentation-tutorial-in-python/"
_STOCKS_URL = _KAGGLE_API + "datasets/download/borismarjanovic/price-volume-data-for-all-us-stocks-etfs/Stocks/"


def _mnist_file(name: str, md5: str) -> FileSpec:
    return FileSpec(name, tuple(base + name for base in _MNIST_URLS), f"md5:{md5}")


_SPECS = (
    DatasetSpec("iris", (), loaders.load_iris, bundled_by="sklearn"),
    DatasetSpec(
        "titanic",
        (
            FileSpec(
                "train.csv",
                (_TITANIC_URL + "train.csv",),
                "sha256:7d118fef8b6ccf7f81111877bc388536f7b1e498a655e3d649d19aaa010e9f6f",
            ),
            FileSpec(
                "test.csv",
                (_TITANIC_URL + "test.csv",),
                "sha256:56023b9948236f3c7a1c9448fcf418b283e109ef177fa8c7e069158dd7dd52b2",
            ),
        ),
        loaders.read_titanic,
        appendable={"train.csv": "train", "test.csv": "test"},
    ),
    DatasetSpec(
        "mall_customers",
        (
            FileSpec(
                "Mall_Customers.csv",
                (_MALL_URL + "Mall_Customers.csv",),
                # No official checksum: the mirror's sha256 of the "Gender" variant. The older
                # "Genre"/CRLF variant (sha256 293887b3...) is rejected rather than renamed.
                "sha256:194975e1f84d29ee7a99ca72bc14dcd55af355384f35171ef7e9e053ac7f6612",
            ),
        ),
        loaders.read_mall_customers,
        appendable={"Mall_Customers.csv": "data"},
    ),
    DatasetSpec(
        "mnist",
        (
            # Official md5s of the .gz archives. The mirror's two image archives were recompressed
            # (same decompressed bytes), so only the mirror manifest vouches for those copies.
            _mnist_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            _mnist_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            _mnist_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            _mnist_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        loaders.read_mnist,
        quick_sizes={"train": 6000, "test": 1000},
    ),
    DatasetSpec(
        "cifar10",
        # Official tarball md5. The mirror's tarball is a JPEG-derived rebuild, not these bytes.
        (FileSpec("cifar-10-python.tar.gz", (_CIFAR10_URL,), "md5:c58f30108f718f92721af3b95e74349a"),),
        loaders.read_cifar10,
        quick_sizes={"train": 5000, "test": 1000},
    ),
    DatasetSpec(
        "adult",
        (
            FileSpec("adult.data", (_ADULT_URL + "adult.data",), "md5:5d7c39d7b8804f071cdd1f2a7c460872"),
            FileSpec("adult.test", (_ADULT_URL + "adult.test",), "md5:35238206dfdf7f1fe215bbb874adecdc"),
        ),
        loaders.read_adult,
        quick_sizes={"train": 4000, "test": 2000},
        appendable={"adult.data": "train", "adult.test": "test"},
    ),
    DatasetSpec(
        "sst2",
        (
            FileSpec(
                "train.tsv",
                (_GLUE_SST2_URL,),
                "sha256:48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                member="SST-2/train.tsv",
            ),
            FileSpec(
                "dev.tsv",
                (_GLUE_SST2_URL,),
                "sha256:54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
                member="SST-2/dev.tsv",
            ),
            # Not a GLUE file (GLUE hides test labels): the mirror's labelled copy of test.tsv,
            # labels from the original SST test split. No URL, and the sha256 is the mirror's.
            FileSpec(
                "test_labeled.tsv",
                (),
                "sha256:4c395e34c8ae196d76abc3724c42336f2e17ad6dab6977be7a690f4c36b140ca",
            ),
        ),
        loaders.read_sst2,
        quick_sizes={"train": 4000, "test": 1000},
        appendable={"train.tsv": "train", "dev.tsv": "dev", "test_labeled.tsv": "test"},
    ),
    DatasetSpec(
        "tinyshakespeare",
        (
            FileSpec(
                "input.txt",
                (_TINYSHAKESPEARE_URL,),
                "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            ),
        ),
        loaders.read_tinyshakespeare,
    ),
    DatasetSpec(
        "stocks",
        (
            FileSpec(
                "msft.us.txt",
                (_STOCKS_URL + "msft.us.txt",),
                # No official checksum is published: the mirror's sha256 (its values were verified).
                "sha256:4804b478e15caad8ec9d7a2799f59ab0301a3ea450fef5b8e35db6a1adfa62bd",
            ),
        ),
        loaders.read_stocks,
        appendable={"msft.us.txt": "prices"},
    ),
)
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}


def load_dataset(
    name: str,
    profile: str = "full",
    *,
    seed: int = 0,
    files: Mapping[str, str | Path] | None = None,
    append: Mapping[str, Sequence[str | Path]] | None = None,
) -> Dataset:
    """Load a catalog dataset, checked and optionally subsampled.

    Parameters
    ----------
    name : one of ``DATASETS``.
    profile : ``"full"`` (everything) or ``"quick"`` (each split in ``quick_sizes`` subsampled
        to that many rows, deterministically from ``seed``, original order kept).
    seed : seed of the quick subsample; ignored by ``"full"``.
    files : file name -> path of a user-supplied replacement (e.g. a new batch). Used as is,
        without a checksum: validate it downstream.
    append : file name -> paths of files in that file's format whose rows are appended to the
        split it holds (``DatasetSpec.appendable``), before any quick subsample. Each path's
        sha256 joins the version; validate the result downstream.

    Returns
    -------
    Dataset
        ``splits`` as documented in :mod:`pipeline.data`, and a ``DataRef`` for lineage.

    Raises
    ------
    UnknownDatasetError, ValueError, ChecksumError, DatasetNotFoundError
    """
    spec = dataset_spec(name)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    overrides = dict(files or {})
    unknown = set(overrides) - {file.name for file in spec.files}
    if unknown:
        valid = ", ".join(file.name for file in spec.files) or "none"
        raise ValueError(f"{name} has no file(s) {sorted(unknown)}; its files: {valid}")

    extra = {file_name: [Path(path) for path in paths] for file_name, paths in (append or {}).items() if paths}
    not_appendable = sorted(set(extra) - set(spec.appendable))
    if not_appendable:
        valid = ", ".join(spec.appendable) or "none"
        raise ValueError(f"{name} has no file(s) {not_appendable} to append rows to; appendable: {valid}")

    resolved = {file.name: resolve_file(name, file, overrides.get(file.name)) for file in spec.files}
    paths = {file_name: found.path for file_name, found in resolved.items()}
    splits = spec.loader(paths)
    if resolved:
        digests = {file_name: found.sha256 for file_name, found in resolved.items()}
        source = _describe_origins(list(resolved.values()))
    else:
        digests = {spec.bundled_by: _frames_digest(splits)}
        source = spec.bundled_by

    lineage: dict[str, Any] = {"dataset": name, "files": digests, "profile": profile}
    splits, appended = _append_rows(spec, splits, paths, extra)
    if appended:
        lineage["appended"] = [[item.file, item.sha256] for item in appended]
    if profile == "quick":
        splits = _subsample(splits, spec.quick_sizes, seed)
        lineage |= {"seed": seed, "quick_sizes": dict(spec.quick_sizes)}
    version = hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest()
    rows = sum(_count_rows(data) for data in splits.values())
    described = "; ".join(item.describe() for item in appended)
    if appended:
        source = ";".join([source, *dict.fromkeys(f"append:{item.path}" for item in appended)])
    ref = DataRef(name, version, rows, source, profile, described)
    return Dataset(name, splits, ref, sum(item.rows for item in appended))


@dataclass(frozen=True)
class _Appended:
    file: str
    path: Path
    rows: int
    sha256: str

    def describe(self) -> str:
        return f"{self.file}+={self.path} ({self.rows} rows, sha256 {self.sha256[:12]})"


def _append_rows(spec: DatasetSpec, splits: dict[str, Any], paths: Mapping[str, Path],
                 extra: Mapping[str, list[Path]]) -> tuple[dict[str, Any], list[_Appended]]:
    """``splits`` with each extra file's rows appended to its file's split, read by the dataset's
    own loader (the extra file stands in for the catalog file), columns as they come: a batch
    whose columns differ shows up in validation, not here."""
    appended: list[_Appended] = []
    splits = dict(splits)
    for file_name, extra_paths in extra.items():
        split = spec.appendable[file_name]
        parts = [splits[split]]
        for path in extra_paths:
            if not path.is_file():
                raise FileNotFoundError(f"{spec.name}: no file {path} to append to {file_name}")
            frame = spec.loader({**paths, file_name: path})[split]
            parts.append(frame)
            appended.append(_Appended(file_name, path, len(frame), file_digest(path)))
        splits[split] = pd.concat(parts, ignore_index=True)
    return splits, appended


def dataset_spec(name: str) -> DatasetSpec:
    """The catalog entry for ``name``; raises :class:`UnknownDatasetError` listing valid names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}") from None


def _describe_origins(found: list[ResolvedFile]) -> str:
    """One ``kind:location`` string: the shared folder when all files came from one, else all of them."""
    kinds = {item.origin.split(":", 1)[0] for item in found}
    folders = {item.path.parent for item in found}
    if len(found) > 1 and len(kinds) == 1 and len(folders) == 1 and kinds != {"download"}:
        return f"{kinds.pop()}:{folders.pop()}"
    return ";".join(dict.fromkeys(item.origin for item in found))


def _frames_digest(splits: dict[str, Any]) -> str:
    """Content hash of DataFrame splits, the version of data that ships without files."""
    digest = hashlib.sha256()
    for split in sorted(splits):
        digest.update(split.encode())
        digest.update(pd.util.hash_pandas_object(splits[split], index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _count_rows(data: Any) -> int:
    """Rows of a split: DataFrame rows, samples of an ``(X, y)`` pair, or lines of a text."""
    if isinstance(data, str):
        return len(data.splitlines())
    if isinstance(data, tuple):
        return len(data[0])
    return len(data)


def _subsample(splits: dict[str, Any], sizes: Mapping[str, int], seed: int) -> dict[str, Any]:
    """Keep ``sizes[split]`` random rows of each listed split, in their original order."""
    rng = np.random.default_rng(seed)
    sampled = dict(splits)
    for split, size in sizes.items():
        total = _count_rows(splits[split])
        if size >= total:
            continue
        keep = np.sort(rng.choice(total, size=size, replace=False))
        data = splits[split]
        if isinstance(data, tuple):
            sampled[split] = tuple(array[keep] for array in data)
        else:
            sampled[split] = data.iloc[keep].reset_index(drop=True)
    return sampled
