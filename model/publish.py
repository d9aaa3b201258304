"""``python -m model.publish``: put a trained run into the model store as a *candidate*.

    python -m model.publish --model var/runs/<version> --store var/models
    python -m model.publish --model DIR --store s3://bucket/models

The version lands complete with every artefact of its run (model, card, evaluation, history,
log, plots, ``quality.npz``: :data:`model.store.ARTEFACTS`), but ``current`` does not move:
``python -m model.promote VERSION --reason TEXT`` compares it with the served version and
moves the pointer (rollback is the same command with an older version). One exception: a
store with no current version at all (a fresh install, ``make model`` the first time) gets
its first version as current, so that something is served.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from model.store import CARD_FILE, StoreError, open_store

log = logging.getLogger(__name__)

PROMOTE_HINT = "python -m model.promote VERSION --reason TEXT (see --list)"


def publish(model_dir: str | Path, store_uri: str, version: str | None = None) -> str:
    """Add ``model_dir`` as a candidate version; current only if the store has none yet."""
    store = open_store(str(store_uri))
    published = store.add(Path(model_dir), version)
    if store.current_version() is None:
        store.set_current(published)
        log.info(
            "published %s to %s: the store had no current version, so it is current now "
            "(a fresh install serves something); later versions are candidates",
            published,
            store_uri,
        )
    else:
        log.info(
            "published %s to %s as a candidate (current stays %s); to serve it: %s",
            published,
            store_uri,
            store.current_version(),
            PROMOTE_HINT.replace("VERSION", published),
        )
    return published


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.publish", description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="directory holding model.keras and " + CARD_FILE)
    p.add_argument("--store", default="var/models", help="local path or s3://bucket/prefix")
    p.add_argument("--version", default=None, help="override the card's version")
    # Kept only to point the old habits at the one way to move `current`.
    p.add_argument("--rollback", metavar="VERSION", help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.rollback or args.list:
        what = f"{args.rollback} --reason TEXT" if args.rollback else "--list"
        print(
            f"error: model.publish no longer moves or lists `current`; use "
            f"python -m model.promote {what} --store {args.store}",
            file=sys.stderr,
        )
        return 2
    if not args.model:
        p.error("give --model DIR (a training run's output)")
    try:
        version = publish(args.model, args.store, args.version)
        current = open_store(args.store).current_version()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    card = json.loads((args.model / CARD_FILE).read_text())
    if current == version:
        print(f"current -> {version} (threshold {card.get('threshold')})")
    else:
        print(f"candidate {version} (threshold {card.get('threshold')}); current stays {current}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
