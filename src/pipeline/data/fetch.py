"""Find a dataset file on disk, or download it, and prove its bytes are the expected ones.

Resolution order for one file of one dataset (first hit wins):

1. an override path from the caller: new, untrusted data, so no checksum (validation guards it);
2. ``$MLPATH_DATA_MIRROR/<dataset>/<file>``, checked against the sha256 in the mirror's own
   ``manifest.json`` (mirror copies may legitimately differ from the official bytes);
3. the cache ``$MLPATH_HOME/data/<dataset>/<file>``, checked against the official checksum;
4. a download from each official URL in turn, with retries and exponential back-off. The file is
   written beside the cache and renamed into it only once the official checksum passes.

A checksum mismatch raises :class:`ChecksumError`; when nothing works,
:class:`DatasetNotFoundError` lists every place tried.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import data_mirror, mlpath_home

DOWNLOAD_TRIES = 3
BACKOFF_S = 1.0  # waits 1 s, then 2 s, between the tries of one URL
_CHUNK = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"


class ChecksumError(ValueError):
    """A file's bytes do not match the checksum it was expected to have."""

    def __init__(self, path: Path | str, algorithm: str, expected: str, actual: str, hint: str = ""):
        self.path, self.algorithm, self.expected, self.actual = str(path), algorithm, expected, actual
        message = f"{algorithm} mismatch for {path}: expected {expected}, got {actual}."
        super().__init__(f"{message} {hint}" if hint else message)


class DatasetNotFoundError(FileNotFoundError):
    """No usable copy of a dataset file was found or could be downloaded."""


@dataclass(frozen=True)
class Checksum:
    """An expected digest: ``algorithm`` is a :mod:`hashlib` name, ``hexdigest`` lower-case hex."""

    algorithm: str
    hexdigest: str


@dataclass(frozen=True)
class FileSpec:
    """One canonical file of a dataset.

    ``urls`` are tried in order (empty: the file is mirror-only). ``member`` names the file
    inside a zip download; Kaggle may also wrap a single file in a zip, which is unwrapped too.
    """

    name: str
    urls: tuple[str, ...]
    checksum: Checksum
    member: str | None = None


