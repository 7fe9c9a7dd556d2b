"""Developer tool for migrations: ``python -m cobrowse.storage revision -m "chat tables" [--autogenerate]``.

``revision`` writes ``migrations/versions/NNNN_<slug>.py`` with the next
four-digit revision id. With ``--autogenerate`` it compares the models with a
scratch SQLite database migrated to head, so no database needs configuring.
Review the result: Alembic does not see every change (e.g. CHECK constraints).
``heads`` and ``history`` print what Alembic knows.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from alembic import command
from alembic.script import ScriptDirectory

from .db import alembic_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cobrowse.storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rev = sub.add_parser("revision", help="write a new migration")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    sub.add_parser("heads", help="print the head revision")
    sub.add_parser("history", help="list the migrations")
    args = parser.parse_args(argv)

    if args.command == "heads":
        command.heads(alembic_config())
        return 0
    if args.command == "history":
        command.history(alembic_config())
        return 0
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config("sqlite+aiosqlite:///" + os.path.join(tmp, "scratch.db"))
        if args.autogenerate:
            command.upgrade(cfg, "head")
        command.revision(cfg, message=args.message, autogenerate=args.autogenerate, rev_id=rev_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
