"""One missing-value policy for every statistic (issue 24, case 6).

A NaN (or None) seed is a failed run and a NaN evaluation point is no evaluation: every public function of
:mod:`scoreboards.analysis.stats` leaves them out, the seed statistics count them (``summarize([0.9, nan])``
had mean 0.9 while ``probability_of_improvement([0.9, nan], [0.5, 0.5])`` counted the NaN as a tie: 0.5),
and a board refuses an entry with a failed seed. The table below must name every public function.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import astuple
from types import SimpleNamespace

import numpy as np
import pytest

from scoreboards.analysis import stats

NAN = float("nan")
SEEDS, Y = [0.9, 0.7, 0.8, 0.75], [0.5, 0.8, 0.6]
CURVE = [{"trajectories": 100, "greedy_full_exact": 0.2}, {"trajectories": 200, "greedy_full_exact": 0.6},
         {"trajectories": 300, "greedy_full_exact": 0.9}]
HOLE = [{"trajectories": 150, "greedy_full_exact": NAN}, {"trajectories": NAN, "greedy_full_exact": 0.1},
        {"trajectories": 250, "greedy_full_exact": None}]


def _with_failed(x: list[float], at: int = 1, value: float | None = NAN) -> list[float | None]:
    return [*x[:at], value, *x[at:]]


#: Every public function: (call on clean data, call on the same data with failed seeds / missing points).
CASES = {
    "present": (lambda: stats.present(SEEDS), lambda: stats.present(_with_failed(SEEDS, 0, None) + [NAN])),
    "count_failed": (lambda: 2, lambda: stats.count_failed(_with_failed(SEEDS, 0, None) + [NAN])),
    "bootstrap_ci": (lambda: stats.bootstrap_ci(SEEDS), lambda: stats.bootstrap_ci(_with_failed(SEEDS))),
    "t_ci": (lambda: stats.t_ci(SEEDS), lambda: stats.t_ci(_with_failed(SEEDS, 2, None))),
    "seed_summary": (
        lambda: astuple(stats.seed_summary({"per_seed": [{"m": v} for v in SEEDS]}, "m"))[:6],
        lambda: astuple(stats.seed_summary({"per_seed": [{"m": v} for v in _with_failed(SEEDS)] + [{}]}, "m"))[:6]),
    "iqm": (lambda: stats.iqm(SEEDS), lambda: stats.iqm(_with_failed(SEEDS, 3, None))),
    "summarize": (lambda: astuple(stats.summarize(SEEDS))[:6], lambda: astuple(stats.summarize(_with_failed(SEEDS)))[:6]),
    "probability_of_improvement": (
        lambda: stats.probability_of_improvement(SEEDS, Y),
        lambda: stats.probability_of_improvement(_with_failed(SEEDS), _with_failed(Y, 0, None))),
    "time_to_target": (lambda: stats.time_to_target(CURVE, 0.5), lambda: stats.time_to_target(CURVE + HOLE, 0.5)),
    "steps_to_target": (lambda: stats.steps_to_target(CURVE, 0.5),
                        lambda: stats.steps_to_target(HOLE[:1] + CURVE + HOLE[1:], 0.5)),
    "area_under_curve": (lambda: stats.area_under_curve(CURVE, x_max=400),
                         lambda: stats.area_under_curve(CURVE + HOLE, x_max=400)),
    # Takes a metric's name, no seed values: nothing to leave out.
    "metric_bounds": (lambda: (0.0, 1.0), lambda: stats.metric_bounds("greedy_full_exact")),
    "curve_band": (lambda: stats.curve_band([CURVE, CURVE[1:]], "greedy_full_exact"),
                   lambda: stats.curve_band([CURVE + HOLE, HOLE + CURVE[1:]], "greedy_full_exact")),
}


def _public_functions() -> set[str]:
    return {n for n, f in inspect.getmembers(stats, inspect.isfunction)
            if not n.startswith("_") and f.__module__ == stats.__name__}


def test_the_table_names_every_public_statistic():
    assert set(CASES) == _public_functions()


def _same(a, b) -> bool:
    if isinstance(a, tuple | list) or isinstance(a, np.ndarray) and a.dtype == object:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_failed_seeds_and_missing_points_are_left_out(name):
    clean, missing = CASES[name]
    a, b = clean(), missing()
    if isinstance(a, stats.Hit):
        a, b = (a.t, a.censored), (b.t, b.censored)
    assert _same(a, b), (name, a, b)


def test_the_issues_two_statistics_agree():
    s = stats.summarize([0.9, NAN])
    assert (s.mean, s.n, s.failed) == (0.9, 1, 1) and s.fmt() == "0.900 (1 failed)"
    assert stats.probability_of_improvement([0.9, NAN], [0.5, 0.5]) == 1.0
    assert math.isnan(stats.probability_of_improvement([NAN], [0.5]))
    assert stats.summarize([NAN, None]).fmt() == "- (2 failed)"


def test_a_board_refuses_an_entry_with_a_failed_seed(monkeypatch, tmp_path):
    """A board ranks the mean over every training seed: a NaN seed is refused, never averaged away."""
    from scoreboards.leaderboard import entries, submission
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.store import ResultStore
    from tests.scoreboards.leaderboard.test_site import BOARD

    src = tmp_path / "b.toml"
    src.write_text(BOARD)
    board = load_board(src)
    scores = iter([0.9, NAN])

    def fake_run(board, target, seed, **kw):
        return SimpleNamespace(metrics={board.metric: next(scores)}, trajectories=1, queries=1, wall_time=0.0,
                               curve=[], sandbox=None, seed=seed)

    monkeypatch.setattr(submission, "run_submission", fake_run)
    store = ResultStore(tmp_path / "r.sqlite")
    with pytest.raises(submission.SubmissionRejected, match=r"seed 1: .* is nan \(a failed run\)"):
        entries.run_entry(board, "builtin:bc", store, log=lambda s: None)
