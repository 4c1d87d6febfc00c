"""The shipped `corruption` spec end to end at toy size: the real trainer, the harness, the report."""

from __future__ import annotations

from scoreboards.analysis.report import build_report
from scoreboards.store import ResultStore
from scoreboards.sweeps.runner import run_sweep
from scoreboards.sweeps.specs import load_spec

TOY = ["budget.trajectories=64", "seeds=[0]", "env.grid.eta=[0.3, 0.8]", "env.grid.kappa=[1.0]",
       "eval.every=32", "eval.prompts=16", 'train.preset="tiny"']


def test_corruption_spec_runs_and_reports_the_boundary(db_path):
    spec = load_spec("corruption", overrides=TOY)
    assert spec.env_kwargs["law"] == "corrupted" and spec.env_kwargs["access"] == "sample"
    assert spec.labels == ["nail-f", "nail-mode(k=3)", "nail-mode(k=9)", "bc", "opd-f"]
    s = run_sweep(spec, db_path, workers=0, progress=False, log=lambda m: None)  # the real trainer
    assert (s.done, s.failed) == (10, 0)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st)
        rows = st.runs(status="done")
    # nail-mode(k) queries the sample-only expert k times per visited prefix (m = 3 per trajectory).
    q = {r["config"]["algo_params"].get("k", 1): r["queries"] for r in rows if r["config"]["algo"] == "nail-mode"}
    assert q[9] == 3 * q[3] > 0
    assert rep.found == rep.expected == 10
    names = {p.name for p in rep.figures}
    assert {"final_vs_eta.png", "ttt_vs_eta.png"} <= names
    assert "mode boundary 1/(1+kappa) = 0.5" in rep.markdown
    assert "![ttt_vs_eta](ttt_vs_eta.png)" in rep.markdown
