"""Training data sets in S3: upload a Kermany-layout folder, sync it to a box, verify a copy.

``python -m model.datasets upload DIR s3://bucket/prefix`` (``make data-upload``),
``python -m model.datasets sync s3://bucket/prefix DIR [--delete]`` (the GPU box's training
unit) and ``python -m model.datasets verify DIR``.

A data set is a prefix holding the images under their relative paths (``train/NORMAL/...``)
and :data:`MANIFEST`: one ``<sha256>  <relative path>`` line per image, sorted, the format of
``sha256sum``, so ``cd DIR && sha256sum -c MANIFEST.sha256`` checks a copy without this code.
The manifest is written last: a prefix without one is an upload that never finished (or is
still running), and nothing syncs from it. The manifest's own sha256 names the data set's
version; training records it in the model card (``training_data.manifest_sha256``).

Why a manifest rather than S3's ETags: an ETag is an MD5 only for single-part uploads, and
says nothing about the copy on the GPU box's disk; one sha256 per file checks both ends with
the same list, and the list itself is what the card points at.

File names in a data set are the public data set's own names (``person1_virus_6.jpeg``),
which this module prints when a file is bad; it never reads or prints image metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from model.card import sha256_of

CLASSES = ("NORMAL", "PNEUMONIA")  # label 0, label 1 (model.training.data reads these)
EXTENSIONS = (".jpeg", ".jpg", ".png")
SPLITS = ("train", "val", "test")
MANIFEST = "MANIFEST.sha256"
WORKERS_ENV = "DATASET_WORKERS"
DEFAULT_WORKERS = 16  # concurrent transfers: the files are small, latency dominates
LAYOUT = (
    "expected train/, val/ or test/ holding NORMAL/ and PNEUMONIA/ (or NORMAL/ and PNEUMONIA/ "
    "directly), with .jpeg, .jpg or .png images"
)
_LINE = re.compile(r"^([0-9a-f]{64})  (.+)$")


class DatasetError(Exception):
    """A data set that cannot be used as asked; the message says what to do."""


class BadFile(DatasetError):
    """One file that fails the manifest (wrong hash, missing, or not listed)."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path


@dataclass(frozen=True)
class Entry:
    """One line of a manifest: an image's sha256 and its path relative to the data set."""

    sha256: str
    path: str


# ---------------------------------------------------------------------------------------
# Layout, hashing and the manifest
# ---------------------------------------------------------------------------------------


def class_dirs(root: Path) -> list[Path]:
    """The folders training reads images from (model.training.data's layouts).

    ``train/``, ``val/``, ``test/`` when any of them holds a class folder; else the bare
    ``NORMAL/`` and ``PNEUMONIA/`` of ``root``.
    """
    split_dirs = [root / s for s in SPLITS if any((root / s / c).is_dir() for c in CLASSES)]
    parents = split_dirs or [root]
    return [p / c for p in parents for c in CLASSES if (p / c).is_dir()]


def image_paths(root: Path) -> list[str]:
    """Relative POSIX paths of every image of ``root``'s layout, sorted (may be empty)."""
    out = []
    for folder in class_dirs(root):
        for path in folder.iterdir():
            if path.suffix.lower() in EXTENSIONS and path.is_file():
                out.append(path.relative_to(root).as_posix())
    return sorted(out)


def hash_all(root: Path, paths: list[str], workers: int) -> list[Entry]:
    """The entries of ``paths`` under ``root``, hashed in parallel (hashlib frees the GIL)."""
    with ThreadPoolExecutor(workers) as pool:
        digests = pool.map(lambda p: sha256_of(root / p), paths)
        return [Entry(d, p) for d, p in zip(digests, paths, strict=True)]


def render(entries: list[Entry]) -> bytes:
    """The manifest text: sha256sum's format, sorted by path."""
    ordered = sorted(entries, key=lambda e: e.path)
    return "".join(f"{e.sha256}  {e.path}\n" for e in ordered).encode()


def parse(text: bytes, where: str) -> list[Entry]:
    """A manifest's entries; refuses paths outside the Kermany layout (``..``, absolute)."""
    entries = []
    for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        match = _LINE.match(line)
        if not match or not is_layout_path(match[2]):
            raise DatasetError(f"{where} line {number} is not '<sha256>  <split>/<CLASS>/<image>'")
        entries.append(Entry(match[1], match[2]))
    if not entries:
        raise DatasetError(f"{where} lists no images")
    return entries


def is_layout_path(path: str) -> bool:
    """``[split/]CLASS/image.ext`` and nothing else, so a manifest cannot write elsewhere."""
    parts = PurePosixPath(path).parts
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[0] not in SPLITS):
        return False
    return parts[-2] in CLASSES and PurePosixPath(path).suffix.lower() in EXTENSIONS


