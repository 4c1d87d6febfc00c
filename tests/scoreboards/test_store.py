"""The SQLite store: round trip, transactional writes under crashes, concurrent writers, export."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from scoreboards.store import ResultStore
from scoreboards.sweeps.specs import load_spec
from tests.scoreboards.fakes import fake_train


def _result(run):
    from agents.config import TrainConfig

    return fake_train(TrainConfig(**run.config)).to_dict()


def test_round_trip(tiny_spec_path, db_path):
    runs = load_spec(tiny_spec_path).runs()[:3]
    with ResultStore(db_path) as st:
        assert st._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        st.mark_running(runs)
        assert set(st.statuses(r.key for r in runs).values()) == {"running"}
        st.record_result(runs[0], _result(runs[0]))
        st.record_failure(runs[1], "Traceback ...\nRuntimeError: boom")
        assert st.finished_keys(r.key for r in runs) == {runs[0].key}
        row = st.runs(keys=[runs[0].key])[0]
        assert row["status"] == "done" and row["algo"] == runs[0].algo and row["seed"] == runs[0].seed
        assert row["config"] == runs[0].config and row["env_kwargs"] == runs[0].env_kwargs
        assert row["versions"]["numpy"] and row["code_version"]
        assert "update" not in row["final_metrics"] and row["final_metrics"]["greedy_full_exact"] > 0
        curve = st.curves([runs[0].key])[runs[0].key]
        assert len(curve) == 4 and curve[-1]["trajectories"] == 1000 and "val_loss" in curve[0]
        failed = st.runs(status="failed")[0]
        assert failed["error"].endswith("boom")
        # A finished run is never downgraded by a later mark_running.
        st.mark_running(runs[:1])
        assert st.statuses([runs[0].key])[runs[0].key] == "done"
        assert st.check() == []


def test_exception_inside_the_write_transaction_leaves_no_trace(tiny_spec_path, db_path):
    run = load_spec(tiny_spec_path).runs()[0]
    with ResultStore(db_path) as st:
        st.mark_running([run])
        with pytest.raises(RuntimeError, match="injected"):
            st.record_result(run, _result(run), _fail_after_curves=True)
        assert st.statuses([run.key]) == {run.key: "running"}
        assert st.curves([run.key]) == {}
        assert st.check() == []
        st.record_result(run, _result(run))  # the store still works
        assert st.check() == [] and st.finished_keys([run.key]) == {run.key}


KILL_MID_WRITE = textwrap.dedent("""
    import os, sys
    from scoreboards.sweeps.specs import load_spec
    from scoreboards.store import ResultStore
    run = load_spec(sys.argv[1]).runs()[1]
    st = ResultStore(sys.argv[2])
    con = st._con
    con.execute("BEGIN IMMEDIATE")
    con.execute("DELETE FROM runs WHERE key = ?", (run.key,))
    con.execute("INSERT INTO runs (key, spec, label, algo, algo_params, config, env_id, env_kwargs, seed, "
                "status, code_version, created_at) VALUES (?, 's', 'l', 'a', '{}', '{}', 'e', '{}', 0, "
                "'done', 'v', 'now')", (run.key,))
    con.executemany("INSERT INTO curves VALUES (?, ?, 1, 1, 0.0, 'acc', 0.5)", [(run.key, i) for i in range(50)])
    os._exit(1)  # killed before COMMIT
""")


def test_killed_writer_leaves_the_store_consistent(tiny_spec_path, db_path):
    runs = load_spec(tiny_spec_path).runs()[:2]
    with ResultStore(db_path) as st:
        st.record_result(runs[0], _result(runs[0]))
        st.mark_running(runs[1:])
    proc = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(tiny_spec_path), str(db_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr
    with ResultStore(db_path) as st:
        assert st.check() == []
        assert st.statuses(r.key for r in runs) == {runs[0].key: "done", runs[1].key: "running"}
        assert st.curves([runs[1].key]) == {}
        assert len(st.curves([runs[0].key])[runs[0].key]) == 4


def _write_many(args):
    spec_path, db, part = args
    runs = load_spec(spec_path, check_envs=False).runs()
    with ResultStore(db) as st:
        for r in runs[part::2]:
            st.mark_running([r])
            st.record_result(r, _result(r))
    return len(runs[part::2])


def test_concurrent_writers(tiny_spec_path, db_path):
    ResultStore(db_path).close()
    # fork: the writers start at once (each has its own connection, opened after the fork).
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as ex:
        n = sum(ex.map(_write_many, [(str(tiny_spec_path), str(db_path), i) for i in range(2)]))
    with ResultStore(db_path) as st:
        assert len(st.runs()) == n == 16
        assert st.check() == []


def test_export_csv_json_parquet(tiny_spec_path, db_path, tmp_path):
    runs = load_spec(tiny_spec_path).runs()[:2]
    with ResultStore(db_path) as st:
        for r in runs:
            st.record_result(r, _result(r))
        csv_paths = st.export(tmp_path / "csv", "csv")
        (js,) = st.export(tmp_path / "json", "json")
        data = json.loads(js.read_text())
        assert len(data["runs"]) == 2 and len(data["runs"][0]["curve"]) == 4
        assert "final.greedy_full_exact" in csv_paths[0].read_text().splitlines()[0]
        assert len(csv_paths[1].read_text().splitlines()) > 8
        pq = pytest.importorskip("pyarrow.parquet")
        runs_pq, curves_pq = st.export(tmp_path / "pq", "parquet")
        assert pq.read_table(runs_pq).num_rows == 2
        assert pq.read_table(curves_pq).num_rows == len(csv_paths[1].read_text().splitlines()) - 1
        with pytest.raises(ValueError, match="valid values"):
            st.export(tmp_path, "xlsx")