@dataclass(frozen=True)
class ResolvedFile:
    """A file ready to read: where it is, its sha256, and how it was found (``kind:location``)."""

    path: Path
    sha256: str
    origin: str


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, hashed in chunks and memoised per (path, mtime, size)."""
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size, algorithm)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int, algorithm: str) -> str:
    # mtime_ns and size are only part of the cache key: a rewritten file is hashed again.
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_file(dataset: str, spec: FileSpec, override: str | Path | None = None) -> ResolvedFile:
    """Locate ``spec`` for ``dataset`` by override, mirror, cache, then download.

    Raises
    ------
    ChecksumError
        A mirror or cache copy, or every download, has the wrong bytes.
    DatasetNotFoundError
        No copy was found and none could be downloaded.
    """
    if override is not None:
        path = Path(override).expanduser().resolve()
        if not path.is_file():
            raise DatasetNotFoundError(f"override for {dataset}/{spec.name}: {path} is not a file")
        return ResolvedFile(path, file_digest(path), f"override:{path}")

    tried: list[str] = []
    for attempt in (_from_mirror, _from_cache, _download):
        found = attempt(dataset, spec, tried)
        if found is not None:
            return found
    advice = "Set MLPATH_DATA_MIRROR to a local mirror folder (<mirror>/<dataset>/<file> plus manifest.json)"
    if any("kaggle.com" in url for url in spec.urls):
        advice += ", or set KAGGLE_USERNAME and KAGGLE_KEY so the Kaggle API accepts the download"
    attempts = "\n  - ".join(tried)
    raise DatasetNotFoundError(f"cannot find {dataset}/{spec.name}. Tried:\n  - {attempts}\n{advice}.")


def _from_mirror(dataset: str, spec: FileSpec, tried: list[str]) -> ResolvedFile | None:
    mirror = data_mirror()
    if mirror is None:
        tried.append("mirror: MLPATH_DATA_MIRROR is not set")
        return None
    path = mirror / dataset / spec.name
    if not path.is_file():
        tried.append(f"mirror: {path} does not exist")
        return None
    expected = _mirror_manifest(mirror).get(dataset, {}).get(spec.name, {}).get("sha256")
    if expected is None:
        tried.append(f"mirror: {path} is not listed in {mirror / 'manifest.json'}, so it cannot be verified")
        return None
    actual = file_digest(path)
    if actual != expected:
        raise ChecksumError(path, "sha256", expected, actual, "The mirror copy is corrupt; restore it.")
    return ResolvedFile(path, actual, f"mirror:{path}")


def _mirror_manifest(mirror: Path) -> dict[str, dict[str, dict[str, str | int]]]:
    manifest = mirror / "manifest.json"
    return json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else {}


def _cache_path(dataset: str, spec: FileSpec) -> Path:
    return mlpath_home() / "data" / dataset / spec.name


def _from_cache(dataset: str, spec: FileSpec, tried: list[str]) -> ResolvedFile | None:
    path = _cache_path(dataset, spec)
    if not path.is_file():
        tried.append(f"cache: {path} does not exist")
        return None
    _verify(path, spec.checksum, "Delete the cached file to download it again.")
    return ResolvedFile(path, file_digest(path), f"cache:{path}")


def _verify(path: Path, checksum: Checksum, hint: str = "") -> None:
    actual = file_digest(path, checksum.algorithm)
    if actual != checksum.hexdigest:
        raise ChecksumError(path, checksum.algorithm, checksum.hexdigest, actual, hint)


def _download(dataset: str, spec: FileSpec, tried: list[str]) -> ResolvedFile | None:
    if not spec.urls:
        tried.append("download: no public URL (this file exists only in the mirror)")
        return None
    target = _cache_path(dataset, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    mismatch: ChecksumError | None = None
    for url in spec.urls:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as scratch:
            raw = Path(scratch) / "raw"
            error = _fetch_with_retries(url, raw)
            if error is not None:
                tried.append(f"download: {url}: {error}")
                continue
            payload = _unwrap_zip(raw, spec) if _is_zip(raw, spec) else raw
            if payload is None:
                tried.append(f"download: {url}: the zip it returned holds no {spec.member or spec.name}")
                continue
            try:
                _verify(payload, spec.checksum, f"Downloaded from {url}; not cached.")
            except ChecksumError as exc:
                tried.append(f"download: {url}: {exc}")
                mismatch = exc
                continue
            os.replace(payload, target)  # same filesystem, so atomic: the cache never holds a partial file
        return ResolvedFile(target, file_digest(target), f"download:{url}")
    if mismatch is not None:
        raise mismatch
    return None


def _fetch_with_retries(url: str, dest: Path) -> str | None:
    """Stream ``url`` into ``dest``; return None on success, else the last error in words."""
    error = ""
    for attempt in range(DOWNLOAD_TRIES):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            with urllib.request.urlopen(_request(url), timeout=60) as response, open(dest, "wb") as out:
                _copy_with_progress(response, out, url)
            return None
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} {exc.reason}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                return error  # the server's answer will not change on a retry
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
    return f"{error} (after {DOWNLOAD_TRIES} tries)"


def _copy_with_progress(response, out, url: str) -> None:
    """Copy a download to ``out``, with a progress bar when a person is watching the terminal."""
    if not sys.stderr.isatty():
        shutil.copyfileobj(response, out, _CHUNK)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    total = getattr(response, "headers", {}).get("Content-Length")
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(url.rsplit("/", 1)[-1], total=int(total) if total else None)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            progress.advance(task, len(chunk))


def _request(url: str) -> urllib.request.Request:
    headers = {"User-Agent": "mlpath"}
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    if "kaggle.com" in url and user and key:
        token = base64.b64encode(f"{user}:{key}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return urllib.request.Request(url, headers=headers)


def _is_zip(path: Path, spec: FileSpec) -> bool:
    with open(path, "rb") as stream:
        return stream.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC and not spec.name.endswith(".zip")


def _unwrap_zip(archive: Path, spec: FileSpec) -> Path | None:
    """Extract the member holding ``spec`` next to ``archive``; None if there is none."""
    with zipfile.ZipFile(archive) as bundle:
        names = [n for n in bundle.namelist() if not n.endswith("/")]
        wanted = spec.member or next((n for n in names if Path(n).name == spec.name), None)
        if wanted is None and len(names) == 1:
            wanted = names[0]
        if wanted not in names:
            return None
        out = archive.with_name("member")
        with bundle.open(wanted) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    return out