def digest(manifest: bytes) -> str:
    """The data set's version: the sha256 of its manifest."""
    return hashlib.sha256(manifest).hexdigest()


def local_entries(root: Path, workers: int) -> list[Entry]:
    """Every image of a Kermany-layout folder with its sha256, or a clear refusal."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    paths = image_paths(root)
    if not paths:
        raise DatasetError(f"{root} is not a Kermany-layout folder: {LAYOUT}")
    odd = [p for p in paths if "\n" in p or "\\" in p]
    if odd:
        raise DatasetError(f"{odd[0]!r}: file names with newlines or backslashes are refused")
    return hash_all(root, paths, workers)


# ---------------------------------------------------------------------------------------
# A local copy
# ---------------------------------------------------------------------------------------


def verify(root: Path, files: list[str] | None = None, workers: int = DEFAULT_WORKERS) -> str:
    """Check a local copy against its manifest; return the manifest's sha256.

    Every listed file must exist; the images checked (``files``, relative paths, or every
    image of the layout) must be listed and match their sha256. Raises :class:`BadFile`
    for the first bad one in path order.
    """
    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(f"no {MANIFEST} in {root}: sync the data set, or upload it first")
    text = manifest.read_bytes()
    listed = {e.path: e.sha256 for e in parse(text, str(manifest))}
    checked = sorted(image_paths(root) if files is None else files)
    for path in sorted(set(listed) | set(checked)):
        if path not in listed:
            raise BadFile(path, f"not listed in {MANIFEST} (an unverified file)")
        if not (root / path).is_file():
            raise BadFile(path, f"listed in {MANIFEST} but missing")
    for entry in hash_all(root, checked, workers):
        if entry.sha256 != listed[entry.path]:
            raise BadFile(
                entry.path, f"sha256 differs from {MANIFEST} (the file's: {entry.sha256})"
            )
    return digest(text)


# ---------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise DatasetError(f"{uri!r} is not s3://bucket/prefix")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def key(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if prefix else path


def s3_client():
    """boto3's S3 client (AWS_ENDPOINT_URL_S3 points it elsewhere, e.g. a moto server)."""
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"))


def explain(exc: Exception, uri: str) -> DatasetError:
    """An AWS failure as a message that says what to do (no traceback)."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return DatasetError(
            "no AWS credentials: configure a profile (aws configure / AWS_PROFILE) or run on "
            "a box whose instance role may read the data set"
        )
    if isinstance(exc, EndpointConnectionError):
        return DatasetError(f"cannot reach S3 for {uri}: {exc}")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return DatasetError(f"no bucket {split_uri(uri)[0]!r} (check DATA_STORE, {uri})")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return DatasetError(f"access to {uri} denied ({code}): check the credentials or role")
        return DatasetError(f"S3 refused {uri}: {code} {exc}")
    return DatasetError(f"{uri}: {exc}")


def remote_manifest(s3, bucket: str, prefix: str) -> bytes | None:
    """The manifest in S3, or None when the prefix holds none."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key(prefix, MANIFEST))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def listed_hashes(manifest: bytes | None, where: str) -> dict[str, str]:
    """Path -> sha256 of a previous manifest; an unreadable one counts as empty (re-upload)."""
    try:
        return {e.path: e.sha256 for e in parse(manifest, where)} if manifest else {}
    except DatasetError:
        return {}


def remote_sizes(s3, bucket: str, prefix: str) -> dict[str, int]:
    """Relative path -> size of every object under the prefix."""
    out = {}
    start = f"{prefix}/" if prefix else ""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(start) :]] = obj["Size"]
    return out


def upload(root: Path, uri: str, s3=None, workers: int = DEFAULT_WORKERS) -> dict:
    """Put a Kermany-layout folder at ``uri``; the manifest goes last.

    A file is skipped when the data set's current manifest lists it with the same sha256 and
    the object is there with the same size, so re-uploading a grown folder sends only the
    new files. When anything changes, the old manifest is deleted first: a box syncing in
    the meantime finds no manifest and stops, rather than mixing two versions. Objects the
    new manifest does not list stay (no deletes in the operator's data), but are never
    synced or trained on.
    """
    root = Path(root)
    bucket, prefix = split_uri(uri)
    entries = local_entries(root, workers)
    manifest = render(entries)
    try:
        s3 = s3 or s3_client()
        previous = remote_manifest(s3, bucket, prefix)
        known = listed_hashes(previous, uri)
        sizes = remote_sizes(s3, bucket, prefix)
        todo = [
            e
            for e in entries
            if known.get(e.path) != e.sha256 or sizes.get(e.path) != (root / e.path).stat().st_size
        ]
        if previous == manifest and not todo:
            return {"uploaded": 0, "skipped": len(entries), "sha256": digest(manifest)}
        if previous is not None:
            s3.delete_object(Bucket=bucket, Key=key(prefix, MANIFEST))

        def put(entry: Entry) -> None:
            extra = {"Metadata": {"sha256": entry.sha256}}
            s3.upload_file(str(root / entry.path), bucket, key(prefix, entry.path), extra)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, todo))
        s3.put_object(Bucket=bucket, Key=key(prefix, MANIFEST), Body=manifest)
    except DatasetError:
        raise
    except Exception as exc:
        raise explain(exc, uri) from None
    return {"uploaded": len(todo), "skipped": len(entries) - len(todo), "sha256": digest(manifest)}


