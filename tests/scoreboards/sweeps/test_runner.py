"""Sweeps end to end: fake trainer through every backend, resume, failures, the real trainer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from scoreboards.analysis.report import build_report
from scoreboards.store import ResultStore
from scoreboards.sweeps.runner import run_sweep
from scoreboards.sweeps.specs import load_spec
from tests.scoreboards.fakes import failing_train, fake_train, real_or_fail

CALLS: list[str] = []


def counting_train(cfg):
    CALLS.append(f"{cfg.algo}/{cfg.seed}")
    return fake_train(cfg)


def test_inline_sweep_then_rerun_skips_finished(tiny_spec_path, db_path):
    spec = load_spec(tiny_spec_path)
    CALLS.clear()
    s = run_sweep(spec, db_path, workers=0, train_fn=counting_train, progress=False, log=lambda m: None)
    assert (s.total, s.done, s.failed, s.skipped) == (16, 16, 0, 0) and len(CALLS) == 16
    again = run_sweep(spec, db_path, workers=0, train_fn=counting_train, progress=False)
    assert (again.done, again.skipped) == (0, 16) and len(CALLS) == 16
    # Growing the grid runs only the new runs.
    bigger = load_spec(tiny_spec_path, overrides=["seeds=[0, 1, 2]"])
    s3 = run_sweep(bigger, db_path, workers=0, train_fn=counting_train, progress=False, log=lambda m: None)
    assert (s3.done, s3.skipped) == (8, 16) and len(CALLS) == 24


def test_failed_runs_are_recorded_and_retried(tiny_spec_path, db_path):
    spec = load_spec(tiny_spec_path, overrides=["seeds=[0]", 'algorithms=[{name="nail-f"}, {name="opd-f"}]'])
    s = run_sweep(spec, db_path, workers=0, train_fn=failing_train, progress=False, log=lambda m: None)
    assert (s.done, s.failed) == (2, 2) and "deliberate failure" in s.failures[0]
    with ResultStore(db_path) as st:
        assert len(st.runs(status="failed")) == 2 and st.check() == []
    s2 = run_sweep(spec, db_path, workers=0, train_fn=fake_train, progress=False, log=lambda m: None)
    assert (s2.done, s2.skipped) == (2, 2)


def test_interrupted_runs_resume_from_their_checkpoint(tiny_spec_path, db_path):
    spec = load_spec(tiny_spec_path, overrides=["seeds=[0]", 'algorithms=[{name="bc"}]', "env.grid.eta=[0.0]"])
    (run,) = spec.runs()
    ckpt = db_path.parent / "checkpoints" / run.key
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_text("from the killed sweep")
    run_sweep(spec, db_path, workers=0, train_fn=fake_train, progress=False, keep_checkpoints=True,
              log=lambda m: None)
    assert (ckpt / "resumed").read_text() == "True"


KILLED_SWEEP = textwrap.dedent("""
    import sys
    from scoreboards.sweeps.runner import run_sweep
    from scoreboards.sweeps.specs import load_spec
    from tests.scoreboards.fakes import dying_train
    spec = load_spec(sys.argv[1], overrides=["seeds=[0, 1, 2]", 'algorithms=[{name="bc"}]', "env.grid.eta=[0.0]"])
    run_sweep(spec, sys.argv[2], workers=0, train_fn=dying_train, progress=False)
