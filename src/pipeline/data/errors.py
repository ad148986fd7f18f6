"""Load errors: a file that cannot be parsed is bad data, reported in one line and quarantined.

``DataLoadError`` is a :class:`pipeline.validation.DataValidationError` (and a ``ValueError``), so
whatever stops a flow on a failed suite stops it on an unreadable file too, before training, and
the ingest task does not retry it. Its one-line message names the file and the reason (encoding,
CSV parse, gzip, IDX, tar/pickle, empty file, invalid manifest). ``quarantine_file`` copies the
bad file to ``MLPATH_HOME/quarantine/`` beside a ``.reason.json``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import pickle
import re
import shutil
import struct
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipeline.validation import DataValidationError, ValidationReport

_MAX_REASON = 300


class DataLoadError(DataValidationError, ValueError):
    """A data file could not be read: ``path``, ``reason``, and where it was quarantined.

    ``report`` is a failed :class:`ValidationReport` with one ``file_loads`` failure, so code that
    handles ``DataValidationError`` (and its ``report``) handles this too.
    """

    def __init__(self, path: Path | str, reason: str, *, dataset: str = "", file: str = "",
                 quarantine_path: Path | None = None):
        self.path, self.reason, self.dataset, self.file = Path(path), _one_line(reason), dataset, file
        self.quarantine_path = quarantine_path
        failure = {"expectation": "file_loads", "column": None, "unexpected_count": None,
                   "unexpected_percent": None, "examples": [], "observed_value": None, "details": None,
                   "kwargs": {"path": str(self.path)}, "exception": self.reason}
        self.report = ValidationReport(suite=dataset or "load", success=False, n_expectations=1,
                                       failures=[failure], batch_label=file or self.path.name,
                                       quarantine_path=quarantine_path)
        name = f"{dataset}/{file}: " if dataset and file else ""
        kept = f" (quarantined as {quarantine_path})" if quarantine_path else ""
        Exception.__init__(self, f"{name}cannot load {self.path}: {self.reason}{kept}")

    def __reduce__(self):  # picklable (Prefect may persist a failed task's exception)
        return _rebuild, (self.path, self.reason, self.dataset, self.file, self.quarantine_path)

    def within(self, dataset: str, file: str, quarantine_path: Path | None) -> DataLoadError:
        """The same error, naming the catalog dataset and file, and the quarantined copy."""
        return DataLoadError(self.path, self.reason, dataset=dataset, file=file, quarantine_path=quarantine_path)


def _rebuild(path, reason, dataset, file, quarantine_path) -> DataLoadError:
    return DataLoadError(path, reason, dataset=dataset, file=file, quarantine_path=quarantine_path)


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


@contextmanager
def reading(path: Path | str) -> Iterator[None]:
    """Turn the parse, encoding and decompression errors of reading ``path`` into DataLoadError.

    Other OSErrors (a disk or network hiccup) pass through unchanged: those may heal on a retry.
    """
    try:
        yield
    except DataLoadError:
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error, UnicodeError, csv.Error, struct.error,
            tarfile.TarError, pickle.UnpicklingError, ValueError, KeyError, IndexError) as exc:
        raise DataLoadError(path, describe(exc, Path(path))) from exc


def describe(exc: BaseException, path: Path | None = None) -> str:
    """A one-line reason for a load failure, with the kind of failure first."""
    message = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        head = _head(path) if path else b""
        bom = next((name for mark, name in _BOMS if head.startswith(mark)), None)
        hint = f" (it starts with a {bom} byte-order mark: re-save it as UTF-8)" if bom else ""
        return f"not UTF-8 text: byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start}{hint}"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a gzip file: {message}"
    if isinstance(exc, EOFError | zlib.error):
        return f"truncated or corrupt gzip data: {message}"
    if isinstance(exc, tarfile.TarError):
        return f"not a readable tar archive: {message}"
    if isinstance(exc, pickle.UnpicklingError):
        return f"unsafe or corrupt pickle: {message}"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {message}"
    if isinstance(exc, KeyError):
        return f"missing entry {message}"
    kind = type(exc).__name__
    if kind in ("ParserError", "EmptyDataError"):
        return f"CSV parse error: {message}"
    return f"{kind}: {message}"


_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read(4)
    except OSError:
        return b""


def check_not_empty(path: Path) -> None:
    """A zero-byte file is never a valid dataset file (an interrupted copy, a failed export)."""
    if path.is_file() and path.stat().st_size == 0:
        raise DataLoadError(path, "empty file (0 bytes)")


def quarantine_file(error: DataLoadError, folder: Path, dataset: str, file: str) -> Path | None:
    """Copy the bad file to ``folder`` with a ``.reason.json`` beside it; the copy's path.

    None when the file cannot be copied (gone, unreadable): the error is raised all the same.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}-{stamp}-{file or error.path.name}")
    target = folder / stem
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(error.path, target)
    except OSError:
        return None
    reason = {"dataset": dataset, "file": file, "source": str(error.path), "reason": error.reason,
              "quarantine_path": str(target), "time": stamp}
    target.with_name(f"{stem}.reason.json").write_text(json.dumps(reason, indent=2))
    return target
