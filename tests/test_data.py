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
    DataRef,
    DatasetNotFoundError,
    DatasetSpec,
    UnknownDatasetError,
    fetch,
    load_dataset,
)
from pipeline.data.fetch import FileSpec

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

    The first ``failures`` requests are answered with ``status`` instead. ``requests`` records
    every request as (path, Authorization header); ``waits`` the back-off pooch slept.
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.files: dict[str, bytes] = {}
        self.failures, self.status = 0, 503
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


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """A local file server; pooch's back-off is recorded instead of slept."""
    httpd = FileServer()
    monkeypatch.setattr(pooch.core, "time", SimpleNamespace(sleep=httpd.waits.append))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not see loopback
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


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
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load_dataset("cifar10", files={"cifar-10-python.tar.gz": archive})


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
