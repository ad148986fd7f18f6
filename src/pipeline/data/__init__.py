"""Dataset catalog: ``load_dataset(name, profile)`` -> checked, optionally subsampled splits.

Files come from a caller's override, the local mirror (``MLPATH_DATA_MIRROR``), the cache
(``MLPATH_HOME/data``) or a download by pooch, always checksummed except overrides; see
:mod:`pipeline.data.fetch`. ``profile="quick"`` subsamples the big splits (sizes in
``DATASETS[name].quick_sizes``) with ``numpy.random.default_rng(seed)``, keeping the original order;
``subsample=False`` defers that (``Dataset.subsampled()``) so that validation sees every row. A file
that cannot be parsed raises ``DataLoadError`` (a ``DataValidationError``), and is quarantined.

Split formats (``Dataset.splits``):

- ``iris``: ``{"data": DataFrame}`` with float ``sepal_length, sepal_width, petal_length,
  petal_width``, ``species`` (setosa/versicolor/virginica) and int ``target`` (0-2).
- ``line``: ``{"data": DataFrame}`` with float ``x`` and ``y``: 1,000 points generated with a fixed
  seed, ``y = 3·x + 2 + N(0, 1)``, ``x ~ U(-3, 3)`` (Unit 3; no files, ``loaders.make_line``).
- ``digit_strings``: ``{"train", "val", "test"}`` DataFrames with str ``source`` (5-12 digits) and
  ``target`` (its reversal): 20,000 / 1,000 / 1,000 distinct strings, none in two splits, generated
  with a fixed seed (the paper unit; no files, ``loaders.make_digit_strings``).
- ``titanic``: ``{"train": DataFrame (12 Kaggle columns), "test": DataFrame (11, no Survived)}``.
- ``mall_customers``: ``{"data": DataFrame}``: CustomerID, Gender, Age, Annual Income (k$),
  Spending Score (1-100).
- ``mnist``: ``{"train": (X, y), "test": (X, y)}``, X uint8 ``(N, 28, 28)``, y int64 ``(N,)``.
- ``cifar10``: ``{"train": (X, y), "test": (X, y)}``, X uint8 ``(N, 32, 32, 3)`` (HWC), y int64
  ``(N,)`` indexing ``CIFAR10_CLASSES``. The mirror's copy is a JPEG-derived rebuild: pixels
  differ slightly from the official release.
- ``adult``: ``{"train", "test"}`` DataFrames with the 15 columns of adult.names (``ADULT_COLUMNS``);
  ``?`` is NaN, ``income`` is ``"<=50K"`` or ``">50K"`` in both splits.
- ``sst2``: ``{"train", "dev", "test"}`` DataFrames with ``sentence`` (str) and ``label`` (int,
  1 = positive). ``test`` is the mirror-only ``test_labeled.tsv``, not an official GLUE file
  (GLUE hides test labels): report leaderboard numbers on ``dev``.
- ``tinyshakespeare``: ``{"text": str}``; its ``rows`` in ``DataRef`` count lines.
- ``stocks``: ``{"prices": DataFrame}`` of MSFT: Date (datetime64), Open, High, Low, Close (float),
  Volume, OpenInt (int).
"""

from pipeline.data.catalog import DATASETS, DataRef, Dataset, DatasetSpec, UnknownDatasetError, load_dataset
from pipeline.data.errors import DataLoadError
from pipeline.data.fetch import ChecksumError, DatasetNotFoundError
from pipeline.data.loaders import ADULT_COLUMNS, CIFAR10_CLASSES

__all__ = [
    "ADULT_COLUMNS",
    "CIFAR10_CLASSES",
    "DATASETS",
    "ChecksumError",
    "DataLoadError",
    "DataRef",
    "Dataset",
    "DatasetNotFoundError",
    "DatasetSpec",
    "UnknownDatasetError",
    "load_dataset",
]
