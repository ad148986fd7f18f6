"""Ingest: a dataset from the catalog (mirror → cache → download), with its DataRef."""

from __future__ import annotations

import errno

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.data import Dataset, load_dataset
from tasks import run_logger

# OSErrors that may heal by waiting: an interrupted or refused connection, a timeout, a busy or
# briefly failing device. A missing file, a refused permission or a disk full will not.
_TRANSIENT_ERRNOS = frozenset(getattr(errno, name) for name in (
    "EAGAIN", "EBUSY", "EINTR", "EIO", "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED",
    "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EPIPE", "ESTALE") if hasattr(errno, name))


def is_transient(exc: BaseException) -> bool:
    """True for network and transient I/O errors only.

    Never for data errors: a bad checksum, a missing dataset, a file that does not parse
    (DataLoadError, including a corrupt gzip, which Python raises as an OSError), a failed suite.
    """
    import gzip

    import requests

    from pipeline.data import ChecksumError, DatasetNotFoundError
    from pipeline.validation import DataValidationError

    if isinstance(exc, (DataValidationError, ChecksumError, DatasetNotFoundError, gzip.BadGzipFile)):
        return False
    if isinstance(exc, requests.HTTPError):  # pooch already retried it; a 5xx may still heal
        status = exc.response.status_code if exc.response is not None else None
        return status is None or status >= 500 or status in (408, 429)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def _retry_on_io(task, task_run, state) -> bool:
    """Retry flaky I/O only (``is_transient``): bad data will not heal by waiting."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


@task(retries=2, retry_delay_seconds=[2, 8], retry_condition_fn=_retry_on_io,
      cache_policy=NO_CACHE, task_run_name="ingest-{name}-{profile}")
def ingest(name: str, profile: str, seed: int = 0, files: dict[str, str] | None = None,
           append: dict[str, list[str]] | None = None, subsample: bool = True) -> Dataset:
    """Load ``name`` for ``profile``; ``files`` replaces catalog files with local ones, ``append``
    adds the rows of local files to catalog files (both keyed "dataset/file", other datasets' keys
    ignored). The DataRef records the appended files, and the result is validated downstream.
    ``subsample=False`` leaves the quick subsample pending (``Dataset.subsampled()``), so that
    validation sees every row first."""
    mine = _of_dataset(name, files)
    extra = _of_dataset(name, append)
    dataset = load_dataset(name, profile, seed=seed, files=mine or None, append=extra or None,
                           subsample=subsample)
    ref = dataset.ref
    run_logger().info("ingested %s (%s): %d rows from %s, version %s%s", name, ref.profile, ref.rows,
                      ref.source, ref.version[:10], f"; appended {ref.appended}" if ref.appended else "")
    return dataset


def _of_dataset(name: str, files: dict | None) -> dict:
    """``{"titanic/train.csv": x}`` -> ``{"train.csv": x}`` for ``name`` "titanic"."""
    return {key.split("/", 1)[1]: value for key, value in (files or {}).items()
            if key.split("/", 1)[0] == name}
