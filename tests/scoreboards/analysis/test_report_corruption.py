"""The corruption report: the mode-condition boundary on eta sweeps, and trajectories to the target vs eta."""

from __future__ import annotations

import numpy as np
import pytest

from noisy_expert_gym.noise import noisy_probs
from noisy_expert_gym.theory_corruption import mode_boundary, prob_mode_condition
from scoreboards.analysis import plots
from scoreboards.analysis.report import build_report, theory_lines
from scoreboards.store import ResultStore
from scoreboards.sweeps.runner import run_sweep
from scoreboards.sweeps.specs import load_spec
from tests.scoreboards.fakes import fake_train

P = 7
CORRUPTED = ["env.kwargs={p=7, m=3, law=\"corrupted\"}", "env.grid={eta=[0.2, 0.6], kappa=[0.5, 1.0]}",
             'algorithms=[{name="bc"}, {name="nail-f"}]']


def _clean_is_strict_mode(eta: float, kappa: float) -> bool:
    """From the law's definition (noise.noisy_probs) on a planted state: clean token 3, hidden wrong token 5."""
    answer_mask = np.ones(P, dtype=bool)
    row = noisy_probs("corrupted", eta, np.array([3]), np.array([False]), np.array([0]), answer_mask,
                      kappa, np.array([5], dtype=np.int64))[0]
    return bool(row[3] > np.delete(row, 3).max())


def _boundary_by_bisection(kappa: float) -> float:
    """The smallest eta at which the clean token stops being the strict mode (independent of theory_corruption)."""
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _clean_is_strict_mode(mid, kappa) else (lo, mid)
    return hi


@pytest.mark.parametrize("kappa", [0.5, 1.0])
def test_boundary_from_the_laws_definition(kappa):
    b = _boundary_by_bisection(kappa)
    assert b == pytest.approx(1 / (1 + kappa), abs=1e-9)
    assert mode_boundary(kappa) == pytest.approx(b, abs=1e-9)
    assert prob_mode_condition("corrupted", b - 1e-6, kappa, P) == 1.0
    assert prob_mode_condition("corrupted", b + 1e-6, kappa, P) == 0.0


def test_theory_lines_per_kappa_panel(tiny_spec_path):
    spec = load_spec(tiny_spec_path, overrides=CORRUPTED)
    results = [(run, None) for run in spec.runs()]
    lines = theory_lines(results, "eta")
    assert set(lines) == {"kappa=0.5", "kappa=1.0"}
    for panel, ls in lines.items():
        kappa = float(panel.split("=")[1])
        (x, text), = ls
        assert x == pytest.approx(_boundary_by_bisection(kappa), abs=1e-9)
        assert f"{x:.3g}" in text
    assert theory_lines(results, "kappa") == {}  # only eta sweeps get the boundary
    absorbing = load_spec(tiny_spec_path)  # law = "absorbing": no corruption, no boundary
    assert theory_lines([(r, None) for r in absorbing.runs()], "eta") == {}


def test_report_draws_boundary_and_trajectories_to_target(tiny_spec_path, db_path, monkeypatch):
    spec = load_spec(tiny_spec_path, overrides=CORRUPTED + ["report.target=0.5"])
    run_sweep(spec, db_path, workers=0, train_fn=fake_train, progress=False, log=lambda m: None)
    calls = {}
    real = plots.final_vs_x

    def spy(points, path, *args, **kwargs):
        calls[path.name] = (points, kwargs)
        return real(points, path, *args, **kwargs)

    monkeypatch.setattr(plots, "final_vs_x", spy)
    with ResultStore(db_path) as st:
        rep = build_report(spec, st)
    names = {p.name for p in rep.figures}
    assert {"final_vs_eta.png", "ttt_vs_eta.png", "final_vs_kappa.png", "ttt_vs_kappa.png"} <= names
    for name in ("final_vs_eta.png", "ttt_vs_eta.png"):
        vl = calls[name][1]["vlines"]
        assert [x for x, _ in vl["kappa=1.0"]] == pytest.approx([0.5])
        assert [x for x, _ in vl["kappa=0.5"]] == pytest.approx([2 / 3])
    assert not calls["final_vs_kappa.png"][1]["vlines"]
    # fake_train: nail-f's accuracy climbs linearly to 0.9 - eta (+0.01 per seed) over 4 evaluations of
    # 250 trajectories: at eta 0.2 it passes 0.5 at the 3rd (750); bc (0.6 - eta) never does -> the budget.
    ttt = calls["ttt_vs_eta.png"][0]["kappa=1.0"]
    assert {x: m for x, m, _ in ttt["nail-f"]} == {0.2: 750.0, 0.6: 1000.0}
    assert {x: m for x, m, _ in ttt["bc"]} == {0.2: 1000.0, 0.6: 1000.0}
    assert calls["ttt_vs_eta.png"][1]["hline"][0] == spec.budget_trajectories
    assert "mode condition holds iff eta < 1/(1+kappa)" in rep.markdown
    assert "kappa=0.5: mode boundary 1/(1+kappa) = 0.667" in rep.markdown
