"""Reports from fake results: tables, probability of improvement, and every figure kind."""

from __future__ import annotations

from scoreboards.analysis.report import build_report
from scoreboards.analysis.stats import summarize
from scoreboards.store import ResultStore
from scoreboards.sweeps.runner import run_sweep
from scoreboards.sweeps.specs import load_spec
from tests.scoreboards.fakes import fake_train

GRID = ["env.kwargs={p=7}", "env.grid.m=[3, 4]", "env.grid.eta=[0.0, 0.2]",
        'algorithms=[{name="bc"}, {name="nail-f"}, {name="bc-clean"}, {name="nail-mixed", grid={beta=[0.0, 1.0]}}]']


def test_report_tables_and_figures(tiny_spec_path, db_path):
    spec = load_spec(tiny_spec_path, overrides=GRID)
    run_sweep(spec, db_path, workers=0, train_fn=fake_train, progress=False, log=lambda m: None)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st)
        again = build_report(spec, st, out_dir=db_path.parent / "again", figures=False)
    assert rep.found == rep.expected == 5 * 4 * 2
    assert rep.tables == again.tables  # reproducible
    md = rep.path.read_text()
    assert "### NoisyModAdd-v0 eta=0.2,m=3" in md and "Probability of improvement" in md
    assert "bc-clean (reference, clean expert)" in md
    # fake_train: nail-f's final accuracy at eta = 0 is 0.9 (+ 0.01 for seed 1).
    s = summarize([0.9, 0.91])
    assert f"| nail-f | 2 | {s.fmt()} |" in md
    assert s.fmt().endswith("(2 seeds: too few)")  # the report's 2-seed intervals are flagged
    assert "95% Student-t interval of the mean over seeds" in md
    names = {p.name for p in rep.figures}
    assert {"curves_eta=0.0,m=3.png", "final_vs_m.png", "final_vs_eta.png", "sweep_beta.png"} <= names
    assert all(p.stat().st_size > 1000 for p in rep.figures)
    assert not list(rep.path.parent.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_report_of_a_partial_sweep(tiny_spec_path, db_path):
    spec = load_spec(tiny_spec_path)
    part = load_spec(tiny_spec_path, overrides=["seeds=[0]"])
    run_sweep(part, db_path, workers=0, train_fn=fake_train, progress=False, log=lambda m: None)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st, figures=False)
    assert (rep.found, rep.expected) == (8, 16)
    assert "8 of 16 finished (run `neg bench run` to complete it)" in rep.markdown


def test_report_shows_the_noisy_mode_chain_column_of_real_runs(tiny_spec_path, db_path):
    """Runs of the real trainer on the biased law report greedy_expert_mode_full; the report's
    "noisy-mode chain" column is its mean over seeds (the stress case's measure)."""
    spec = load_spec(tiny_spec_path, overrides=[
        'env.kwargs={p=3, m=2, law="biased"}', "env.grid.eta=[0.6]", "seeds=[0]", "budget.trajectories=256",
        "eval.every=256", 'algorithms=[{name="bc-clean"}, {name="nail-f"}]'])
    run_sweep(spec, db_path, workers=0, progress=False, log=lambda m: None)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st, figures=False)
        rows = st.runs(status="done")
    assert "| noisy-mode chain |" in rep.markdown
    for r in rows:
        v = r["final_metrics"]["greedy_expert_mode_full"]
        assert 0.0 <= v <= 1.0
        name = "bc-clean (reference, clean expert)" if r["config"]["algo"] == "bc-clean" else "nail-f"
        line = next(ln for ln in rep.markdown.splitlines() if ln.startswith(f"| {name} |"))
        assert line.split(" | ")[6] == f"{v:.3g}", line


def test_lr_record_of_a_tuning_spec(tiny_spec_path, db_path):
    """Entries of one learner that differ only in lr: per lr the trajectories to target per seed (censored
    with the best accuracy), the best lr, and a mark when it lies at an edge of the grid."""
    from tests.scoreboards.fakes import lr_train

    entries = ", ".join(f'{{name="nail-f", label="nail-f(lr={lr})", train={{lr={lr}}}}}' for lr in ("3e-4", "1e-3", "3e-3"))
    edge = ", ".join(f'{{name="bc", label="bc(lr={lr})", train={{lr={lr}}}}}' for lr in ("1e-3", "3e-3"))
    spec = load_spec(tiny_spec_path, overrides=["env.grid.eta=[0.0]", "eval.stop_at=0.6", "report.target=0.6",
                                                f"algorithms=[{entries}, {edge}]"])
    run_sweep(spec, db_path, workers=0, train_fn=lr_train, progress=False, log=lambda m: None)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st, figures=False)
    md = rep.tables
    assert md.startswith("## Learning rates")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in md.splitlines() if line.startswith("| ")}
    # Columns: learner, env, lr 3e-4, lr 1e-3, lr 3e-3, best lr. nail-f's skill is 0.9 (+0.01 for seed 1) at
    # 1e-3 and 0.6 less per decade away: at 3e-4 (0.52 decades) it peaks at 0.59 / 0.60 (seed 0 censored).
    assert not rows["nail-f"][3].startswith(">") and ">" not in rows["nail-f"][3]
    assert rows["nail-f"][2].startswith(">1.0k (0.59)")
    assert rows["nail-f"][-1].strip(" |") == "0.001"
    assert rows["bc"][-1].strip(" |") == "0.001 (edge of the grid)"


def _nan_seed_train(cfg):
    """fake_train, but nail-f's seed 1 reports its final metric as NaN (a failed run)."""
    res = fake_train(cfg)
    if cfg.algo == "nail-f" and cfg.seed == 1:
        res.final_metrics["greedy_full_exact"] = float("nan")
    return res


def test_report_counts_a_failed_seed_as_failed_everywhere(tiny_spec_path, db_path):
    """Issue 24, case 6: the mean left a NaN seed out silently while P(improvement) counted it as a tie and
    trajectories-to-target counted its run; now the row says ``(1 failed)``, and both leave it out."""
    spec = load_spec(tiny_spec_path, overrides=['algorithms=[{name="bc"}, {name="nail-f"}]', "env.grid.eta=[0.2]"])
    run_sweep(spec, db_path, workers=0, train_fn=_nan_seed_train, progress=False, log=lambda m: None)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st, figures=False)
    line = next(ln for ln in rep.markdown.splitlines() if ln.startswith("| nail-f |"))
    assert f"| {summarize([0.7, float('nan')]).fmt()} |" in line and "(1 failed)" in line
    assert "(0/1)" in line  # trajectories to target over the one seed that did not fail (was 0/2)
    # bc's two seeds (0.3, 0.31) against nail-f's one (0.7): nail-f better every time, bc never.
    pi = {ln.split(" | ")[0]: ln for ln in rep.markdown.split("Probability of improvement")[1].splitlines()}
    assert pi["| nail-f"].split(" | ")[1] == "1.00" and pi["| bc"].split(" | ")[2] == "0.00 |"
