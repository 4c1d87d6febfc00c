"""Statistics over seeds: summaries with confidence intervals, IQM, probability of improvement,
sample-efficiency summaries. SciPy does the statistics; everything is seeded.

Trajectories to target, the expert trajectories a run needed to reach a target, has one
definition here (:func:`time_to_target`): the first evaluation at or above the target,
linearly interpolated from the one before (or not), and right-censored at the trajectories
spent when never reached. The report's tables and figures take it uninterpolated (the first
evaluation's trajectories: :func:`steps_to_target`, NaN when never reached); the horizon fits
(:mod:`scoreboards.analysis.horizon_fit`) interpolated and censored.

Conventions (following rliable, Agarwal et al. 2021):

- the 95% confidence interval of the mean over seeds is Student's t (:func:`t_ci`:
  mean +- t(0.975, n - 1) s / sqrt(n), ``scipy.stats.t``), which holds its level with few
  seeds: simulated coverage 0.949 / 0.951 / 0.952 at n = 3 / 5 / 10 on normal data, 0.935 /
  0.934 / 0.942 on a skewed Beta(2, 5) (``python -m benchmarks.interval_coverage``; checked in
  ``tests/scoreboards/analysis/test_stats.py``), where the percentile bootstrap covered 0.746 /
  0.849 / 0.899 of normal data (it is kept as
  :func:`bootstrap_ci`); a single seed has no interval (reported as NaN), and an interval from
  fewer than :data:`MIN_CI_SEEDS` seeds is shown flagged as too few seeds (:attr:`Summary.few_seeds`:
  with 2 seeds t(0.975, 1) = 12.7, so the honest interval spans most of the scale);
- an interval of a bounded metric (a proportion such as ``greedy_full_exact`` lies in [0, 1]; a
  prefix length, a loss or a count of trajectories is >= 0: :func:`metric_bounds`) is cut to that
  range: the mean lies in it, so cutting never loses coverage, and an accuracy is never shown with
  an interval such as [-0.21, 1.14];
- the interquartile mean is ``scipy.stats.trim_mean(x, 0.25)``;
- the probability of improvement of X over Y is P(X > Y) + 0.5 P(X = Y) over
  independent seeds, i.e. the Mann-Whitney U statistic divided by n_x n_y.

Missing values, one policy for every function here: a NaN or None seed value is a **failed
run** (no result, or a metric it did not report) and an evaluation point whose metric or
x is NaN or None is **no evaluation**. Every statistic leaves them out -- the mean, std, CI
and IQM of :func:`summarize`, :func:`bootstrap_ci`, :func:`iqm`, both sides of
:func:`probability_of_improvement` (it never counts a failed seed as a tie), and the curve
functions (:func:`time_to_target`, :func:`steps_to_target`, :func:`area_under_curve`,
:func:`curve_band`) -- and the seed statistics say how many they left out
(:attr:`Summary.failed`, :func:`count_failed`), which the report and board print beside the
number ("2 seeds, 1 failed"). A statistic over no value left is NaN. A leaderboard entry is
ranked over every training seed, so there a failed seed is refused instead
(:func:`scoreboards.leaderboard.entries.run_entry`). Infinite values are values, not missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

DEFAULT_SEED = 0
N_RESAMPLES = 10_000
#: Seeds below which an interval is shown flagged as too few seeds (:attr:`Summary.few_seeds`).
MIN_CI_SEEDS = 3


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))


def present(x: Sequence[float | None]) -> np.ndarray:
    """The seed values of `x` that are not missing (NaN or None: failed runs), as a float array (n,)."""
    return np.asarray([v for v in np.asarray(x, dtype=object).ravel() if not _missing(v)], dtype=float)


def count_failed(x: Sequence[float | None]) -> int:
    """How many seed values of `x` are missing (NaN or None: failed runs)."""
    return sum(_missing(v) for v in np.asarray(x, dtype=object).ravel())


@dataclass(frozen=True)
class Summary:
    """Summary of one metric over seeds."""

    n: int
    mean: float
    std: float
    """Sample standard deviation (ddof = 1; 0 for one seed)."""
    ci_low: float
    ci_high: float
    iqm: float
    failed: int = 0
    """Seeds left out as failed runs (NaN or None values); `n` counts the others."""

    @property
    def few_seeds(self) -> bool:
        """An interval from fewer than :data:`MIN_CI_SEEDS` seeds (2): shown flagged."""
        return 2 <= self.n < MIN_CI_SEEDS

    def ci_text(self, digits: int = 3) -> str:
        """``[0.870, 0.950]``, ``[-0.4, 1.9] (2 seeds: too few)``, or ``""`` without an interval."""
        if self.n < 2 or math.isnan(self.ci_low):
            return ""
        flag = f" ({self.n} seeds: too few)" if self.few_seeds else ""
        return f"[{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]{flag}"

    def fmt(self, digits: int = 3) -> str:
        """``0.912 [0.870, 0.950]`` (mean and 95% CI), flagged with 2 seeds (:meth:`ci_text`), or
        ``0.912`` for one seed, with ``(1 failed)`` after it where seeds failed (``- (2 failed)`` when
        all did)."""
        note = f" ({self.failed} failed)" if self.failed else ""
        if self.n == 0:
            return "-" + note
        ci = self.ci_text(digits)
        return (f"{self.mean:.{digits}f} {ci}" if ci else f"{self.mean:.{digits}f}") + note


#: Metrics that are proportions (a fraction of prompts), in [0, 1], by name.
PROPORTION_SUFFIXES = ("_exact", "_full", "_rate", "accuracy")
#: Metrics that are never negative (lengths, the validation log-loss, counts), by name; a training
#: loss is not among them (a policy-gradient loss can be negative).
NONNEGATIVE_SUFFIXES = ("_len", "val_loss", "_errors", "trajectories", "queries", "wall_time")


def metric_bounds(metric: str | None) -> tuple[float, float]:
    """The range a metric's values (and so its mean over seeds) lie in, from its name: [0, 1] for a
    proportion (``greedy_full_exact``, ``greedy_final_exact``, ``greedy_expert_mode_full``, ...),
    [0, inf) for a length, the validation loss or a count (``greedy_correct_prefix_len``, ``val_loss``,
    ``greedy_num_errors``), else
    (-inf, inf)."""
    name = metric or ""
    if name.endswith(PROPORTION_SUFFIXES):
        return 0.0, 1.0
    if name.endswith(NONNEGATIVE_SUFFIXES):
        return 0.0, math.inf
    return -math.inf, math.inf


def t_ci(x: Sequence[float], confidence: float = 0.95,
         bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float]:
    """Student-t CI of the mean over the seeds that did not fail: mean +- t((1 + confidence) / 2, n - 1)
    s / sqrt(n) (NaN, NaN for fewer than two values; the point itself when every value is equal), cut
    to ``bounds``, the range the metric lies in (:func:`metric_bounds`): the true mean lies in it, so
    the cut interval covers it whenever the whole one does."""
    a = present(x)
    if a.size < 2:
        return float("nan"), float("nan")
    half = float(stats.t.ppf((1 + confidence) / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    lo, hi = bounds
    return float(max(a.mean() - half, lo)), float(min(a.mean() + half, hi))


def bootstrap_ci(x: Sequence[float], confidence: float = 0.95, seed: int = DEFAULT_SEED,
                 n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean over the seeds that did not fail (NaN, NaN for fewer than two)."""
    a = present(x)
    if a.size < 2:
        return float("nan"), float("nan")
    if np.all(a == a[0]):  # a degenerate sample: every resample has the same mean
        return float(a[0]), float(a[0])
    res = stats.bootstrap((a,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm(x: Sequence[float]) -> float:
    """Interquartile mean of the seeds that did not fail: the mean of the middle 50% (``trim_mean(x, 0.25)``)."""
    a = present(x)
    return float(stats.trim_mean(a, 0.25)) if a.size else float("nan")


def summarize(x: Sequence[float], ci: bool = True, metric: str | None = None) -> Summary:
    """Mean, std, 95% Student-t CI (:func:`t_ci`, cut to `metric`'s range, :func:`metric_bounds`; NaN
    when ``ci`` is False) and IQM over the seeds that did not fail; the failed ones (NaN or None)
    counted in :attr:`Summary.failed`."""
    a, failed = present(x), count_failed(x)
    if a.size == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan, failed)
    lo, hi = t_ci(a, bounds=metric_bounds(metric)) if ci else (float("nan"), float("nan"))
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return Summary(int(a.size), float(a.mean()), std, lo, hi, iqm(a), failed)


def seed_summary(entry: dict[str, Any], metric: str) -> Summary:
    """A board entry's score over its seeds (its ``per_seed`` rows' `metric`), with the interval of
    :func:`summarize`; entries without ``per_seed`` fall back to their stored score and interval.
    Boards, the site and the CLI show this, so an entry stored with an older interval is shown
    with the current one."""
    rows = entry.get("per_seed") or []
    values = [r.get(metric) for r in rows]
    if rows:  # a missing or NaN value is a failed run: left out and counted
        return summarize(values, metric=metric)
    nan = float("nan")
    lo, hi = entry.get("ci_low"), entry.get("ci_high")
    n = len(entry.get("seeds") or [])
    return Summary(n, float(entry.get("score", nan)), float(entry.get("std") or nan),
                   nan if lo is None else float(lo), nan if hi is None else float(hi), nan)


def probability_of_improvement(x: Sequence[float], y: Sequence[float], higher_is_better: bool = True
                               ) -> float:
    """P(X > Y) + 0.5 P(X = Y) for independent draws of X (seeds of one algorithm) and Y, over the seeds
    of each that did not fail (a failed seed, NaN or None, was a tie: ``([0.9, nan], [0.5, 0.5])`` gave 0.5,
    now 1.0); NaN when either side has none."""
    a, b = present(x), present(y)
    if a.size == 0 or b.size == 0:
        return float("nan")
    if not higher_is_better:
        a, b = -a, -b
    diff = a[:, None] - b[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _xy(curve: Sequence[dict], metric: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(float(p[x]), float(p[metric])) for p in curve if not (_missing(p.get(metric)) or _missing(p.get(x)))]
    pts.sort()
    if not pts:
        return np.empty(0), np.empty(0)
    a = np.asarray(pts, dtype=float)
    return a[:, 0], a[:, 1]


@dataclass(frozen=True)
class Hit:
    """Trajectories to target of one run: ``t`` reached (``censored`` False) or ``t`` = the
    trajectories spent without reaching it (``censored`` True: the true value is > t)."""

    t: float
    censored: bool
    seed: int = 0


def time_to_target(curve: Sequence[dict[str, Any]], target: float, metric: str = "greedy_full_exact",
                   interpolate: bool = True, spent: float | None = None, x: str = "trajectories") -> Hit:
    """Trajectories (`x`) at which `metric` first reaches `target` on a learning curve.

    Args:
        curve: evaluation rows with `x` and `metric`.
        interpolate: interpolate linearly between the evaluation below the target and the
            first one at or above it (from (0, 0) when the first evaluation already reaches
            it); False: the first evaluation's trajectories (an upper bound).
        spent: trajectories the run spent (default: the last evaluation's); a censored
            run's value.
    """
    xs, ys = _xy(curve, metric, x)  # evaluations without a value are left out (the module's policy)
    pts = list(zip(xs.tolist(), ys.tolist(), strict=True))
    for i, (t, y) in enumerate(pts):
        if y >= target:
            if not interpolate:
                return Hit(t, False)
            t0, y0 = pts[i - 1] if i else (0.0, 0.0)
            if y0 >= target or y == y0:
                return Hit(t, False)
            return Hit(t0 + (t - t0) * (target - y0) / (y - y0), False)
    last = pts[-1][0] if pts else 0.0
    return Hit(float(spent if spent is not None else last), True)


def steps_to_target(curve: Sequence[dict], target: float, metric: str = "greedy_full_exact",
                    x: str = "trajectories") -> float:
    """:func:`time_to_target` uninterpolated, as a number: the first evaluation's `x` (expert
    trajectories) at which `metric` >= target; NaN if never."""
    hit = time_to_target(curve, target, metric, interpolate=False, x=x)
    return float("nan") if hit.censored else hit.t


def area_under_curve(curve: Sequence[dict], metric: str = "greedy_full_exact", x: str = "trajectories",
                     x_max: float | None = None) -> float:
    """Normalised area under the learning curve: the mean of `metric` over [0, x_max].

    Trapezoid rule over the evaluations (with the first value held back to x = 0 and
    the last held up to `x_max`, e.g. the budget, so runs stopped early compare
    fairly); 1.0 means perfect from the start.
    """
    xs, ys = _xy(curve, metric, x)
    if xs.size == 0:
        return float("nan")
    x_max = float(x_max if x_max is not None else xs[-1])
    keep = xs <= x_max
    xs, ys = xs[keep], ys[keep]
    if xs.size == 0 or x_max <= 0:
        return float("nan")
    xs = np.concatenate([[0.0], xs, [x_max]])
    ys = np.concatenate([[ys[0]], ys, [ys[-1]]])
    return float(np.trapezoid(ys, xs) / x_max)


def curve_band(curves: Sequence[Sequence[dict]], metric: str, x: str = "trajectories"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation of `metric` over seeds on the union of evaluation points.

    Each seed is linearly interpolated onto the common grid; a run stopped early
    holds its last value. Returns (x, mean, std).
    """
    series = [s for s in (_xy(c, metric, x) for c in curves) if s[0].size]
    if not series:
        return np.empty(0), np.empty(0), np.empty(0)
    grid = np.unique(np.concatenate([s[0] for s in series]))
    ys = np.stack([np.interp(grid, sx, sy) for sx, sy in series])
    std = ys.std(axis=0, ddof=1) if len(series) > 1 else np.zeros_like(grid)
    return grid, ys.mean(axis=0), std