def sync(uri: str, root: Path, delete: bool = False, s3=None, workers: int = DEFAULT_WORKERS):
    """Make ``root`` the data set at ``uri``: fetch what is missing or differs, check all.

    Every file is checked against the manifest, the ones already there included; a download
    that does not match is discarded and stops the sync with its name (the S3 copy is bad:
    upload again). Images in ``root`` that the manifest does not list are refused, or removed
    with ``delete``: training reads every image of the layout, so an unlisted one would be
    trained on unverified. Refusing is the default because ``root`` may be someone's own
    folder; the GPU box's unit passes ``--delete`` since /data/chest_xray belongs to the sync
    alone. The local manifest is replaced last, once every file matches it.
    """
    root = Path(root)
    bucket, prefix = split_uri(uri)
    try:
        s3 = s3 or s3_client()
        manifest = remote_manifest(s3, bucket, prefix)
    except Exception as exc:
        raise explain(exc, uri) from None
    if manifest is None:
        raise DatasetError(
            f"no {MANIFEST} at {uri}: the data set was never uploaded, or an upload is still "
            "running (make data-upload writes the manifest last)"
        )
    entries = parse(manifest, f"{uri}/{MANIFEST}")
    listed = {e.path for e in entries}
    extra = [p for p in image_paths(root) if p not in listed] if root.is_dir() else []
    if extra and not delete:
        raise BadFile(extra[0], f"not in {uri}'s manifest (sync --delete removes such files)")
    for path in extra:
        (root / path).unlink()

    def fetch(entry: Entry) -> bool:
        target = root / entry.path
        if target.is_file() and sha256_of(target) == entry.sha256:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            s3.download_file(bucket, key(prefix, entry.path), tmp)
            got = sha256_of(Path(tmp))
            if got != entry.sha256:
                raise BadFile(entry.path, f"the copy in {uri} has sha256 {got}, not the manifest's")
            os.replace(tmp, target)
        except DatasetError:
            raise
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                missing = f"listed in the manifest but missing from {uri}"
                raise BadFile(entry.path, missing) from None
            raise explain(exc, f"{uri}/{entry.path}") from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    pool = ThreadPoolExecutor(workers)
    try:
        fetched = sum(pool.map(fetch, entries))  # raises the first bad file in path order
    finally:
        pool.shutdown(cancel_futures=True)  # after a bad file, fetch nothing more
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=root)
    with os.fdopen(fd, "wb") as fh:
        fh.write(manifest)
    os.replace(tmp, root / MANIFEST)
    return {
        "downloaded": fetched,
        "kept": len(entries) - fetched,
        "removed": len(extra),
        "sha256": digest(manifest),
    }


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m model.datasets",
        description="Training data sets in S3 with a sha256 manifest (model/README.md).",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get(WORKERS_ENV, DEFAULT_WORKERS)),
        help=f"concurrent transfers and hashes (default ${WORKERS_ENV} or {DEFAULT_WORKERS})",
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload", help="put a Kermany-layout folder at s3://bucket/prefix")
    up.add_argument("folder", type=Path)
    up.add_argument("uri")
    down = sub.add_parser("sync", help="make a folder the data set at s3://bucket/prefix")
    down.add_argument("uri")
    down.add_argument("folder", type=Path)
    down.add_argument(
        "--delete", action="store_true", help="remove images the manifest does not list"
    )
    check = sub.add_parser("verify", help="check a local copy against its manifest")
    check.add_argument("folder", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    """0 when done, 2 with a message when the data set is unusable or a file is bad."""
    args = parser().parse_args(argv)
    workers = max(1, args.workers)
    try:
        if args.command == "upload":
            done = upload(args.folder, args.uri, workers=workers)
            print(
                f"uploaded {done['uploaded']} files, {done['skipped']} unchanged; "
                f"data set {done['sha256']} at {args.uri}"
            )
        elif args.command == "sync":
            done = sync(args.uri, args.folder, args.delete, workers=workers)
            print(
                f"synced {args.folder}: {done['downloaded']} downloaded, {done['kept']} "
                f"unchanged, {done['removed']} removed; data set {done['sha256']}"
            )
        else:
            print(f"{args.folder}: every file matches; data set {verify(args.folder)}")
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
