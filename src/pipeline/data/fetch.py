"""Find a dataset file on disk, or download it with pooch, and prove its bytes are the expected ones.

Resolution order for one file of one dataset (first hit wins):

1. an override path from the caller: new, untrusted data, so no checksum (validation guards it);
2. ``$MLPATH_DATA_MIRROR/<dataset>/<file>``, checked against the sha256 in the mirror's own
   ``manifest.json`` (mirror copies may legitimately differ from the official bytes);
3. the cache ``$MLPATH_HOME/data/<dataset>/<file>``, checked against the official checksum;
4. a download by :mod:`pooch` from each official URL in turn: ``DOWNLOAD_TRIES`` tries with
   back-off, written beside the cache and moved into it only once the official checksum passes.
   A zip answer (GLUE's SST-2.zip, Kaggle's wrapped files) is unpacked to the catalog file first.

A checksum mismatch raises :class:`ChecksumError`; when nothing works,
:class:`DatasetNotFoundError` lists every place tried. A ``manifest.json`` that is not valid JSON
of that shape raises :class:`~pipeline.data.errors.DataLoadError` (and is quarantined).

Credentials (Kaggle's, from ``KAGGLE_USERNAME``/``KAGGLE_KEY``) go only to the origins in
``CREDENTIAL_ORIGINS`` (scheme, host and port must all match), and never across a redirect that
changes any of them: requests drops the Authorization header then, and the auth object itself
refuses any other origin.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pooch

from pipeline.data.errors import DataLoadError, describe, quarantine_file
from pipeline.settings import data_mirror, mlpath_home

DOWNLOAD_TRIES = 3  # pooch waits 1 s, then 2 s, between the tries of one URL
_CHUNK = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The only origins that ever see credentials: "scheme://host[:port]" exactly (tests add loopback).
CREDENTIAL_ORIGINS: tuple[str, ...] = ("https://www.kaggle.com",)


class ChecksumError(ValueError):
    """A file's bytes do not match the checksum it was expected to have."""

    def __init__(self, path: Path | str, algorithm: str, expected: str, actual: str, hint: str = ""):
        self.path, self.algorithm, self.expected, self.actual = str(path), algorithm, expected, actual
        message = f"{algorithm} mismatch for {path}: expected {expected}, got {actual}."
        super().__init__(f"{message} {hint}" if hint else message)


class DatasetNotFoundError(FileNotFoundError):
    """No usable copy of a dataset file was found or could be downloaded."""


@dataclass(frozen=True)
class FileSpec:
    """One canonical file of a dataset.

    ``known_hash`` is the official checksum as pooch writes it, ``"algorithm:hexdigest"``.
    ``urls`` are tried in order (empty: the file is mirror-only). ``member`` names the file
    inside a zip download; Kaggle may also wrap a single file in a zip, which is unwrapped too.
    """

    name: str
    urls: tuple[str, ...]
    known_hash: str
    member: str | None = None


@dataclass(frozen=True)
class ResolvedFile:
    """A file ready to read: where it is, its sha256, and how it was found (``kind:location``)."""

    path: Path
    sha256: str
    origin: str


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, memoised per (path, mtime, size)."""
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size, algorithm)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int, size: int, algorithm: str) -> str:
    # mtime_ns and size are only part of the cache key: a rewritten file is hashed again.
    return pooch.file_hash(path, algorithm)


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
    _verify(path, f"sha256:{expected}", "The mirror copy is corrupt; restore it.")
    return ResolvedFile(path, file_digest(path), f"mirror:{path}")


def _mirror_manifest(mirror: Path) -> dict[str, dict[str, dict[str, str | int]]]:
    """The mirror's ``{dataset: {file: {"sha256": hex, ...}}}``; {} when it has none.

    Raises DataLoadError (the manifest quarantined) when it is not JSON of that shape.
    """
    manifest = mirror / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        data = json.loads(manifest.read_bytes().decode("utf-8"))
        problem = _manifest_problem(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = describe(exc, manifest)
    if problem is None:
        return data
    error = DataLoadError(manifest, problem)
    kept = quarantine_file(error, mlpath_home() / "quarantine", "mirror", "manifest.json")
    raise error.within("mirror", "manifest.json", kept)


def _manifest_problem(data: object) -> str | None:
    """What is wrong with a parsed manifest's shape, or None."""
    if not isinstance(data, dict):
        return f"invalid manifest: expected a JSON object, got {type(data).__name__}"
    for dataset, files in data.items():
        if not isinstance(files, dict):
            return f"invalid manifest: {dataset!r} is not an object of files"
        for name, entry in files.items():
            digest = entry.get("sha256") if isinstance(entry, dict) else None
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                return f"invalid manifest: {dataset}/{name} has no sha256 of 64 lowercase hex digits"
    return None


def _cache_folder(dataset: str) -> Path:
    return mlpath_home() / "data" / dataset


def _from_cache(dataset: str, spec: FileSpec, tried: list[str]) -> ResolvedFile | None:
    path = _cache_folder(dataset) / spec.name
    if not path.is_file():
        tried.append(f"cache: {path} does not exist")
        return None
    _verify(path, spec.known_hash, "Delete the cached file to download it again.")
    return ResolvedFile(path, file_digest(path), f"cache:{path}")


