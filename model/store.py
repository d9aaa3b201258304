"""The model store: versioned model directories and the ``current`` pointer the workers follow.

A version is a directory holding ``model.keras``, ``model_card.json`` and the rest of its
training run's artefacts (:data:`ARTEFACTS`: evaluation, history, log, plots and the
``quality.npz`` check set), so whoever decides to serve it can read how it was made without
the GPU box's disk. Adding a version copies it in completely *first*; only then may the
pointer move, so a worker never sees a half-copied model. Training adds *candidates*
(:meth:`ModelStore.add`); ``python -m model.promote`` moves the pointer and writes an
immutable promotion record under ``promotions/`` (the audit trail). The pointer is a small
text object named ``current`` holding the version name:

- local store (``var/models`` or any path): written to a temporary file and ``os.replace``d,
  which is atomic on POSIX;
- S3 store (``s3://bucket/prefix``): a single PUT, which S3 makes visible atomically.

Workers poll :meth:`ModelStore.current_version` and :meth:`ModelStore.fetch` a new version
when it changes, so a promoted model is picked up without a restart. ``fetch`` brings only
what serving needs: the card and the files its ``files`` checksums list (the model, the
check set), never the plots or the log.
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
PROMOTIONS = "promotions"
# A training run's files that travel with its version (checkpoints and caches do not).
ARTEFACTS = ("*.keras", "*.json", "*.png", "*.log", "*.npz")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED = {POINTER, PROMOTIONS}


class StoreError(RuntimeError):
    """The store is unreachable or holds no usable model."""


def check_version(version: str) -> str:
    """Versions become path segments and S3 keys: allow only a safe alphabet."""
    if not _VERSION.match(version or "") or version in _RESERVED:
        raise StoreError(f"invalid model version {version!r}")
    return version


def artefacts(model_dir: Path) -> list[Path]:
    """The run's files a version carries, the card last (its arrival completes a version)."""
    found = {p for pattern in ARTEFACTS for p in Path(model_dir).glob(pattern) if p.is_file()}
    found.discard(Path(model_dir) / "checkpoint.keras")  # model.keras is the best epoch
    return sorted(found, key=lambda p: (p.name == CARD_FILE, p.name))


