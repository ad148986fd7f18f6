"""Validate: the dataset's Great Expectations suite; a failing batch stops the flow here.

Rows appended to a catalog file (``UnitParams.append_files``) are validated with the catalog's:
the suite runs on the data with them, its row-count bounds moved up by the appended rows.
Under the quick profile the suite checks the whole data, and only then is it subsampled: a bad
row outside the subsample still stops the flow. A file that does not even parse has stopped it
earlier, in ingest (``DataLoadError``, a ``DataValidationError``).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.data import Dataset
from pipeline.validation import ValidationReport, validate_frame, validation_frame
from tasks import run_logger


@task(cache_policy=NO_CACHE, task_run_name="validate-{dataset.name}")
def validate(dataset: Dataset) -> ValidationReport:
    """Raise DataValidationError (listing every failed expectation) unless the batch passes."""
    frame = validation_frame(dataset.name, dataset.splits)
    report = validate_frame(frame, dataset.name, batch_label=dataset.ref.version[:12],
                            extra_rows=dataset.appended_rows)
    run_logger().info("%s: %d expectations passed", dataset.name, report.n_expectations)
    return report


def ingest_validated(name: str, params) -> Dataset:
    """The two stages every flow opens with: ingest the dataset, then validate all of it; the
    quick profile's subsample is taken after validation."""
    from tasks.ingest import ingest

    dataset = ingest(name, params.profile, params.seed, params.data_files, params.append_files,
                     subsample=False)
    validate(dataset)
    return dataset.subsampled()
