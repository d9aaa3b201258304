"""``python -m devstack ROLE``: run one service of the stack in the foreground, in this process.

The Procfile that `make up` hands to honcho runs its services through this, so `make up`, the
tests and the benchmarks start the same command lines (each service reads its settings from
the environment scripts/up.sh exports). ``--print`` shows the command instead of running it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from devstack.api import api_argv
from devstack.nginx import nginx_argv
from devstack.ui import ui_argv
from devstack.worker import worker_argv


def _nginx() -> list[str]:
    conf = os.environ.get("NGINX_DIR")
    if not conf:
        sys.exit("NGINX_DIR is not set: the directory nginx/render.sh rendered (scripts/up.sh)")
    return nginx_argv(Path(conf))


ROLES = {"api": api_argv, "ui": ui_argv, "worker": worker_argv, "nginx": _nginx}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--print", action="store_true", help="print the command, do not run it")
    args = parser.parse_args(argv)
    command = ROLES[args.role]()
    if args.print:
        print(shlex.join(command))
        return
    sys.stdout.flush()
    # exec, not a child: the service takes this pid, so honcho's signals reach it directly
    os.execvp(command[0], command)  # noqa: S606 - a fixed argv, no shell


if __name__ == "__main__":
    main()