def serving_files(card: dict) -> list[str]:
    """What a worker needs of a version: the model and every file the card checksums."""
    return sorted({MODEL_FILE, *(card.get("files") or {})})


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

    def add(self, model_dir: Path, version: str | None = None) -> str:
        """Copy a run in as a version (a candidate): all its artefacts; ``current`` stays."""
        raise NotImplementedError

    def set_current(self, version: str) -> None:
        """Point ``current`` at a version already in the store, atomically."""
        raise NotImplementedError

    def publish(self, model_dir: Path, version: str | None = None) -> str:
        """Add a version and make it current at once: for setting a store up directly (tests,
        the dev stack, benchmarks). The product's path is :meth:`add` then model.promote."""
        version = self.add(model_dir, version)
        self.set_current(version)
        return version

    def versions(self) -> list[str]:
        raise NotImplementedError

    def card(self, version: str) -> dict:
        return json.loads((self.fetch(version) / CARD_FILE).read_text())

    def add_record(self, record: dict) -> str:
        """Write a promotion record under ``promotions/``; never overwrites one (StoreError)."""
        raise NotImplementedError

    def promotions(self) -> list[dict]:
        """Every promotion record, newest first."""
        raise NotImplementedError


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

    def add(self, model_dir: Path, version: str | None = None) -> str:
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        version = check_version(version or _card_version(model_dir))
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / version
        if target.exists():
            # Versions are immutable: deleting and re-copying one would pull it from under a
            # worker loading it. Adding the same files again changes nothing.
            if not _same_files(model_dir, target):
                raise StoreError(
                    f"{version} already exists with other files; versions are immutable"
                )
        else:
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
            for path in artefacts(model_dir):
                shutil.copy2(path, staging / path.name)
            os.replace(staging, target)
        return version

    def set_current(self, version: str) -> None:
        """Point ``current`` at an existing version, atomically (promote and rollback)."""
        check_model_dir(self.root / check_version(version))
        fd, tmp = tempfile.mkstemp(prefix=".current-", dir=self.root)
        with os.fdopen(fd, "w") as fh:
            fh.write(version + "\n")
        os.replace(tmp, self.root / POINTER)

    def add_record(self, record: dict) -> str:
        folder = _mkdir(self.root / PROMOTIONS)
        name = record_name(record)
        fd, tmp = tempfile.mkstemp(prefix=".record-", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(record, indent=2) + "\n")
        try:
            os.link(tmp, folder / name)  # complete when it appears; fails if the name exists
        except FileExistsError:
            raise StoreError(
                f"promotion record {name} exists already; records are immutable"
            ) from None
        finally:
            os.unlink(tmp)
        return f"{PROMOTIONS}/{name}"

    def promotions(self) -> list[dict]:
        folder = self.root / PROMOTIONS
        if not folder.is_dir():
            return []
        names = sorted((p.name for p in folder.glob("[!.]*.json")), reverse=True)
        return [json.loads((folder / name).read_text()) for name in names]


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
        self._records: dict[str, dict] = {}  # promotion records read so far, by key

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
        """The card, then the files it checksums (model, check set); not the plots or log."""
        local = self.cache_dir / check_version(version)
        if not _cached(local):
            staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_mkdir(self.cache_dir)))
            try:
                self._download(version, CARD_FILE, staging)
                card = json.loads((staging / CARD_FILE).read_text())
                for name in serving_files(card):
                    self._download(version, name, staging)
            except Exception:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if local.exists():
                shutil.rmtree(local)
            os.replace(staging, local)
        return local

    def _download(self, version: str, name: str, folder: Path) -> None:
        key = self._key(version, check_version(name))
        try:
            self.s3.download_file(self.bucket, key, str(folder / name))
        except Exception as exc:
            raise StoreError(f"cannot fetch s3://{self.bucket}/{key}: {exc}") from exc

    def versions(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key() + "/" if self.prefix else "", Delimiter="/"
        )
        out = []
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                out.append(common["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(v for v in out if v not in _RESERVED)

    def add(self, model_dir: Path, version: str | None = None) -> str:
        model_dir = Path(model_dir)
        check_model_dir(model_dir)
        version = check_version(version or _card_version(model_dir))
        # The card goes last: a version is complete (fetchable) once its card is there.
        for path in artefacts(model_dir):
            self.s3.upload_file(str(path), self.bucket, self._key(version, path.name))
        return version

    def set_current(self, version: str) -> None:
        check_version(version)
        self.s3.put_object(Bucket=self.bucket, Key=self._key(POINTER), Body=version.encode())

    def add_record(self, record: dict) -> str:
        key = self._key(PROMOTIONS, record_name(record))
        try:  # a conditional PUT: S3 refuses it if the key exists (never overwritten)
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=(json.dumps(record, indent=2) + "\n").encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "PreconditionFailed":
                raise StoreError(
                    f"promotion record {key} exists already; records are immutable"
                ) from None
            raise StoreError(f"cannot write s3://{self.bucket}/{key}: {exc}") from exc
        return key

    def promotions(self) -> list[dict]:
        """Records are immutable: each is read once, then served from memory."""
        cache = self._records
        keys = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(PROMOTIONS) + "/"
        )
        for page in pages:
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        for key in keys:
            if key not in cache:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                cache[key] = json.loads(body)
        return [cache[k] for k in sorted(keys, key=lambda k: k.rsplit("/", 1)[-1], reverse=True)]


def _same_files(a: Path, b: Path) -> bool:
    """Both directories hold byte-identical model and card files."""
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in (MODEL_FILE, CARD_FILE))


def record_name(record: dict) -> str:
    """``<UTC time, sortable>-<version>.json``: names sort in the order promotions happened."""
    stamp = re.sub(r"[^0-9TZ.]", "", str(record["at"]))
    return f"{stamp}-{check_version(str(record['version']))}.json"


def _cached(local: Path) -> bool:
    """A cached version is complete: its card and every file the card lists are there."""
    try:
        card = json.loads((local / CARD_FILE).read_text())
    except (OSError, ValueError):
        return False
    return all((local / name).is_file() for name in serving_files(card))


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