""")


@pytest.mark.slow  # a subprocess importing torch afresh, killed mid-sweep
def test_killed_sweep_loses_only_the_run_in_flight(tiny_spec_path, db_path):
    env = {**os.environ, "NEG_TEST_DIE_SEED": "1", "PYTHONPATH": os.getcwd()}
    p = subprocess.run([sys.executable, "-c", KILLED_SWEEP, str(tiny_spec_path), str(db_path)], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert p.returncode == 9, p.stderr
    spec = load_spec(tiny_spec_path, overrides=["seeds=[0, 1, 2]", 'algorithms=[{name="bc"}]', "env.grid.eta=[0.0]"])
    runs = spec.runs()
    with ResultStore(db_path) as st:
        assert st.statuses(r.key for r in runs) == {runs[0].key: "done", runs[1].key: "running",
                                                    runs[2].key: "running"}
        assert st.check() == []
    s = run_sweep(spec, db_path, workers=0, train_fn=fake_train, progress=False, keep_checkpoints=True,
                  log=lambda m: None)
    assert (s.done, s.skipped) == (2, 1)
    assert (db_path.parent / "checkpoints" / runs[1].key / "resumed").read_text() == "True"


def test_ray_backend(tiny_spec_path, db_path, monkeypatch):
    ray = pytest.importorskip("ray")
    # Ambient cluster pointers (an env var, or a stale /tmp/ray/ray_current_cluster left by
    # an earlier run) must not make the default "start a local instance" connect elsewhere.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    spec = load_spec(tiny_spec_path, overrides=["seeds=[0]", "env.grid.eta=[0.2]"])
    s = run_sweep(spec, db_path, backend="ray", train_fn=fake_train, progress=False, log=lambda m: None,
                  ray_init={"num_cpus": 2})
    assert (s.done, s.failed) == (4, 0)
    assert not ray.is_initialized()
    with ResultStore(db_path) as st:
        assert len(st.runs()) == 4 and st.check() == []


def test_unknown_backend(tiny_spec_path, db_path):
    with pytest.raises(ValueError, match="local, ray"):
        run_sweep(load_spec(tiny_spec_path), db_path, backend="slurm")


def test_real_tiny_sweep_through_the_local_pool(tiny_spec_path, db_path):
    """The real trainer on two spawned workers (and a failing run): results land, the report draws them."""
    spec = load_spec(tiny_spec_path, overrides=["seeds=[0]", "env.grid.eta=[0.2]",
                                                'algorithms=[{name="bc"}, {name="nail-f"}, {name="opd-f"}]'])
    s = run_sweep(spec, db_path, workers=2, train_fn=real_or_fail, progress=False, log=lambda m: None)
    assert (s.done, s.failed) == (2, 1), s.failures
    assert "deliberate failure" in s.failures[0]
    with ResultStore(db_path) as st:
        rows = st.runs()
        assert {r["algo"] for r in rows} == {"bc", "nail-f"}
        assert all(r["trajectories"] == 1000 and r["device"] == "cpu" for r in rows)
        curves = st.curves(r["key"] for r in rows)
        assert all(len(c) == 2 for c in curves.values())  # every 500 of 1000 trajectories
        assert st.check() == []
        rep = build_report(spec, st)
    assert rep.found == 2 and (rep.path.parent / "curves_eta=0.2.png").exists()
    # Greedy evaluation episodes of the best and the worst agent, animated.
    assert {p.name for p in rep.figures} >= {"episodes_eta=0.2_best.gif", "episodes_eta=0.2_worst.gif"}
    assert "never (0/1)" in rep.tables or "(1/1)" in rep.tables
    assert not (db_path.parent / "checkpoints" / rows[0]["key"]).exists()  # cleaned after success


def test_in_flight_display_reads_the_trainers_progress_rows(tiny_spec_path, tmp_path):
    from agents.checkpoint import write_progress
    from scoreboards.sweeps.runner import _in_flight

    run = load_spec(tiny_spec_path).runs()[0]
    assert _in_flight(tmp_path, [run]) == ""
    write_progress(str(tmp_path / run.key), {"trajectories": 250, "budget_trajectories": 1000,
                                             "greedy_full_exact": 0.5})
    assert _in_flight(tmp_path, [run]).endswith("25% acc=0.50")


def thread_recording_train(cfg):
    import torch

    CALLS.append(f"threads={torch.get_num_threads()}")
    return fake_train(cfg)


def test_threads_reach_the_trainer_and_are_checked(tiny_spec_path, db_path, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", ""))  # restored after
    before = torch.get_num_threads()
    spec = load_spec(tiny_spec_path, overrides=["seeds=[0]", 'algorithms=[{name="bc"}]', "env.grid.eta=[0.2]"])
    with pytest.raises(ValueError, match="`threads` must be >= 1"):
        run_sweep(spec, db_path, workers=0, threads=0, train_fn=fake_train, progress=False, log=lambda m: None)
    CALLS.clear()
    try:
        run_sweep(spec, db_path, workers=0, threads=1, train_fn=thread_recording_train, progress=False,
                  log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    assert CALLS == ["threads=1"]
