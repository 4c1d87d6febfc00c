"""Horizon scaling: trajectories to target, the censored (Tobit) fits against data of known growth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoreboards.analysis.horizon_fit import (
    bootstrap_fits,
    is_horizon_spec,
    level_fit,
    scaling,
    scaling_variable,
    theory_curve,
    theory_shapes,
    tobit_fit,
)
from scoreboards.analysis.stats import Hit, time_to_target


def curve(points):
    return [{"trajectories": t, "greedy_full_exact": y} for t, y in points]


def test_time_to_target_interpolates_between_evaluations():
    c = curve([(1000, 0.0), (2000, 0.5), (3000, 1.0)])
    assert time_to_target(c, 0.75) == Hit(2500.0, False)
    assert time_to_target(c, 0.75, interpolate=False) == Hit(3000.0, False)
    # Reached at the first evaluation: interpolated from (0, 0).
    assert time_to_target(curve([(1000, 1.0)]), 0.5).t == 500.0


def test_time_to_target_censors_a_run_that_never_reaches_it():
    c = curve([(1000, 0.1), (2000, 0.2)])
    assert time_to_target(c, 0.95) == Hit(2000.0, True)
    assert time_to_target(c, 0.95, spent=2500) == Hit(2500.0, True)


def synthetic(growth, ms, seeds=4, sigma=0.15, cap=math.inf, a=1000.0, model="exp", rng=0):
    """T = a * growth^m (exp) or a * m^growth (poly) with log-normal noise, censored at cap."""
    g = np.random.default_rng(rng)
    out = {}
    for m in ms:
        hs = []
        for s in range(seeds):
            t = a * (growth ** m if model == "exp" else m ** growth) * math.exp(g.normal(0, sigma))
            hs.append(Hit(min(t, cap), t > cap, s))
        out[float(m)] = hs
    return out


def flat(by_m):
    ms, hits = [], []
    for m, hs in by_m.items():
        ms += [m] * len(hs)
        hits += hs
    return ms, hits


def test_tobit_recovers_exponential_growth_and_prefers_the_exponential_model():
    by_m = synthetic(1.6, [2, 4, 6, 8, 10], seeds=5)
    s = scaling("bc", by_m, n_boot=100)
    assert s.fits["exp"].growth == pytest.approx(1.6, rel=0.05)
    lo, hi = s.ci["exp"]
    assert lo < 1.6 < hi
    assert s.better == "exp" and s.exp_wins > 0.9


def test_tobit_recovers_polynomial_growth_and_prefers_the_polynomial_model():
    by_m = synthetic(2.0, [2, 4, 8, 16, 32], seeds=5, model="poly")
    s = scaling("nail", by_m, n_boot=100)
    assert s.fits["poly"].growth == pytest.approx(2.0, abs=0.1)
    assert s.better == "poly" and s.exp_wins < 0.1


def test_censoring_is_handled_not_ignored():
    """Points above the cap: the Tobit slope stays near the truth; least squares on the capped
    values (censored points taken at the cap) underestimates it."""
    by_m = synthetic(1.6, [2, 4, 6, 8, 10, 12], seeds=6, cap=60_000)
    ms, hits = flat(by_m)
    assert sum(h.censored for h in hits) >= 6
    tob = tobit_fit(ms, hits, "exp")
    naive = math.exp(np.polyfit(ms, np.log([h.t for h in hits]), 1)[0])
    assert tob.growth == pytest.approx(1.6, rel=0.06)
    assert naive < 1.5 < tob.growth


def test_all_censored_has_no_fit_and_a_lone_uncensored_horizon_gives_a_bound():
    allc = {4.0: [Hit(1e5, True)], 8.0: [Hit(1e5, True)]}
    assert tobit_fit(*flat(allc)) is None
    one = {4.0: [Hit(1e4, False)], 8.0: [Hit(1e5, True)], 12.0: [Hit(1e5, True)]}
    f = tobit_fit(*flat(one))
    assert f.at_bound and f.b > 0  # only a lower bound on the growth


def test_bootstrap_is_seeded_and_median_reports_censoring():
    by_m = synthetic(1.4, [2, 4, 6], seeds=3, cap=3000)
    assert bootstrap_fits(by_m, 50, seed=1) == bootstrap_fits(by_m, 50, seed=1)
    s = scaling("x", {4.0: [Hit(10.0, False), Hit(50.0, True), Hit(60.0, True)]}, n_boot=0)
    assert s.median(4.0) == (50.0, True)
    s = scaling("x", {4.0: [Hit(10.0, False), Hit(40.0, False)]}, n_boot=0)
    assert s.median(4.0) == (20.0, False)


def test_theory_curve_is_one_over_the_clean_prefix_probability():
    q = 1 - 0.3 + 0.3 / 7
    assert theory_curve("absorbing", 0.3, 7, [1, 4]) == pytest.approx([1 / q, q ** -4])


def test_is_horizon_spec():
    class S:
        def __init__(self, stop_at, grid=None, scaling=None):
            self.env_grid = grid or {"m": [4, 8]}
            self.eval = {"stop_at": stop_at} if stop_at else {}
            self.report = {"scaling": scaling}

    assert is_horizon_spec(S(0.95))
    assert not is_horizon_spec(S(None))
    assert scaling_variable(S(0.9, {"period": [1, 2, 3]})) == "period"
    assert scaling_variable(S(0.9, {"m": [4], "eta": [0.2, 0.4]})) is None
    assert scaling_variable(S(0.9, {"m": [4], "eta": [0.2, 0.4]}, scaling="eta")) == "eta"
    assert scaling_variable(S(0.9, {"m": [2, 3], "period": [1, 2]}, scaling="period")) == "period"


def test_theory_shapes_are_the_combination_lock_costs():
    """Offline BC ~ q^-(L-1), NAIL-F ~ L; L = min(P, m) with per-step rules (P = m when None), m without."""
    q = 1 - 0.5 + 0.5 / 3
    assert theory_shapes("m", {"m": 5, "eta": 0.5, "law": "absorbing"}, 3, True) == pytest.approx((q, q**-4, 5))
    assert theory_shapes("period", {"m": 5, "period": 2, "eta": 0.5}, 3, True) == pytest.approx((q, q**-1, 2))
    assert theory_shapes("m", {"m": 4, "period": 1, "eta": 0.5}, 3, True) == pytest.approx((q, 1.0, 1))
    assert theory_shapes("m", {"m": 4, "eta": 0.5}, 3, False) == pytest.approx((q, q**-3, 4))  # no period: L = m
    q7 = 1 - 0.2 + 0.2 / 7
    assert theory_shapes("eta", {"m": 3, "eta": 0.2}, 7, False)[1] == pytest.approx(q7**-2)


def test_level_fit_scales_a_shape_to_censored_runs():
    shape = [1.5 ** m for m in (2, 3, 4, 5) for _ in range(3)]
    rng = np.random.default_rng(0)
    t = [800.0 * s * math.exp(rng.normal(0, 0.1)) for s in shape]
    hits = [Hit(min(x, 8000.0), x > 8000.0) for x in t]
    f = level_fit(shape, hits)
    assert math.exp(f.a) == pytest.approx(800.0, rel=0.1) and f.sigma < 0.3
    assert level_fit(shape, [Hit(1.0, True)] * len(shape)) is None
    # The right shape fits better than a wrong one.
    assert f.loglik > level_fit([float(m) for m in (2, 3, 4, 5) for _ in range(3)], hits).loglik



# The shipped `quick` spec (the main job on the per-step task) and the full `horizon` experiment and
# its shared-rule control at toy size through the real harness (real trainer, in this process, one
# torch thread, 30 bootstrap resamples): runs of 768 trajectories, a target some of them reach (at
# n = 3, m = 2 chance is 1/9).
TOY = ["seeds=[0, 1]", "env.grid.m=[2, 3]", "budget.trajectories=768", "eval.every=128", "eval.prompts=64",
       "eval.stop_at=0.3", "report.target=0.3", "report.horizon_boot=30"]


@pytest.mark.parametrize("name", ["quick", "horizon", "horizon-modadd"])
def test_horizon_spec_at_toy_size_reports_the_verdict_table(name, db_path, tmp_path, capsys):
    from scoreboards.analysis.report import gather
    from scoreboards.cli import main
    from scoreboards.store import ResultStore
    from scoreboards.sweeps.specs import load_spec

    db, sets = str(db_path), [a for o in TOY for a in ("--set", o)]
    assert main(["bench", "run", name, "--db", db, *sets, "--workers", "0", "--threads", "1",
                 "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["bench", "report", name, "--db", db, *sets, "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Horizon scaling")
    section = out.split("## Per horizon")[0]
    # The theory line reads q from the task's own n (issue 22: not modadd's default p = 7).
    q, n = (1 - 0.5 + 0.5 / 3, 3) if name != "horizon-modadd" else (1 - 0.4 + 0.4 / 3, 3)
    assert f"q = 1 - eta + eta/n = {q:.3f} (n = {n} states)" in section
    assert f"({1 / q:.2f}x per +1 m)" in section
    assert "| algorithm | T at m=2 | T at m=3 | exp growth (95% CI) | poly exponent (95% CI) |" in section
    assert (tmp_path / "rep" / "horizon.png").stat().st_size > 1000
    assert f"horizon figure: {tmp_path / 'rep' / 'horizon.png'}" in out
    # Each cell's (reached/runs) agrees with the stored curves, read here independently.
    spec = load_spec(name, overrides=TOY)
    with ResultStore(db) as st:
        results = gather(spec, st)
        curves = st.curves([r["key"] for _, r in results if r is not None])
    verdict = section.split("Per seed")[0]  # the verdict table, not the per-seed one below it
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in verdict.splitlines()
            if line.startswith(tuple(f"| {label} |" for label in spec.labels))}
    assert set(rows) == set(spec.labels) == ({"bc", "nail-f"} if name == "quick" else {"bc", "nail-f", "opd-f", "dagger"})
    assert "theory shape (dlogL offline - online)" in section
    for label, cells in rows.items():
        for col, m in ((1, 2), (2, 3)):
            runs = [row for run, row in results if run.label == label and run.env_kwargs["m"] == m]
            reached = sum(max(c["greedy_full_exact"] for c in curves[row["key"]]) >= 0.3 for row in runs)
            assert cells[col].endswith(f"({reached}/2)"), (label, m, cells[col])


def _drawn(groups, monkeypatch, tmp_path):
    """The figure plot_horizon draws (captured before it is saved)."""
    from scoreboards.analysis import plots
    from scoreboards.analysis.horizon_report import plot_horizon

    figs = []
    monkeypatch.setattr(plots, "save_atomic", lambda fig, path, **kw: figs.append(fig) or path)
    assert plot_horizon(groups, tmp_path / "h.png") is not None
    return figs[0]


def test_time_to_target_plot_says_when_nothing_reached_the_target(monkeypatch, tmp_path):
    """Issue 27: with every run censored it drew every algorithm's median as the same flat line at
    the cap; now no line sits at the cap and the panel says no entry reached the target."""
    from scoreboards.analysis.horizon_fit import HorizonGroup

    cap = 1000.0
    censored = {m: [Hit(cap, True, s) for s in range(3)] for m in (2.0, 4.0, 6.0)}
    rows = [scaling(name, censored, n_boot=0) for name in ("bc", "nail-f")]
    fig = _drawn([HorizonGroup("g", {"eta": 0.4}, rows, cap, 1.3)], monkeypatch, tmp_path)
    ax = fig.axes[0]
    flat = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1 and np.all(np.asarray(ln.get_ydata()) == cap)
            and ln.get_linestyle() == "-"]
    assert flat == []
    assert any("no entry reached the target" in t.get_text() for t in ax.texts)
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"bc (never reached the target)",
                                                                  "nail-f (never reached the target)"}
    # Where runs do reach it, the median line is drawn through the reached medians only.
    mixed = {2.0: [Hit(100.0, False, s) for s in range(3)], 4.0: [Hit(300.0, False, s) for s in range(3)],
             6.0: [Hit(cap, True, s) for s in range(3)]}
    fig = _drawn([HorizonGroup("g", {"eta": 0.4}, [scaling("bc", mixed, n_boot=0)], cap, 1.3)], monkeypatch,
                 tmp_path)
    ax = fig.axes[0]
    assert not any("no entry reached" in t.get_text() for t in ax.texts)
    medians = [ln for ln in ax.get_lines() if ln.get_label() == "bc (median T)"]
    assert len(medians) == 1 and list(medians[0].get_xdata()) == [2.0, 4.0]
    # The fitted law is its own legend entry (the median line was labelled with the fit's rate).
    fits = [ln.get_label() for ln in ax.get_lines() if " fit: " in str(ln.get_label())]
    assert fits and all(ln.startswith("bc ") for ln in fits), fits
