"""The dataset catalog: name -> canonical files, official URLs and checksums, loader, quick size.

Checksums are sha256 where the source (or a well-known mirror of the same bytes) publishes one,
md5 only where md5 is all that is published (CIFAR-10, UCI Adult), written as pooch's registry
writes them (``"algorithm:hexdigest"``). Where no official checksum exists, the mirror's sha256
stands in, marked as such below. Download URLs are https.

A file that cannot be parsed (bad encoding, broken CSV, truncated or non-gzip data, an empty file)
raises :class:`~pipeline.data.errors.DataLoadError` naming the file, after a copy of it is put in
``MLPATH_HOME/quarantine/`` with the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.data import loaders
from pipeline.data.errors import DataLoadError, check_not_empty, quarantine_file
from pipeline.data.fetch import FileSpec, ResolvedFile, file_digest, resolve_file
from pipeline.settings import PROFILES, mlpath_home


class UnknownDatasetError(LookupError):
    """The catalog has no dataset of this name."""


@dataclass(frozen=True)
class DatasetSpec:
    """One catalog entry.

    ``quick_sizes`` maps a split to its row count under ``profile="quick"``; splits not listed
    are kept whole. ``bundled_by`` names the library that ships a file-less dataset (else "").
    ``appendable`` maps each tabular file to the split it holds: the files ``load_dataset``'s
    ``append`` can add rows to. ``sensitive`` names the columns that hold protected attributes
    (sex, race): a classifier evaluated on this dataset's rows gets a fairness audit by them
    (``pipeline.audit.fairness``, through ``pipeline.features.sensitive_attributes``).
    """

    name: str
    files: tuple[FileSpec, ...]
    loader: Callable[[Mapping[str, Path]], dict[str, Any]]
    quick_sizes: Mapping[str, int] = field(default_factory=dict)
    bundled_by: str = ""
    appendable: Mapping[str, str] = field(default_factory=dict)
    sensitive: tuple[str, ...] = ()


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
    """A loaded dataset: ``splits`` in the format documented in :mod:`pipeline.data`.

    ``pending`` holds quick sizes not applied yet (``load_dataset(..., subsample=False)``): the
    splits are whole, so that validation sees every row, and ``subsampled()`` applies them with
    ``seed``. ``ref`` already describes the subsampled data.
    """

    name: str
    splits: dict[str, Any]
    ref: DataRef
    appended_rows: int = 0  # rows that ``append`` added (already in ``splits``)
    pending: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    def subsampled(self) -> Dataset:
        """This dataset with its pending quick subsample applied (itself when none is pending)."""
        if not self.pending:
            return self
        return replace(self, splits=_subsample(self.splits, self.pending, self.seed), pending={})


# yann.lecun.com serves MNIST over plain http with md5s only; this https mirror (torchvision's)
# serves the same official .gz files.
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_ADULT_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/"
_GLUE_SST2_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
_TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
_KAGGLE_API = "https://www.kaggle.com/api/v1/"
_TITANIC_URL = _KAGGLE_API + "competitions/data/download/titanic/"
_MALL_URL = _KAGGLE_API + "datasets/download/vjchoudhary7/customer-segmentation-tutorial-in-python/"
_STOCKS_URL = _KAGGLE_API + "datasets/download/borismarjanovic/price-volume-data-for-all-us-stocks-etfs/Stocks/"


def _mnist_file(name: str, sha256: str) -> FileSpec:
    return FileSpec(name, (_MNIST_URL + name,), f"sha256:{sha256}")


_SPECS = (
    DatasetSpec("iris", (), loaders.load_iris, bundled_by="sklearn"),
    DatasetSpec("line", (), loaders.make_line, bundled_by="mlpath (generated)"),
    DatasetSpec("digit_strings", (), loaders.make_digit_strings, bundled_by="mlpath (generated)",
                quick_sizes={"train": 3000, "val": 200, "test": 200}),
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
        sensitive=("Sex",),
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
            # sha256 of the official .gz archives (9,912,422 / 28,881 / 1,648,877 / 4,542 bytes;
            # official md5s f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...) as published
            # for the https mirrors by TensorFlow Datasets. The labels equal the local mirror's
            # files; its two image archives were recompressed (same decompressed bytes), so only
            # the mirror manifest vouches for those copies.
            _mnist_file("train-images-idx3-ubyte.gz",
                        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            _mnist_file("train-labels-idx1-ubyte.gz",
                        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            _mnist_file("t10k-images-idx3-ubyte.gz",
                        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            _mnist_file("t10k-labels-idx1-ubyte.gz",
                        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ),
        loaders.read_mnist,
        quick_sizes={"train": 6000, "test": 1000},
    ),
    DatasetSpec(
        "cifar10",
        # Official tarball md5 (the only checksum published). The mirror's tarball is a
        # JPEG-derived rebuild, not these bytes.
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
        sensitive=("sex", "race"),
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
    subsample: bool = True,
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
    subsample : False keeps every row under ``"quick"`` too, the sizes left in
        ``Dataset.pending``: validate the whole data, then call ``Dataset.subsampled()``. The
        ``ref`` is the same either way.

    Returns
    -------
    Dataset
        ``splits`` as documented in :mod:`pipeline.data`, and a ``DataRef`` for lineage.

    Raises
    ------
    UnknownDatasetError, ValueError, ChecksumError, DatasetNotFoundError
    DataLoadError
        A file cannot be parsed; it is copied to ``MLPATH_HOME/quarantine/`` first.
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
    splits = _load(spec, paths)
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
    pending: dict[str, int] = {}
    if profile == "quick":
        pending = dict(spec.quick_sizes)
        lineage |= {"seed": seed, "quick_sizes": dict(spec.quick_sizes)}
    version = hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest()
    rows = sum(min(_count_rows(data), pending.get(split, _count_rows(data))) for split, data in splits.items())
    described = "; ".join(item.describe() for item in appended)
    if appended:
        source = ";".join([source, *dict.fromkeys(f"append:{item.path}" for item in appended)])
    ref = DataRef(name, version, rows, source, profile, described)
    dataset = Dataset(name, splits, ref, sum(item.rows for item in appended), pending, seed)
    return dataset.subsampled() if subsample else dataset


def _load(spec: DatasetSpec, paths: Mapping[str, Path], extra: tuple[str, Path] | None = None) -> dict[str, Any]:
    """``spec.loader(paths)``; a file it cannot parse (or an empty one) is quarantined and raised
    as DataLoadError naming the dataset and catalog file. ``extra``: the appended (file, path)."""
    try:
        for path in paths.values():
            check_not_empty(path)
        return spec.loader(paths)
    except DataLoadError as error:
        names = {path: file_name for file_name, path in paths.items()}
        if extra is not None:
            names[extra[1]] = extra[0]
        file = names.get(error.path, error.path.name)
        kept = quarantine_file(error, mlpath_home() / "quarantine", spec.name, file)
        raise error.within(spec.name, file, kept) from error.__cause__


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
            frame = _load(spec, {**paths, file_name: path}, (file_name, path))[split]
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
