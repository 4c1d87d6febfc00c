"""The results store: one SQLite file (standard library, WAL mode) per project or path.

Tables:

- ``runs``: one row per run key (config + seed + code version) with its spec,
  algorithm, config JSON, env id + kwargs, seed, budget, status (``running``,
  ``done``, ``failed``), device, wall time, spent budget, library versions and
  git commit.
- ``curves``: the learning curve, long format (run key, evaluation index,
  trajectories, queries, wall time, metric, value).
- ``final_metrics``: (run key, metric, value).
- ``samples``: a few greedy evaluation episodes per run (prompt, chain), for the
  report's animations.
- ``board_entries``: accepted leaderboard entries (see :mod:`scoreboards.leaderboard.entries`), with
  what makes them verifiable: the code's digest and how to re-run it, the library
  versions, the protocol hash, the hidden instances' commitment, and the harness's
  learning curve of each run;
- ``board_verifications``: re-runs of entries (``neg board verify``) and their outcome.

A finished run is written in one ``BEGIN IMMEDIATE`` transaction (run row,
curve and final metrics together), so a crash never leaves a half-written run
visible; WAL mode and a busy timeout make concurrent writers from several
processes safe.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scoreboards.provenance import canonical_json, code_version, git_commit, now, package_versions

DEFAULT_DB = "results/neg.sqlite"
#: Environment variable naming the default database file.
DB_ENV = "NEG_RESULTS_DB"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    label TEXT NOT NULL,
    algo TEXT NOT NULL,
    algo_params TEXT NOT NULL,
    config TEXT NOT NULL,
    env_id TEXT NOT NULL,
    env_kwargs TEXT NOT NULL,
    seed INTEGER NOT NULL,
    budget_trajectories INTEGER,
    budget_queries INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    error TEXT,
    device TEXT,
    wall_time REAL,
    trajectories INTEGER,
    queries INTEGER,
    uses_clean_expert INTEGER NOT NULL DEFAULT 0,
    code_version TEXT NOT NULL,
    git_commit TEXT,
    versions TEXT,
    host TEXT,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS runs_spec ON runs (spec, status);
CREATE TABLE IF NOT EXISTS curves (
    key TEXT NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    trajectories INTEGER,
    queries INTEGER,
    wall_time REAL,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (key, step, metric)
);
CREATE TABLE IF NOT EXISTS final_metrics (
    key TEXT NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (key, metric)
);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT NOT NULL REFERENCES runs (key) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    chain TEXT NOT NULL,
    PRIMARY KEY (key, idx)
);
CREATE TABLE IF NOT EXISTS board_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    board TEXT NOT NULL,
    board_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('submission', 'builtin', 'reference')),
    code_hash TEXT NOT NULL,
    code_version TEXT NOT NULL,
    metric TEXT NOT NULL,
    score REAL NOT NULL,
    ci_low REAL,
    ci_high REAL,
    std REAL,
    seeds TEXT NOT NULL,
    per_seed TEXT NOT NULL,
    trajectories REAL,
    queries REAL,
    wall_time REAL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS board_entries_board ON board_entries (board);
CREATE TABLE IF NOT EXISTS board_verifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id INTEGER NOT NULL REFERENCES board_entries (id) ON DELETE CASCADE,
    outcome TEXT NOT NULL CHECK (outcome IN ('reproduced', 'within_ci', 'not_reproduced', 'cannot_rerun')),
    score REAL,
    per_seed TEXT,
    detail TEXT,
    code_version TEXT,
    sandbox TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS board_verifications_entry ON board_verifications (entry_id);
CREATE TABLE IF NOT EXISTS private_rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    board TEXT NOT NULL,
    board_hash TEXT NOT NULL,
    secret_id TEXT NOT NULL,
    entries TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS private_scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    round_id INTEGER NOT NULL REFERENCES private_rounds (id) ON DELETE CASCADE,
    entry_id INTEGER NOT NULL REFERENCES board_entries (id) ON DELETE CASCADE,
    outcome TEXT NOT NULL CHECK (outcome IN ('scored', 'rejected')),
    score REAL,
    per_seed TEXT,
    seed_commitment TEXT,
    detail TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS private_scores_round ON private_scores (round_id);
"""
#: Columns added to ``board_entries`` after its first version (added to older databases on open).
BOARD_ENTRY_COLUMNS = {
    "code_ref": "TEXT",  # sha256 of the stored code (entry_code), NULL for built-ins
    "rerun": "TEXT",  # JSON: how to run the entry again (target, params, train)
    "versions": "TEXT",  # JSON: Python and library versions, the harness's code version
    "rule": "TEXT",  # 'open' or 'hidden'
    "access": "TEXT",  # 'full' or 'sample'
    "secret_id": "TEXT",  # hidden boards: which harness secret drew the instances
    "seed_commitment": "TEXT",  # hidden boards: commitment to the hidden values used
    "curves": "TEXT",  # JSON: the harness's learning curve of each run
    "sandbox": "TEXT",  # how the worker was isolated ('bwrap', 'none'); NULL: before sandboxes
}
#: JSON-encoded columns of ``board_entries``.
BOARD_JSON_COLUMNS = ("seeds", "per_seed", "rerun", "versions", "curves")
#: Curve row fields that are coordinates, not metrics.
CURVE_AXES = ("update", "trajectories", "queries", "wall_time")


