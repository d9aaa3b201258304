"""``python -m model.publish``: put a trained model into the model store, or roll back.

    python -m model.publish --model var/runs/<version> --store var/models
    python -m model.publish --model DIR --store s3://bucket/models
    python -m model.publish --store var/models --rollback <version>
    python -m model.publish --store var/models --list

Publishing copies the version in completely before moving the ``current`` pointer (see
:mod:`model.store`), so workers polling the store never load a half-written model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.store import CARD_FILE, StoreError, open_store

log = logging.getLogger(__name__)


def publish(model_dir: str | Path, store_uri: str, version: str | None = None) -> str:
    """Publish ``model_dir`` (model.keras + model_card.json) and make it ``current``."""
    store = open_store(str(store_uri))
    published = store.publish(Path(model_dir), version)
    log.info("published %s to %s (now current)", published, store_uri)
    return published


def rollback(store_uri: str, version: str) -> str:
    """Point ``current`` back at a version already in the store."""
    store = open_store(str(store_uri))
    if version not in store.versions():
        raise StoreError(f"{version} is not in {store_uri}: {store.versions()}")
    store.set_current(version)
    return version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.publish", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="directory holding model.keras and " + CARD_FILE)
    p.add_argument("--store", default="var/models", help="local path or s3://bucket/prefix")
    p.add_argument("--version", default=None, help="override the card's version")
    p.add_argument("--rollback", metavar="VERSION", help="make an existing VERSION current")
    p.add_argument("--list", action="store_true", help="list versions, marking the current one")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.list:
            store = open_store(args.store)
            current = store.current_version()
            for v in store.versions():
                print(("* " if v == current else "  ") + v)
        elif args.rollback:
            print(f"current -> {rollback(args.store, args.rollback)}")
        elif args.model:
            version = publish(args.model, args.store, args.version)
            card = json.loads((args.model / CARD_FILE).read_text())
            print(f"current -> {version} (threshold {card.get('threshold')})")
        else:
            p.error("give --model DIR, --rollback VERSION or --list")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
