"""Ingest: a dataset from the catalog (mirror → cache → download), with its DataRef."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.data import ChecksumError, Dataset, DatasetNotFoundError, load_dataset
from tasks import run_logger


def _retry_on_io(task, task_run, state) -> bool:
    """Retry flaky I/O only: a bad checksum or a missing dataset will not heal by waiting."""
    try:
        state.result()
    except (ChecksumError, DatasetNotFoundError):
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=[2, 8], retry_condition_fn=_retry_on_io,
      cache_policy=NO_CACHE, task_run_name="ingest-{name}-{profile}")
def ingest(name: str, profile: str, seed: int = 0, files: dict[str, str] | None = None,
           append: dict[str, list[str]] | None = None) -> Dataset:
    """Load ``name`` for ``profile``; ``files`` replaces catalog files with local ones, ``append``
    adds the rows of local files to catalog files (both keyed "dataset/file", other datasets' keys
    ignored). The DataRef records the appended files, and the result is validated downstream."""
    mine = _of_dataset(name, files)
    extra = _of_dataset(name, append)
    dataset = load_dataset(name, profile, seed=seed, files=mine or None, append=extra or None)
    ref = dataset.ref
    run_logger().info("ingested %s (%s): %d rows from %s, version %s%s", name, ref.profile, ref.rows,
                      ref.source, ref.version[:10], f"; appended {ref.appended}" if ref.appended else "")
    return dataset


def _of_dataset(name: str, files: dict | None) -> dict:
    """``{"titanic/train.csv": x}`` -> ``{"train.csv": x}`` for ``name`` "titanic"."""
    return {key.split("/", 1)[1]: value for key, value in (files or {}).items()
            if key.split("/", 1)[0] == name}
