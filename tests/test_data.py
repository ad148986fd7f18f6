"""Dataset catalog: every dataset from the mirror, profiles, checksums and the resolution order."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pooch
import pytest

from pipeline.data import (
    ADULT_COLUMNS,
    CIFAR10_CLASSES,
    DATASETS,
    ChecksumError,
    DataLoadError,
    DataRef,
    DatasetNotFoundError,
    DatasetSpec,
    UnknownDatasetError,
    fetch,
    load_dataset,
)
from pipeline.data.fetch import FileSpec
from pipeline.validation import DataValidationError

from conftest import MIRROR

TINY_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLPATH_HOME per test, and the shared mirror."""
    if not (MIRROR / "manifest.json").is_file():
        pytest.skip(f"no dataset mirror at {MIRROR}")
    monkeypatch.setenv("MLPATH_DATA_MIRROR", str(MIRROR))
    monkeypatch.setenv("MLPATH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def no_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    monkeypatch.setenv("MLPATH_DATA_MIRROR", str(empty))


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1.

    The first ``failures`` requests are answered with ``status`` instead; ``redirects`` maps a
    path to the URL it redirects to (302). ``requests`` records every request as (path,
    Authorization header); ``waits`` the back-off pooch slept.
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.files: dict[str, bytes] = {}
        self.failures, self.status = 0, 503
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.waits: list[float] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _FileHandler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Authorization")))
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send_error(self.server.status)
            return
        if self.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep pytest's output to the assertions
        pass


def _serving() -> Iterator[FileServer]:
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """A local file server; pooch's back-off is recorded instead of slept."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not see loopback
    for httpd in _serving():
        monkeypatch.setattr(pooch.core, "time", SimpleNamespace(sleep=httpd.waits.append))
        yield httpd


@pytest.fixture
def other_server() -> Iterator[FileServer]:
    """A second local file server, on another port: another origin."""
    yield from _serving()


def serve_tiny(
    monkeypatch: pytest.MonkeyPatch, server: FileServer, served: bytes, expected: bytes, member: str | None = None
) -> str:
    """Add catalog entry ``tiny``: one text file, checksummed as ``expected``, downloaded from a URL
    that serves ``served``. Returns the URL."""
    url = server.url("/files/tiny.txt")
    server.files["/files/tiny.txt"] = served
    file = FileSpec("tiny.txt", (url,), f"sha256:{hashlib.sha256(expected).hexdigest()}", member)
    monkeypatch.setitem(
        DATASETS, "tiny", DatasetSpec("tiny", (file,), lambda paths: {"text": paths["tiny.txt"].read_text()})
    )
    return url


def serve_catalog_entry(
    monkeypatch: pytest.MonkeyPatch, server: FileServer, name: str, bodies: dict[str, bytes] | None = None
) -> None:
    """Point dataset ``name``'s URLs at ``server`` (``https://host/path`` -> ``/host/path``), which
    serves ``bodies`` (file name -> bytes) there."""
    spec = DATASETS[name]
    files = []
    for file in spec.files:
        paths = tuple("/" + url.split("://", 1)[1] for url in file.urls)
        server.files |= {path: (bodies or {})[file.name] for path in paths if file.name in (bodies or {})}
        files.append(replace(file, urls=tuple(server.url(path) for path in paths)))
    monkeypatch.setitem(DATASETS, name, replace(spec, files=tuple(files)))


# --- every dataset from the mirror -------------------------------------------------------------


def test_iris() -> None:
    ds = load_dataset("iris")
    frame = ds.splits["data"]
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert list(frame.columns) == [*features, "species", "target"]
    assert frame.shape == (150, 6)
    assert frame["species"].value_counts().to_dict() == {"setosa": 50, "versicolor": 50, "virginica": 50}
    assert sorted(frame["target"].unique()) == [0, 1, 2]
    assert ds.ref.source == "sklearn" and ds.ref.rows == 150


def test_titanic() -> None:
    ds = load_dataset("titanic")
    train, test = ds.splits["train"], ds.splits["test"]
    assert train.shape == (891, 12) and test.shape == (418, 11)
    assert int(train["Survived"].sum()) == 342
    assert train["Age"].isna().sum() == 177 and train["Cabin"].isna().sum() == 687
    assert train["Fare"].sum() == pytest.approx(28693.9493)
    assert "Survived" not in test.columns
    assert ds.ref.rows == 891 + 418
    assert ds.ref.source == f"mirror:{MIRROR.resolve() / 'titanic'}"


def test_mall_customers() -> None:
    frame = load_dataset("mall_customers").splits["data"]
    assert list(frame.columns) == ["CustomerID", "Gender", "Age", "Annual Income (k$)", "Spending Score (1-100)"]
    assert len(frame) == 200
    assert frame["Gender"].value_counts().to_dict() == {"Female": 112, "Male": 88}


def test_mnist() -> None:
    ds = load_dataset("mnist")
    (x_train, y_train), (x_test, y_test) = ds.splits["train"], ds.splits["test"]
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.ref.rows == 70000


def test_cifar10() -> None:
    ds = load_dataset("cifar10")
    (x_train, y_train), (x_test, y_test) = ds.splits["train"], ds.splits["test"]
    assert x_train.shape == (50000, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 32, 32, 3)
    assert y_train.dtype == np.int64
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert len(CIFAR10_CLASSES) == 10 and CIFAR10_CLASSES[0] == "airplane"
    # HWC with channels last: the published per-channel training means, R > G > B.
    assert x_train[:5000].mean(axis=(0, 1, 2)) == pytest.approx([125.3, 122.9, 113.9], abs=2.0)


def test_adult() -> None:
    ds = load_dataset("adult")
    train, test = ds.splits["train"], ds.splits["test"]
    assert list(train.columns) == list(ADULT_COLUMNS) and len(ADULT_COLUMNS) == 15
    assert len(train) == 32561 and len(test) == 16281
    assert train["income"].value_counts().to_dict() == {"<=50K": 24720, ">50K": 7841}
    assert test["income"].value_counts().to_dict() == {"<=50K": 12435, ">50K": 3846}
    assert train["workclass"].isna().sum() > 0 and not (train == "?").any().any()
    assert not train["workclass"].dropna().str.contains(" ").any()
    assert train["age"].dtype == np.int64


def test_sst2() -> None:
    splits = load_dataset("sst2").splits
    assert {name: len(frame) for name, frame in splits.items()} == {"train": 67349, "dev": 872, "test": 1821}
    assert splits["train"]["label"].value_counts().to_dict() == {1: 37569, 0: 29780}
    assert splits["dev"]["label"].sum() == 444
    assert splits["test"]["label"].value_counts().to_dict() == {0: 912, 1: 909}
    assert not splits["train"]["sentence"].str.endswith(" ").any()
    assert splits["train"]["sentence"].notna().all()


def test_tinyshakespeare() -> None:
    ds = load_dataset("tinyshakespeare")
    text = ds.splits["text"]
    assert len(text) == 1_115_394 and len(set(text)) == 65
    assert ds.ref.rows == 40000


def test_stocks() -> None:
    prices = load_dataset("stocks").splits["prices"]
    assert list(prices.columns) == ["Date", "Open", "High", "Low", "Close", "Volume", "OpenInt"]
    assert len(prices) == 7983
    assert pd.api.types.is_datetime64_dtype(prices["Date"]) and prices["Date"].is_monotonic_increasing
    assert prices["Date"].iloc[0] == pd.Timestamp("1986-03-13")
    assert prices["Close"].dtype == np.float64 and prices["Volume"].dtype == np.int64


def test_catalog_lists_exactly_the_datasets() -> None:
    assert set(DATASETS) == {
        "iris", "titanic", "mall_customers", "mnist", "cifar10", "adult", "sst2", "tinyshakespeare", "stocks",
        "line", "digit_strings",
    }  # fmt: skip


def test_import_stays_light() -> None:
    heavy = ("torch", "mlflow", "prefect", "great_expectations", "sklearn")
    code = f"import sys, pipeline.data; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- profiles, lineage, errors -----------------------------------------------------------------


def test_quick_profile_is_deterministic_and_smaller() -> None:
    full = load_dataset("adult")
    quick = load_dataset("adult", "quick", seed=3)
    again = load_dataset("adult", "quick", seed=3)
    other = load_dataset("adult", "quick", seed=4)
    assert len(quick.splits["train"]) == 4000 and len(quick.splits["test"]) == 2000
    pd.testing.assert_frame_equal(quick.splits["train"], again.splits["train"])
    assert quick.ref == again.ref
    assert not quick.splits["train"].equals(other.splits["train"])
    assert len({full.ref.version, quick.ref.version, other.ref.version}) == 3
    assert quick.ref.rows == 6000 and quick.ref.profile == "quick"


def test_quick_profile_keeps_order_and_small_datasets() -> None:
    quick = load_dataset("mnist", "quick")
    x, y = quick.splits["train"]
    assert x.shape == (6000, 28, 28) and y.shape == (6000,)
    x_test, y_test = quick.splits["test"]
    full_x, full_y = load_dataset("mnist").splits["test"]
    position = {image.tobytes(): i for i, image in enumerate(full_x)}  # the 10,000 test images are distinct
    kept = np.array([position[image.tobytes()] for image in x_test])
    assert len(kept) == 1000 and np.all(np.diff(kept) > 0)
    assert np.array_equal(full_y[kept], y_test)

    full_train = load_dataset("titanic").splits["train"]
    pd.testing.assert_frame_equal(load_dataset("titanic", "quick").splits["train"], full_train)
    sst2 = load_dataset("sst2", "quick")
    assert {name: len(frame) for name, frame in sst2.splits.items()} == {"train": 4000, "dev": 872, "test": 1000}


def test_data_ref_as_dict() -> None:
    ref = load_dataset("tinyshakespeare").ref
    assert isinstance(ref, DataRef)
    assert ref.as_dict() == {
        "name": "tinyshakespeare", "version": ref.version, "rows": 40000, "source": ref.source, "profile": "full",
    }  # fmt: skip
    assert len(ref.version) == 64


def test_unknown_names_are_listed() -> None:
    with pytest.raises(UnknownDatasetError, match="valid names: .*titanic") as info:
        load_dataset("titanik")
    assert isinstance(info.value, LookupError)
    with pytest.raises(ValueError, match="quick"):
        load_dataset("titanic", "medium")
    with pytest.raises(ValueError, match="train.csv"):
        load_dataset("titanic", files={"train.cvs": "x.csv"})


# --- checksums and the resolution order ---------------------------------------------------------


def test_corrupt_mirror_file_raises_checksum_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "titanic").mkdir(parents=True)
    shutil.copy(MIRROR / "manifest.json", mirror / "manifest.json")
    shutil.copy(MIRROR / "titanic" / "test.csv", mirror / "titanic" / "test.csv")
    corrupt = mirror / "titanic" / "train.csv"
    corrupt.write_bytes((MIRROR / "titanic" / "train.csv").read_bytes().replace(b"Braund", b"Brown"))
    monkeypatch.setenv("MLPATH_DATA_MIRROR", str(mirror))
    expected = json.loads((MIRROR / "manifest.json").read_text())["titanic"]["train.csv"]["sha256"]
    actual = fetch.file_digest(corrupt)

    with pytest.raises(ChecksumError) as info:
        load_dataset("titanic")
    message = str(info.value)
    assert str(corrupt) in message and expected in message and actual in message and "sha256" in message


def test_falls_back_from_missing_mirror_to_cache(home: Path, no_mirror: None) -> None:
    cached = home / "data" / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    shutil.copy(MIRROR / "tinyshakespeare" / "input.txt", cached)
    ds = load_dataset("tinyshakespeare")
    assert ds.ref.source == f"cache:{cached}"
    assert ds.ref.version == load_dataset("tinyshakespeare", files={"input.txt": cached}).ref.version


def test_corrupt_cache_file_raises_checksum_error(home: Path, no_mirror: None) -> None:
    cached = home / "data" / "tinyshakespeare" / "input.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("To be, or not to be\n")
    with pytest.raises(ChecksumError, match=TINY_SHA256):
        load_dataset("tinyshakespeare")


def test_download_is_verified_then_served_from_the_cache(home: Path, server: FileServer, monkeypatch) -> None:
    text = b"tiny fixture\n"
    url = serve_tiny(monkeypatch, server, text, text)
    ds = load_dataset("tiny")
    cached = home / "data" / "tiny" / "tiny.txt"
    assert ds.splits["text"] == "tiny fixture\n"
    assert ds.ref.source == f"download:{url}"
    assert cached.read_bytes() == text and len(server.requests) == 1

    again = load_dataset("tiny")
    assert again.ref.source == f"cache:{cached}" and again.ref.version == ds.ref.version
    assert len(server.requests) == 1


def test_failed_request_is_retried_with_back_off(home: Path, server: FileServer, monkeypatch) -> None:
    serve_tiny(monkeypatch, server, b"tiny\n", b"tiny\n")
    server.failures = 1
    assert load_dataset("tiny").splits["text"] == "tiny\n"
    assert [path for path, _ in server.requests] == ["/files/tiny.txt"] * 2
    assert server.waits == [1]


def test_wrong_checksum_raises_and_caches_nothing(home: Path, server: FileServer, monkeypatch) -> None:
    url = serve_tiny(monkeypatch, server, b"<html>sign in</html>", b"tiny\n")
    with pytest.raises(ChecksumError) as info:
        load_dataset("tiny")
    expected, actual = hashlib.sha256(b"tiny\n").hexdigest(), hashlib.sha256(b"<html>sign in</html>").hexdigest()
    assert (info.value.expected, info.value.actual) == (expected, actual)
    assert url in str(info.value) and expected in str(info.value) and actual in str(info.value)
    assert list((home / "data" / "tiny").iterdir()) == []


def test_corrupt_cache_is_reported_not_downloaded_again(home: Path, server: FileServer, monkeypatch) -> None:
    serve_tiny(monkeypatch, server, b"tiny\n", b"tiny\n")
    cached = home / "data" / "tiny" / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tinny\n")
    with pytest.raises(ChecksumError, match="Delete the cached file"):
        load_dataset("tiny")
    assert server.requests == []


def test_zip_answer_is_unpacked_to_its_member(home: Path, server: FileServer, monkeypatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("bundle/other.txt", "not this one\n")
        bundle.writestr("bundle/tiny.txt", "tiny\n")
    serve_tiny(monkeypatch, server, buffer.getvalue(), b"tiny\n", member="bundle/tiny.txt")
    assert load_dataset("tiny").splits["text"] == "tiny\n"
    assert [path.name for path in (home / "data" / "tiny").iterdir()] == ["tiny.txt"]


def test_kaggle_zip_answer_is_unwrapped_with_credentials(
    home: Path, no_mirror: None, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.write(MIRROR / "stocks" / "msft.us.txt", "msft.us.txt")
    serve_catalog_entry(monkeypatch, server, "stocks", {"msft.us.txt": buffer.getvalue()})
    url = DATASETS["stocks"].files[0].urls[0]
    monkeypatch.setenv("KAGGLE_USERNAME", "ada")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    monkeypatch.setattr(fetch, "CREDENTIAL_ORIGINS", (server.url(""),))  # the loopback stands in for Kaggle
    ds = load_dataset("stocks")
    assert ds.ref.source == f"download:{url}" and "www.kaggle.com" in url
    assert len(ds.splits["prices"]) == 7983
    assert server.requests[0][1] == "Basic " + base64.b64encode(b"ada:secret").decode()
    assert [path.name for path in (home / "data" / "stocks").iterdir()] == ["msft.us.txt"]


def test_nothing_found_lists_what_was_tried(no_mirror: None, server: FileServer, monkeypatch) -> None:
    serve_catalog_entry(monkeypatch, server, "titanic")
    server.failures, server.status = 99, 401
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("titanic")
    message = str(info.value)
    assert "mirror:" in message and "cache:" in message and "HTTP 401" in message
    assert "MLPATH_DATA_MIRROR" in message and "KAGGLE_KEY" in message
    assert len(server.requests) == 1  # a 4xx answer is not retried


def test_mirror_only_file_cannot_be_downloaded(no_mirror: None) -> None:
    with pytest.raises(DatasetNotFoundError, match="only in the mirror"):
        load_dataset("sst2", files={name: MIRROR / "sst2" / name for name in ("train.tsv", "dev.tsv")})


def test_override_file_is_used_unchecked(tmp_path: Path) -> None:
    batch = tmp_path / "new_batch.csv"
    pd.read_csv(MIRROR / "titanic" / "train.csv").head(100).to_csv(batch, index=False)
    ds = load_dataset("titanic", files={"train.csv": batch})
    assert len(ds.splits["train"]) == 100 and len(ds.splits["test"]) == 418
    assert ds.ref.source == f"override:{batch};mirror:{MIRROR.resolve() / 'titanic' / 'test.csv'}"
    assert ds.ref.version != load_dataset("titanic").ref.version
    with pytest.raises(DatasetNotFoundError, match="not a file"):
        load_dataset("titanic", files={"train.csv": tmp_path / "missing.csv"})


def test_idx_file_with_wrong_magic_is_rejected() -> None:
    labels = MIRROR / "mnist" / "train-labels-idx1-ubyte.gz"
    with pytest.raises(ValueError, match="magic number 2049, expected 2051"):
        load_dataset("mnist", files={"train-images-idx3-ubyte.gz": labels})


def test_cifar_batch_cannot_run_code(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    payload = pickle.dumps({b"data": os.system}, protocol=2)
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataLoadError, match="not allowed") as info:
        load_dataset("cifar10", files={"cifar-10-python.tar.gz": archive})
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_idx_override_parses_a_small_batch(tmp_path: Path) -> None:
    images = tmp_path / "images.gz"
    header = np.array([2051, 2, 28, 28], dtype=">u4").tobytes()
    images.write_bytes(gzip.compress(header + bytes(range(256)) * 6 + bytes(2 * 784 - 1536)))
    labels = tmp_path / "labels.gz"
    labels.write_bytes(gzip.compress(np.array([2049, 2], dtype=">u4").tobytes() + bytes([3, 7])))
    batch = {"t10k-images-idx3-ubyte.gz": images, "t10k-labels-idx1-ubyte.gz": labels}
    ds = load_dataset("mnist", files=batch)
    x, y = ds.splits["test"]
    assert x.shape == (2, 28, 28) and y.tolist() == [3, 7]
    assert ds.ref.rows == 60002


# --- credentials stay with their host ----------------------------------------------------------


def test_credentials_never_follow_a_redirect_to_another_origin(
    home: Path, no_mirror: None, server: FileServer, other_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_catalog_entry(monkeypatch, server, "stocks")
    url = DATASETS["stocks"].files[0].urls[0]
    path = "/" + url.split("/", 3)[3]
    server.redirects[path] = other_server.url("/elsewhere/msft.us.txt")
    other_server.files["/elsewhere/msft.us.txt"] = (MIRROR / "stocks" / "msft.us.txt").read_bytes()
    monkeypatch.setenv("KAGGLE_USERNAME", "ada")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    monkeypatch.setattr(fetch, "CREDENTIAL_ORIGINS", (server.url(""),))

    assert len(load_dataset("stocks").splits["prices"]) == 7983
    assert server.requests == [(path, "Basic " + base64.b64encode(b"ada:secret").decode())]
    assert other_server.requests == [("/elsewhere/msft.us.txt", None)]


def test_credentials_go_only_to_their_exact_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "ada")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    assert fetch._credentials_for("https://www.kaggle.com/api/v1/x") is not None
    assert fetch._credentials_for("https://www.kaggle.com:443/api/v1/x") is not None
    for url in ("http://www.kaggle.com/api/v1/x", "https://evil.example/www.kaggle.com/x",
                "https://www.kaggle.com.evil.example/x", "https://www.kaggle.com:8443/x"):
        assert fetch._credentials_for(url) is None, url
    monkeypatch.delenv("KAGGLE_KEY")
    assert fetch._credentials_for("https://www.kaggle.com/api/v1/x") is None


def test_mnist_downloads_over_https_with_sha256() -> None:
    manifest = json.loads((MIRROR / "manifest.json").read_text())["mnist"]
    for file in DATASETS["mnist"].files:
        assert all(url.startswith("https://") for url in file.urls)
        assert file.known_hash.startswith("sha256:")
        if "labels" in file.name:  # the mirror's label archives are the official bytes
            assert file.known_hash == f"sha256:{manifest[file.name]['sha256']}"
    assert all(url.startswith("https://") for spec in DATASETS.values() for file in spec.files for url in file.urls)


# --- load errors are data errors ---------------------------------------------------------------


def assert_load_error(home: Path, info: pytest.ExceptionInfo, path: Path, file: str, reason: str) -> None:
    """One line naming the file and the reason; a DataValidationError; the file quarantined."""
    error = info.value
    message = str(error)
    assert isinstance(error, DataValidationError) and "\n" not in message
    assert str(path) in message and file in message and reason in message, message
    kept = error.quarantine_path
    assert kept is not None and kept.parent == home / "quarantine" and str(kept) in message
    assert kept.read_bytes() == path.read_bytes()
    details = json.loads(kept.with_name(kept.name + ".reason.json").read_text())
    assert details["source"] == str(path) and reason in details["reason"]
    assert f"{details['dataset']}/{details['file']}" == file
    assert error.report.quarantine_path == kept and error.report.failures[0]["exception"] == error.reason


def test_utf16_csv_is_a_load_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "train.csv"
    bad.write_bytes((MIRROR / "titanic" / "train.csv").read_text(encoding="utf-8").encode("utf-16"))
    with pytest.raises(DataLoadError) as info:
        load_dataset("titanic", files={"train.csv": bad})
    assert_load_error(home, info, bad, "titanic/train.csv", "not UTF-8")
    assert "UTF-16 byte-order mark" in str(info.value)


def test_line_truncated_mid_quote_is_a_load_error(home: Path, tmp_path: Path) -> None:
    text = (MIRROR / "titanic" / "train.csv").read_text(encoding="utf-8")
    bad = tmp_path / "train.csv"
    bad.write_text(text[: text.index('"Braund,') + 5])
    with pytest.raises(DataLoadError) as info:
        load_dataset("titanic", files={"train.csv": bad})
    assert_load_error(home, info, bad, "titanic/train.csv", "CSV parse error")
    assert "EOF inside string" in str(info.value)


def test_zero_byte_file_is_a_load_error(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "input.txt"
    empty.touch()
    with pytest.raises(DataLoadError) as info:
        load_dataset("tinyshakespeare", files={"input.txt": empty})
    assert_load_error(home, info, empty, "tinyshakespeare/input.txt", "empty file (0 bytes)")


def test_truncated_gzip_is_a_load_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "labels.gz"
    bad.write_bytes((MIRROR / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()[:2000])
    with pytest.raises(DataLoadError) as info:
        load_dataset("mnist", files={"t10k-labels-idx1-ubyte.gz": bad})
    assert_load_error(home, info, bad, "mnist/t10k-labels-idx1-ubyte.gz", "truncated or corrupt gzip")


def test_non_gzip_mnist_file_is_a_load_error(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "labels.gz"
    bad.write_bytes(np.array([2049, 2], dtype=">u4").tobytes() + bytes([3, 7]))  # IDX, not gzipped
    with pytest.raises(DataLoadError) as info:
        load_dataset("mnist", files={"t10k-labels-idx1-ubyte.gz": bad})
    assert_load_error(home, info, bad, "mnist/t10k-labels-idx1-ubyte.gz", "not a gzip file")
    assert not isinstance(info.value, OSError)  # gzip's own BadGzipFile is one, and looked retryable


@pytest.mark.parametrize("content", [b'{"titanic": {"train.csv": {"sha256": ', b'["titanic"]',
                                     b'{"titanic": {"train.csv": {"sha256": "abc"}}}'])
def test_invalid_manifest_is_a_load_error(home: Path, tmp_path: Path, monkeypatch, content: bytes) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "titanic").mkdir(parents=True)
    shutil.copy(MIRROR / "titanic" / "train.csv", mirror / "titanic" / "train.csv")
    manifest = mirror / "manifest.json"
    manifest.write_bytes(content)
    monkeypatch.setenv("MLPATH_DATA_MIRROR", str(mirror))
    with pytest.raises(DataLoadError) as info:
        load_dataset("titanic")
    reason = "invalid JSON" if content.startswith(b'{"titanic": {"train.csv": {"sha256": ') and len(content) < 40 \
        else "invalid manifest"
    assert_load_error(home, info, manifest, "mirror/manifest.json", reason)


def test_appended_file_that_does_not_parse_is_quarantined(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "batch.csv"
    bad.write_bytes("PassengerId,Name\n1,Ada\n".encode("utf-16"))
    with pytest.raises(DataLoadError) as info:
        load_dataset("titanic", append={"train.csv": [bad]})
    assert_load_error(home, info, bad, "titanic/train.csv", "not UTF-8")


def test_load_error_survives_pickling(tmp_path: Path) -> None:
    error = DataLoadError(tmp_path / "x.csv", "CSV parse error: bad", dataset="titanic", file="train.csv")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.report == error.report


def test_only_network_and_transient_io_errors_are_retried(tmp_path: Path) -> None:
    import errno

    import requests

    from tasks.ingest import is_transient

    bad = DataLoadError(tmp_path / "x.gz", "not a gzip file")
    assert not is_transient(bad)
    for exc in (gzip.BadGzipFile("Not a gzipped file"), EOFError("truncated"), ChecksumError("p", "sha256", "a", "b"),
                DatasetNotFoundError("none"), FileNotFoundError(errno.ENOENT, "gone"), ValueError("parse"),
                UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), PermissionError(errno.EACCES, "no")):
        assert not is_transient(exc), exc
    for exc in (requests.ConnectionError("reset"), requests.Timeout("slow"), ConnectionResetError(),
                TimeoutError(), OSError(errno.EIO, "I/O error")):
        assert is_transient(exc), exc
