"""Sweeps survive faults on the distributed engine: a real local Ray cluster, a worker killed mid-run.

The kind of fault: the Ray backend was tested only with a fake trainer, so nothing showed that a
run whose worker process dies is retried, resumes from its checkpoint and ends with the same result
as an uninterrupted run. Here the runner starts a real Ray instance on this machine (a head --
GCS and raylet -- and one worker process per CPU, two, on the loopback address only), runs a small
real spec through ``backend="ray"`` with checkpoints on, and a watcher SIGKILLs one of the worker
processes executing a run once every run in flight has written a checkpoint.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time

import pytest
import torch

from scoreboards.store import ResultStore
from scoreboards.sweeps.runner import checkpoint_root, run_sweep
from scoreboards.sweeps.specs import load_spec

OVERRIDES = ["seeds=[0, 1]", 'algorithms=[{name="nail-f"}]', "env.grid.eta=[0.2]", "budget.trajectories=3072",
             "train.batch_size=32", "train.checkpoint_every=1", "eval.every=1024"]
#: The whole test (two sweeps, a Ray start and a retry) must end within this; a hang dumps the
#: stacks and exits rather than blocking the suite.
DEADLINE_S = 420


def _ray_run_processes() -> list:
    """This process's descendants that are Ray workers executing a run (proctitle ``ray::execute_run``)."""
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("ray::execute_run" in part for part in p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def _kill_one_worker_mid_run(root, keys, killed: list, stop: threading.Event) -> None:
    """Once every run has a checkpoint and two are executing, SIGKILL one worker process."""
    while not stop.is_set():
        if all((root / k / "last.pt").exists() for k in keys):
            procs = _ray_run_processes()
            if len(procs) >= 2:  # both runs in flight, on two worker processes
                victim = procs[0]
                killed.append(victim.pid)
                os.kill(victim.pid, signal.SIGKILL)
                return
        time.sleep(0.05)


def _results(db):
    with ResultStore(db) as st:
        rows = {r["key"]: r for r in st.runs(status=None)}
        curves = st.curves(rows)
    return rows, {k: [{m: v for m, v in p.items() if m != "wall_time"} for p in c] for k, c in curves.items()}


@pytest.mark.slow  # a Ray start, a retry and two sweeps: about a minute on two cores
def test_a_worker_killed_mid_run_is_retried_resumes_and_matches_the_local_backend(tiny_spec_path, tmp_path,
                                                                                     monkeypatch):
    ray = pytest.importorskip("ray")
    pytest.importorskip("psutil")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # never an ambient cluster
    faulthandler.dump_traceback_later(DEADLINE_S, exit=True)
    try:
        spec = load_spec(tiny_spec_path, overrides=OVERRIDES)
        runs = spec.runs()
        assert len(runs) == 2
        db = tmp_path / "ray" / "neg.sqlite"
        root = checkpoint_root(ResultStore(db))
        killed: list[int] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_kill_one_worker_mid_run, args=(root, [r.key for r in runs], killed, stop),
                                   daemon=True)
        watcher.start()
        lines: list[str] = []
        try:
            s = run_sweep(spec, db, backend="ray", progress=False, log=lines.append,
                          ray_init={"num_cpus": 2, "_node_ip_address": "127.0.0.1"})
        finally:
            stop.set()
            watcher.join()
        assert not ray.is_initialized()
        assert killed, "no worker was killed: the runs finished before both had checkpointed"
        # The sweep finished: every run done, none failed, one row per run.
        assert (s.done, s.failed) == (2, 0), s.failures
        rows, curves = _results(db)
        assert sorted(rows) == sorted(r.key for r in runs)
        assert all(r["status"] == "done" for r in rows.values())
        # The killed run was retried and resumed from its checkpoint; the other ran once, uninterrupted.
        assert sum("resumed" in line for line in lines) == 1, lines

        # The local backend, same spec and seeds, one torch thread per run as the Ray workers have.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            local = run_sweep(spec, tmp_path / "local" / "neg.sqlite", workers=0, progress=False,
                              log=lambda m: None)
        finally:
            torch.set_num_threads(threads)
        assert (local.done, local.failed) == (2, 0)
        local_rows, local_curves = _results(tmp_path / "local" / "neg.sqlite")
        for key in rows:
            assert rows[key]["final_metrics"] == local_rows[key]["final_metrics"], key
            assert rows[key]["trajectories"] == local_rows[key]["trajectories"] == 3072
            assert curves[key] == local_curves[key], key
    finally:
        faulthandler.cancel_dump_traceback_later()