def default_db() -> Path:
    """``$NEG_RESULTS_DB`` or ``results/neg.sqlite`` under the working directory."""
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


class ResultStore:
    """A SQLite results database. One instance per process (connections are not shared).

    Args:
        path: database file (created with its parent directory if missing).
        timeout: seconds to wait for another writer's lock before failing.
    """

    def __init__(self, path: str | Path | None = None, timeout: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
        self._con = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._con.row_factory = sqlite3.Row
        self._con.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        self._con.execute("PRAGMA journal_mode = WAL")
        self._con.execute("PRAGMA synchronous = NORMAL")
        self._con.execute("PRAGMA foreign_keys = ON")
        with self.transaction() as con:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            have = {r["name"] for r in con.execute("PRAGMA table_info(board_entries)")}
            for col, kind in BOARD_ENTRY_COLUMNS.items():
                if col not in have:
                    con.execute(f"ALTER TABLE board_entries ADD COLUMN {col} {kind}")

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ResultStore:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: everything inside commits together or not at all."""
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield self._con
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")

    # ----- writing runs ------------------------------------------------------------
    def _run_row(self, run: Any, status: str) -> dict[str, Any]:
        return {
            "key": run.key, "spec": run.spec, "label": run.label, "algo": run.algo,
            "algo_params": canonical_json(run.params), "config": canonical_json(run.config),
            "env_id": run.env_id, "env_kwargs": canonical_json(run.env_kwargs), "seed": run.seed,
            "budget_trajectories": run.config.get("budget_trajectories"),
            "budget_queries": run.config.get("budget_queries"), "status": status,
            "code_version": code_version(), "git_commit": git_commit(),
            "versions": canonical_json(package_versions()), "host": socket.gethostname(),
            "created_at": now(),
        }

    def mark_running(self, runs: Iterable[Any]) -> None:
        """Record runs as started (a re-run resumes them); finished rows are left alone."""
        with self.transaction() as con:
            for run in runs:
                row = self._run_row(run, "running")
                cols = ", ".join(row)
                con.execute(
                    f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(row))}) "
                    "ON CONFLICT (key) DO UPDATE SET status = 'running', error = NULL "
                    "WHERE runs.status != 'done'", tuple(row.values()))

    def record_result(self, run: Any, result: dict[str, Any], _fail_after_curves: bool = False) -> None:
        """Write a finished run (row, curve, final metrics) in one transaction.

        Args:
            run: the :class:`~scoreboards.sweeps.spec_model.RunSpec`.
            result: ``RunResult.to_dict()`` of the training run.
            _fail_after_curves: test hook that raises inside the transaction.
        """
        row = self._run_row(run, "done")
        row.update(device=str(result.get("device")), wall_time=_num(result.get("wall_time")),
                   trajectories=result.get("trajectories"), queries=result.get("queries"),
                   uses_clean_expert=int(bool(result.get("uses_clean_expert"))), finished_at=now())
        curve_rows = []
        for step, point in enumerate(result.get("curve") or []):
            axes = [point.get("trajectories"), point.get("queries"), _num(point.get("wall_time"))]
            for metric, value in point.items():
                if metric not in CURVE_AXES:
                    curve_rows.append((run.key, step, *axes, metric, _num(value)))
        finals = [(run.key, k, _num(v)) for k, v in (result.get("final_metrics") or {}).items()
                  if k not in CURVE_AXES]
        with self.transaction() as con:
            con.execute("DELETE FROM runs WHERE key = ?", (run.key,))  # cascades to curves/metrics
            con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))
            con.executemany("INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?, ?)", curve_rows)
            if _fail_after_curves:
                raise RuntimeError("injected failure inside the write transaction")
            con.executemany("INSERT INTO final_metrics VALUES (?, ?, ?)", finals)
            smp = result.get("samples") or {}
            con.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)",
                            [(run.key, i, canonical_json(p), canonical_json(c))
                             for i, (p, c) in enumerate(zip(smp.get("prompts", []), smp.get("chains", [])))])

    def record_failure(self, run: Any, error: str, wall_time: float | None = None) -> None:
        """Mark a run failed with its error (a re-run tries it again)."""
        row = self._run_row(run, "failed")
        row.update(error=error[-4000:], wall_time=wall_time, finished_at=now())
        with self.transaction() as con:
            con.execute("DELETE FROM runs WHERE key = ? AND status != 'done'", (run.key,))
            con.execute(f"INSERT OR IGNORE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))

    # ----- reading -----------------------------------------------------------------
    def statuses(self, keys: Iterable[str]) -> dict[str, str]:
        keys = list(keys)
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, status FROM runs WHERE key IN ({', '.join('?' * len(chunk))})"
            out.update({r["key"]: r["status"] for r in self._con.execute(q, chunk)})
        return out

    def finished_keys(self, keys: Iterable[str]) -> set[str]:
        return {k for k, s in self.statuses(keys).items() if s == "done"}

    def runs(self, keys: Iterable[str] | None = None, spec: str | None = None,
             status: str | None = "done") -> list[dict[str, Any]]:
        """Run rows (JSON columns decoded) with their ``final_metrics`` dict."""
        where, args = [], []
        if status:
            where.append("status = ?")
            args.append(status)
        if spec:
            where.append("spec = ?")
            args.append(spec)
        q = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY created_at, key"
        rows = [dict(r) for r in self._con.execute(q, args)]
        if keys is not None:
            wanted = set(keys)
            rows = [r for r in rows if r["key"] in wanted]
        finals: dict[str, dict[str, float]] = {}
        for r in self._con.execute("SELECT key, metric, value FROM final_metrics"):
            finals.setdefault(r["key"], {})[r["metric"]] = r["value"]
        for r in rows:
            for c in ("algo_params", "config", "env_kwargs", "versions"):
                r[c] = json.loads(r[c]) if r[c] else {}
            r["final_metrics"] = finals.get(r["key"], {})
        return rows

    def curves(self, keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Learning curves per run key: one dict per evaluation (axes + metrics)."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = (f"SELECT * FROM curves WHERE key IN ({', '.join('?' * len(chunk))}) "
                 "ORDER BY key, step")
            for r in self._con.execute(q, chunk):
                point = out.setdefault(r["key"], {}).setdefault(r["step"], {
                    "trajectories": r["trajectories"], "queries": r["queries"], "wall_time": r["wall_time"]})
                point[r["metric"]] = r["value"]
        return {k: [v[s] for s in sorted(v)] for k, v in out.items()}

    def samples(self, key: str) -> list[tuple[list[int], list[int]]]:
        """A run's greedy evaluation episodes (prompt, chain), if recorded."""
        return [(json.loads(r["prompt"]), json.loads(r["chain"])) for r in self._con.execute(
            "SELECT prompt, chain FROM samples WHERE key = ? ORDER BY idx", (key,))]

    def check(self) -> list[str]:
        """Consistency problems (empty when the store is consistent)."""
        problems = []
        ic = self._con.execute("PRAGMA integrity_check").fetchone()[0]
        if ic != "ok":
            problems.append(f"integrity_check: {ic}")
        for table in ("curves", "final_metrics", "samples"):
            n = self._con.execute(f"SELECT COUNT(*) FROM {table} WHERE key NOT IN (SELECT key FROM runs)"
                                  ).fetchone()[0]
            if n:
                problems.append(f"{n} {table} rows belong to no run")
            n = self._con.execute(f"SELECT COUNT(*) FROM {table} WHERE key IN "
                                  "(SELECT key FROM runs WHERE status != 'done')").fetchone()[0]
            if n:
                problems.append(f"{n} {table} rows belong to unfinished runs")
        n = self._con.execute("SELECT COUNT(*) FROM runs WHERE status = 'done' AND key NOT IN "
                              "(SELECT key FROM final_metrics)").fetchone()[0]
        if n:
            problems.append(f"{n} finished runs have no final metrics")
        return problems

    # ----- boards ------------------------------------------------------------------
    def add_board_entry(self, entry: dict[str, Any]) -> int:
        """Insert an accepted board entry (one transaction); returns its id."""
        entry = {k: v for k, v in entry.items() if k != "id"}
        entry["created_at"] = entry.get("created_at") or now()
        for c in BOARD_JSON_COLUMNS:
            if c in entry and entry[c] is not None:
                entry[c] = canonical_json(entry[c])
        with self.transaction() as con:
            cur = con.execute(f"INSERT INTO board_entries ({', '.join(entry)}) "
                              f"VALUES ({', '.join('?' * len(entry))})", tuple(entry.values()))
            return int(cur.lastrowid)

    @staticmethod
    def _entry(row: sqlite3.Row) -> dict[str, Any]:
        r = dict(row)
        for c in BOARD_JSON_COLUMNS:
            r[c] = json.loads(r[c]) if r.get(c) else ([] if c in ("seeds", "per_seed", "curves") else None)
        return r

    def board_entries(self, board: str) -> list[dict[str, Any]]:
        """A board's entries (every protocol version), oldest first, JSON columns decoded."""
        return [self._entry(r) for r in self._con.execute(
            "SELECT * FROM board_entries WHERE board = ? ORDER BY id", (board,))]

    def board_entry(self, entry_id: int) -> dict[str, Any] | None:
        """One entry by id, or None."""
        row = self._con.execute("SELECT * FROM board_entries WHERE id = ?", (int(entry_id),)).fetchone()
        return self._entry(row) if row is not None else None

    def add_verification(self, entry_id: int, outcome: str, score: float | None = None,
                         per_seed: Any = None, detail: str = "", sandbox: str | None = None) -> int:
        """Record a re-run of an entry (``neg board verify``); returns its id."""
        with self.transaction() as con:
            cur = con.execute(
                "INSERT INTO board_verifications (entry_id, outcome, score, per_seed, detail, code_version, "
                "sandbox, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (int(entry_id), outcome, _num(score), canonical_json(per_seed) if per_seed is not None else None,
                 detail, code_version(), sandbox, now()))
            return int(cur.lastrowid)

    def verifications(self, entry_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
        """The re-runs of each entry, oldest first."""
        out: dict[int, list[dict[str, Any]]] = {}
        ids = [int(i) for i in entry_ids]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for r in self._con.execute(f"SELECT * FROM board_verifications WHERE entry_id IN "
                                       f"({', '.join('?' * len(chunk))}) ORDER BY id", chunk):
                row = dict(r)
                row["per_seed"] = json.loads(row["per_seed"]) if row["per_seed"] else None
                out.setdefault(row["entry_id"], []).append(row)
        return out

    # ----- private rounds (scoreboards.leaderboard.private) ------------------------------
    def add_private_round(self, board: str, board_hash: str, secret_id: str, entries: list[int]) -> int:
        """Record a private round: its board, its secret's id and the entries it ranks; returns its id."""
        with self.transaction() as con:
            cur = con.execute("INSERT INTO private_rounds (board, board_hash, secret_id, entries, created_at) "
                              "VALUES (?, ?, ?, ?, ?)", (board, board_hash, secret_id,
                                                         canonical_json([int(i) for i in entries]), now()))
            return int(cur.lastrowid)

    def private_rounds(self, board: str) -> list[dict[str, Any]]:
        """A board's private rounds, oldest first (``entries`` decoded)."""
        rows = [dict(r) for r in self._con.execute("SELECT * FROM private_rounds WHERE board = ? ORDER BY id",
                                                   (board,))]
        for r in rows:
            r["entries"] = json.loads(r["entries"])
        return rows

    def add_private_score(self, round_id: int, entry_id: int, outcome: str, score: float | None = None,
                          per_seed: Any = None, seed_commitment: str | None = None, detail: str = "") -> int:
        """Record one entry's run in a private round (``scored`` or ``rejected``); returns its id."""
        with self.transaction() as con:
            cur = con.execute(
                "INSERT INTO private_scores (round_id, entry_id, outcome, score, per_seed, seed_commitment, detail, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (int(round_id), int(entry_id), outcome, _num(score),
                 canonical_json(per_seed) if per_seed is not None else None, seed_commitment, detail, now()))
            return int(cur.lastrowid)

    def private_scores(self, round_id: int) -> list[dict[str, Any]]:
        """The entries' runs of one private round, in the order they ran (``per_seed`` decoded)."""
        rows = [dict(r) for r in self._con.execute("SELECT * FROM private_scores WHERE round_id = ? ORDER BY id",
                                                   (int(round_id),))]
        for r in rows:
            r["per_seed"] = json.loads(r["per_seed"]) if r["per_seed"] else []
        return rows

    # ----- export ------------------------------------------------------------------
    def export(self, out_dir: str | Path, fmt: str = "csv", keys: Iterable[str] | None = None,
               spec: str | None = None) -> list[Path]:
        """Write finished runs (all, or those of `keys` / `spec`) and their curves to `out_dir` as
        ``csv``, ``json`` or ``parquet`` (:func:`scoreboards.export.write_export`)."""
        from scoreboards.export import write_export

        runs = self.runs(keys=keys, spec=spec)
        return write_export(out_dir, fmt, runs, self.curves([r["key"] for r in runs]), self.path)
