"""What the scoreboards' commands share: the results database of ``--db``."""

from __future__ import annotations

import argparse
from typing import Any


def open_store(args: argparse.Namespace, create: bool = False) -> Any:
    """The results database of ``--db``: created by the commands that write results (``create``),
    else it must exist (a mistyped path is an error, not an empty database)."""
    import sqlite3
    from pathlib import Path

    from scoreboards.store import ResultStore, default_db

    path = Path(args.db).expanduser() if args.db else default_db()
    where = f"--db {args.db}" if args.db else f"the default database {path} ($NEG_RESULTS_DB)"
    if path.is_dir():
        raise ValueError(f"{where} is a folder; give the database file, e.g. {path / 'neg.sqlite'}")
    if not create and not path.exists():
        raise FileNotFoundError(f"{where} does not exist; give the database `neg bench run` wrote "
                                "(--db PATH), or run a spec first")
    try:
        return ResultStore(path)
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{where} is not a results database ({e}); give the file `neg bench run` "
                         "wrote, or a new path") from None


def add_db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None,
                   help="results database (default: $NEG_RESULTS_DB or results/neg.sqlite)")