def _verify(path: Path, known_hash: str, hint: str) -> None:
    algorithm, expected = known_hash.split(":")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(path, algorithm, expected, actual, hint)


def _download(dataset: str, spec: FileSpec, tried: list[str]) -> ResolvedFile | None:
    if not spec.urls:
        tried.append("download: no public URL (this file exists only in the mirror)")
        return None
    mismatch: ChecksumError | None = None
    for url in spec.urls:
        store = pooch.create(
            path=_cache_folder(dataset),
            base_url="",
            registry={spec.name: spec.known_hash},
            urls={spec.name: url},
            retry_if_failed=DOWNLOAD_TRIES - 1,
        )
        downloader = _CatalogDownloader(spec)
        try:
            path = Path(store.fetch(spec.name, downloader=downloader))
        except DatasetNotFoundError as exc:  # raised by the downloader, so not retried
            tried.append(f"download: {url}: {exc}")
            continue
        except OSError as exc:  # requests' errors are OSErrors; pooch retried them
            tried.append(f"download: {url}: {type(exc).__name__}: {exc} (after {DOWNLOAD_TRIES} tries)")
            continue
        except ValueError:  # pooch's checksum mismatch: the download was deleted
            if downloader.digest is None:
                raise
            algorithm, expected = spec.known_hash.split(":")
            mismatch = ChecksumError(url, algorithm, expected, downloader.digest, "The download was not cached.")
            tried.append(f"download: {url}: {mismatch}")
            continue
        return ResolvedFile(path, file_digest(path), f"download:{url}")
    if mismatch is not None:
        raise mismatch
    return None


class _CatalogDownloader:
    """pooch's HTTP downloader, plus what the catalog needs.

    Kaggle credentials; a refusal (4xx) raised so that pooch does not retry it; a zip answer
    unpacked to the catalog file; and ``digest`` of the file delivered, for the error message
    (pooch's own mismatch error has it only in words).
    """

    def __init__(self, spec: FileSpec):
        self.spec = spec
        self.digest: str | None = None

    def __call__(self, url: str, output_file: str, store: pooch.Pooch) -> None:
        import requests  # lazily, as pooch does: it is slow to import

        self.digest = None
        http = pooch.HTTPDownloader(
            # tqdm draws pooch's bar; only for a person watching, and only if tqdm is installed.
            progressbar=sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None,
            chunk_size=_CHUNK,
            timeout=60,
            headers={"User-Agent": "mlpath"},
            auth=_credentials_for(url),
        )
        try:
            http(url, output_file, store)
        except requests.HTTPError as exc:
            status = exc.response.status_code
            if 400 <= status < 500 and status not in (408, 429):  # the answer will not change on a retry
                raise DatasetNotFoundError(f"HTTP {status} {exc.response.reason}") from exc
            raise
        with open(output_file, "rb") as stream:
            is_zip = stream.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC and not self.spec.name.endswith(".zip")
        if is_zip:
            with tempfile.TemporaryDirectory(dir=Path(output_file).parent, prefix=".unzip-") as scratch:
                os.replace(self._member(output_file, scratch), output_file)
        self.digest = pooch.file_hash(output_file, self.spec.known_hash.split(":")[0])

    def _member(self, archive: str, scratch: str) -> str:
        """Unzip ``archive`` into ``scratch``; the path of the member holding the catalog file."""
        extracted = pooch.Unzip(extract_dir=scratch)(archive, "download", None)
        members = {Path(path).relative_to(scratch).as_posix(): path for path in extracted}
        wanted = self.spec.member or next((name for name in members if Path(name).name == self.spec.name), None)
        if wanted is None and len(members) == 1:
            wanted = next(iter(members))
        if wanted not in members:
            raise DatasetNotFoundError(f"the zip it returned holds no {self.spec.member or self.spec.name}")
        return members[wanted]


def _origin(url: str) -> str:
    """``scheme://host[:port]``, lower-cased, with the scheme's default port left out."""
    parts = urlsplit(url)
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = (parts.hostname or "").lower() + (f":{port}" if port and port != default else "")
    return f"{parts.scheme.lower()}://{netloc}"


def _credentials_for(url: str):
    """Kaggle's basic auth, bound to ``url``'s origin, when that origin is a credential origin."""
    user, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    origin = _origin(url)
    if not (user and key) or origin not in {_origin(allowed) for allowed in CREDENTIAL_ORIGINS}:
        return None
    return _OriginBoundAuth(user, key, origin)


@functools.cache
def _origin_bound_auth_base():
    import requests.auth  # lazily: requests is slow to import

    class OriginBoundAuth(requests.auth.HTTPBasicAuth):
        """Basic auth that signs only requests to one origin.

        requests applies ``auth`` to the first request only; on a redirect it keeps the header
        just when scheme, host and port stay the same (or http -> https on default ports), so the
        credentials never reach another host.
        """

        def __init__(self, username: str, password: str, origin: str):
            super().__init__(username, password)
            self.origin = origin

        def __call__(self, request):
            if _origin(request.url) != self.origin:
                request.headers.pop("Authorization", None)
                return request
            return super().__call__(request)

    return OriginBoundAuth


def _OriginBoundAuth(user: str, key: str, origin: str):  # noqa: N802 - a class, built lazily
    return _origin_bound_auth_base()(user, key, origin)
