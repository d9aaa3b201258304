"""The model store: versioned model directories and the ``current`` pointer the workers follow.

A version is a directory holding ``model.keras`` and ``model_card.json``. Publishing copies a
version in completely *first*, then moves the pointer, so a worker never sees a half-copied
model. The pointer is a small text object named ``current`` holding the version name:

- local store (``var/models`` or any path): written to a temporary file and ``os.replace``d,
  which is atomic on POSIX;
- S3 store (``s3://bucket/prefix``): a single PUT, which S3 makes visible atomically.

Workers poll :meth:`ModelStore.current_version` and :meth:`ModelStore.fetch` a new version
when it changes, so a published model is picked up without a restart.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
POINTER = "current"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StoreError(RuntimeError):
    """The store is unreachable or holds no usable model."""


def check_version(version: str) -> str:
    """Versions become path segments and S3 keys: allow only a safe alphabet."""
    if not _VERSION.match(version or ""):
        raise StoreError(f"invalid model version {version!r}")
    return version


def check_model_dir(path: Path) -> None:
    """A publishable version has both the model and its card."""
    for name in (MODEL_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise StoreError(f"{path} has no {name}: train a model first (make model)")


class ModelStore:
    """Common interface; see :func:`open_store`."""

    def current_version(self) -> str | None:
        raise NotImplementedError

    def fetch(self, version: str) -> Path:
        """A local directory holding that version's files."""
        raise NotImplementedError

    def publish(self, model_dir: Path, version: str | None = None) -> str:
        raise NotImplementedError

    def versions(self) -> list[str]:
        raise NotImplementedError

    def card(self, version: str) -> dict:
        return json.loads((self.fetch(version) / CARD_FILE).read_text())


class LocalStore(ModelStore):
    """A directory on this host (``var/models`` by default)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def current_version(self) -> str | None:
        try:
            version = (self.root / POINTER).read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def fetch(self, version: str) -> Path:
        path = self.root / check_version(version)
        check_model_dir(path)
        return path

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        # Staging directories (".<version>-xxxx") are not versions, even once their card is in.
        return sorted(
            p.name
            for p in self.root.iterdir()
            if _VERSION.match(p.name) and (p / CARD_FILE).is_file()
        )

    def publish(self, model_dir: Path, version: str | None = None) -> str:
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        version = check_version(version or _card_version(model_dir))
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / version
        if target.exists():
            # Versions are immutable: deleting and re-copying one would pull it from under a
            # worker loading it. Publishing the same files again only moves the pointer.
            if not _same_files(model_dir, target):
                raise StoreError(
                    f"{version} already exists with other files; versions are immutable"
                )
        else:
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
            for name in (MODEL_FILE, CARD_FILE):
                shutil.copy2(model_dir / name, staging / name)
            os.replace(staging, target)
        self.set_current(version)
        return version

    def set_current(self, version: str) -> None:
        """Point ``current`` at an existing version, atomically (rollback uses this too)."""
        check_model_dir(self.root / check_version(version))
        fd, tmp = tempfile.mkstemp(prefix=".current-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(version + "\n")
        os.replace(tmp, self.root / POINTER)


class S3Store(ModelStore):
    """``s3://bucket/prefix``: the production store shared by the GPU and the app servers."""

    def __init__(self, uri: str, cache_dir: str | Path, client=None):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.cache_dir = Path(cache_dir)
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))
        self.s3 = client

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def current_version(self) -> str | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self._key(POINTER))
        except self.s3.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise StoreError(f"cannot read s3://{self.bucket}/{self._key(POINTER)}: {exc}") from exc
        return obj["Body"].read().decode().strip() or None

    def fetch(self, version: str) -> Path:
        local = self.cache_dir / check_version(version)
        if not (local / MODEL_FILE).is_file() or not (local / CARD_FILE).is_file():
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_mkdir(self.cache_dir)))
            for name in (MODEL_FILE, CARD_FILE):
                self.s3.download_file(self.bucket, self._key(version, name), str(staging / name))
            if local.exists():
                shutil.rmtree(local)
            os.replace(staging, local)
        return local

    def versions(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key() + "/" if self.prefix else "", Delimiter="/"
        )
        out = []
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                out.append(common["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(out)

    def publish(self, model_dir: Path, version: str | None = None) -> str:
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        version = check_version(version or _card_version(model_dir))
        # The card goes last: a version is only listed (versions()) once complete.
        for name in (MODEL_FILE, CARD_FILE):
            self.s3.upload_file(str(model_dir / name), self.bucket, self._key(version, name))
        self.set_current(version)
        return version

    def set_current(self, version: str) -> None:
        check_version(version)
        self.s3.put_object(Bucket=self.bucket, Key=self._key(POINTER), Body=version.encode())


def _same_files(a: Path, b: Path) -> bool:
    """Both directories hold byte-identical model and card files."""
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in (MODEL_FILE, CARD_FILE))


def _card_version(model_dir: Path) -> str:
    return str(json.loads((model_dir / CARD_FILE).read_text())["version"])


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_store(uri: str, cache_dir: str | Path = "var/model-cache") -> ModelStore:
    """A store from its URI: ``s3://bucket/prefix`` or a local path."""
    if uri.startswith("s3://"):
        return S3Store(uri, cache_dir)
    return LocalStore(uri)
