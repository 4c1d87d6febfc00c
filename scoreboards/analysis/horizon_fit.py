"""Horizon scaling: expert trajectories to a target accuracy as a function of the horizon m.

The paper's central claim (Block et al. 2026) is that offline learning from noisy
expert trajectories needs a number of samples exponential in the horizon H, while
NAIL needs polynomially many. A spec that sweeps the horizon ``m`` with early
stopping (``[eval] stop_at``) measures it directly: each run trains until greedy
full-chain exact match on held-out prompts reaches the target, or until the
budget cap, and this module fits those runs:

- **trajectories to target** per run
  (:func:`~scoreboards.analysis.stats.time_to_target`): the expert trajectories at
  which the learning curve first reaches the target, linearly interpolated between
  the two evaluations around the crossing (the evaluation grid is coarse at small m);
  a run that never reaches it is **right-censored** at the trajectories it spent
  (T > cap);
- two **censored regressions** of log T per algorithm (:func:`tobit_fit`, a Tobit
  model: log T = a + b x + N(0, s^2), censored points contribute the probability
  of exceeding their cap): exponential growth (x = m, so T grows by exp(b) per
  unit of horizon) and polynomial growth (x = log m, T ~ m^b). Both have three
  parameters, so the one with the larger likelihood fits better;
- **bootstrap CIs over seeds** (:func:`bootstrap_fits`): seeds are resampled with
  replacement within each horizon (a stratified bootstrap), both models refitted;
- the theory's predicted shapes (the combination lock of docs/design.md §3.4,
  :func:`theory_shapes`): with L positions that each have their own rule and
  q = 1 - eta + eta/n the probability that the noisy expert writes the clean token on a
  clean prefix (n = the task's states), offline BC's cost grows like q^-(L-1) (its last
  rule is taught only by rollouts whose first L - 1 tokens are clean) and NAIL-F's like L
  (it learns the rules front to back on its own clean prefixes). Each shape is scaled to
  each algorithm's runs by a censored fit of its level alone (:func:`level_fit`), which
  also says which shape fits an algorithm better.

The swept variable is ``m`` by default; a spec may sweep the period ``period`` (L = P at
fixed m) or the noise ``eta`` (q changes, L fixed) instead (``[report] scaling``,
:func:`scaling_variable`). :func:`analyse` does all of it for a spec's results, per group of runs;
:mod:`scoreboards.analysis.horizon_report` writes the verdict tables and the figure.
``neg bench horizon SPEC --png docs/x.png`` prints the tables and writes the figure;
``neg bench report SPEC`` adds the same section to the spec's report when the spec
sweeps ``m`` with ``stop_at``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, special

from scoreboards.analysis.stats import Hit, time_to_target

#: Bounds on the fitted slope: exponential (log T per unit m) and polynomial (the exponent).
#: A fit that ends on a bound is reported as a bound (censoring leaves the slope open).
SLOPE_BOUNDS = {"exp": (-3.0, 3.0), "poly": (-30.0, 30.0)}
#: Floor on the residual scale of log T (one seed per horizon would otherwise fit exactly
#: and the likelihood would diverge).
MIN_SIGMA = 0.05
N_BOOT = 500
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


# ----- the censored regression -----------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    """A Tobit fit of log T = a + b x + N(0, s^2), x = m (``exp``) or log m (``poly``)."""

    model: str
    a: float
    b: float
    sigma: float
    loglik: float
    n: int
    censored: int
    at_bound: bool = False
    """The slope ended on its bound: censoring leaves it open (reported as a bound)."""

    def predict(self, m: np.ndarray | float) -> np.ndarray:
        x = np.asarray(m, dtype=float)
        return np.exp(self.a + self.b * (x if self.model == "exp" else np.log(x)))

    @property
    def growth(self) -> float:
        """exp: the factor on T per unit of m (e^b); poly: the exponent b."""
        return math.exp(self.b) if self.model == "exp" else self.b


def _xs(ms: np.ndarray, model: str) -> np.ndarray:
    return ms if model == "exp" else np.log(ms)


def tobit_fit(ms: Sequence[float], hits: Sequence[Hit], model: str = "exp", start: Fit | None = None,
              check_bounds: bool = True) -> Fit | None:
    """Maximum-likelihood censored regression of log T on m (``exp``) or log m (``poly``).

    Uncensored points contribute the normal density of their residual, censored ones the
    probability that log T exceeds their cap. Returns None with fewer than two distinct
    horizons or without a single uncensored point (nothing pins the level).

    Args:
        start: start from this fit's parameters only (the bootstrap's resamples start from
            the full data's fit); default: least squares and a flat line, the better result.
        check_bounds: test whether the slope is left open by censoring (:attr:`Fit.at_bound`).
    """
    if model not in SLOPE_BOUNDS:
        raise ValueError(f"`model` must be 'exp' or 'poly', got {model!r}")
    m = np.asarray(ms, dtype=float)
    y = np.log(np.asarray([h.t for h in hits], dtype=float))
    c = np.asarray([h.censored for h in hits], dtype=bool)
    if len(np.unique(m)) < 2 or c.all():
        return None
    x = _xs(m, model)
    lo, hi = SLOPE_BOUNDS[model]

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log-likelihood and its gradient in (a, b, log s)."""
        a, b, log_s = theta
        s = math.exp(log_s)
        z = (y - a - b * x) / s
        logpdf = -0.5 * z * z - _LOG_SQRT_2PI
        logsf = special.log_ndtr(-z)  # scipy.stats.norm is ~500x slower per call
        ll = np.where(c, logsf, logpdf - log_s)
        # d ll / d mu: z / s (observed), lambda(z) / s (censored; lambda = pdf / sf, the inverse
        # Mills ratio); d ll / d log s: z^2 - 1 (observed), lambda(z) z (censored).
        lam = np.exp(logpdf - logsf)
        d_mu = np.where(c, lam, z) / s
        d_ls = np.where(c, lam * z, z * z - 1.0)
        grad = np.asarray([d_mu.sum(), (d_mu * x).sum(), d_ls.sum()])
        return -float(ll.sum()), -grad

    # Start from least squares on every point (censored ones at their cap).
    b0, a0 = np.polyfit(x, y, 1)
    s0 = max(float(np.std(y - a0 - b0 * x)), 0.3)
    best = None
    starts = ([[start.a, start.b, math.log(start.sigma)]] if start is not None else
              [[a0, float(np.clip(b0, lo, hi)), math.log(s0)], [float(y[~c].mean()), 0.0, math.log(s0)]])
    for theta0 in starts:
        # TNC, not L-BFGS-B: the latter calls BLAS, whose thread pool spins on a busy machine.
        res = optimize.minimize(nll, np.asarray(theta0), jac=True, method="TNC",
                                bounds=[(None, None), (lo, hi), (math.log(MIN_SIGMA), math.log(50.0))])
        if best is None or res.fun < best.fun:
            best = res
    a, b, log_s = best.x
    # Censored points far above their cap add ~0 to the likelihood whatever the slope: when the
    # profile likelihood at a slope bound is as high as at the optimum, the data leave the slope
    # open on that side (e.g. one horizon reached, the larger ones all censored).
    at_bound = False
    for edge in (lo, hi) if check_bounds else ():
        prof = optimize.minimize(_fixed, np.asarray([a, log_s]), args=(nll, edge), jac=True,
                                 method="TNC", bounds=[(None, None), (math.log(MIN_SIGMA), math.log(50.0))])
        if prof.fun <= best.fun + 0.05:
            at_bound, b = True, edge
    return Fit(model, float(a), float(b), math.exp(log_s), -float(best.fun), len(y), int(c.sum()),
               at_bound)


def _fixed(theta: np.ndarray, nll: Any, b: float) -> tuple[float, np.ndarray]:
    """`nll` with the slope held at `b`: value and gradient in (a, log s)."""
    f, g = nll(np.asarray([theta[0], b, theta[1]]))
    return f, g[[0, 2]]


@dataclass
class Scaling:
    """One algorithm's horizon scaling within one group: the runs, both fits and their CIs."""

    label: str
    by_m: dict[float, list[Hit]]
    fits: dict[str, Fit | None]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    """95% bootstrap CI of the growth (exp: factor per unit m; poly: exponent)."""
    exp_wins: float = float("nan")
    """Fraction of bootstrap resamples in which the exponential model fits better."""

    @property
    def better(self) -> str | None:
        e, p = self.fits.get("exp"), self.fits.get("poly")
        if e is None or p is None:
            return None
        return "exp" if e.loglik >= p.loglik else "poly"

    @property
    def dloglik(self) -> float:
        """log-likelihood of the exponential fit minus the polynomial one's."""
        e, p = self.fits.get("exp"), self.fits.get("poly")
        return e.loglik - p.loglik if e is not None and p is not None else float("nan")

    def median(self, m: float) -> tuple[float, bool]:
        """Median T at horizon m and whether it is a lower bound (half the runs or more censored)."""
        hs = sorted(self.by_m.get(m, []), key=lambda h: (h.t if not h.censored else math.inf))
        if not hs:
            return float("nan"), False
        mid = hs[(len(hs) - 1) // 2] if len(hs) % 2 else None
        if mid is not None:
            return mid.t, mid.censored
        lo, hi = hs[len(hs) // 2 - 1], hs[len(hs) // 2]
        if hi.censored:
            return (hi.t if lo.censored else max(lo.t, hi.t)), True
        return math.sqrt(lo.t * hi.t), False  # geometric mean: T is fitted on a log scale


def _flatten(by_m: dict[float, list[Hit]]) -> tuple[list[float], list[Hit]]:
    ms, hits = [], []
    for m, hs in sorted(by_m.items()):
        ms += [m] * len(hs)
        hits += hs
    return ms, hits


def bootstrap_fits(by_m: dict[float, list[Hit]], n_boot: int = N_BOOT, seed: int = 0
                   ) -> tuple[dict[str, tuple[float, float]], float]:
    """95% percentile CIs of both models' growth and the fraction of resamples where ``exp``
    fits better, resampling the runs (seeds) with replacement within each horizon."""
    rng = np.random.default_rng(seed)
    growth: dict[str, list[float]] = {"exp": [], "poly": []}
    wins, valid = 0, 0
    items = sorted(by_m.items())
    ms0, hits0 = _flatten(by_m)
    full = {k: tobit_fit(ms0, hits0, k, check_bounds=False) for k in ("exp", "poly")}
    if full["exp"] is None or full["poly"] is None:
        return {k: (math.nan, math.nan) for k in full}, math.nan
    for _ in range(n_boot):
        res = {m: [hs[i] for i in rng.integers(0, len(hs), len(hs))] for m, hs in items}
        ms, hits = _flatten(res)
        fe = tobit_fit(ms, hits, "exp", start=full["exp"], check_bounds=False)
        fp = tobit_fit(ms, hits, "poly", start=full["poly"], check_bounds=False)
        if fe is None or fp is None:
            continue
        valid += 1
        growth["exp"].append(fe.growth)
        growth["poly"].append(fp.growth)
        wins += fe.loglik >= fp.loglik
    ci = {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) if v else (math.nan, math.nan)
          for k, v in growth.items()}
    return ci, (wins / valid if valid else math.nan)


def scaling(label: str, by_m: dict[float, list[Hit]], n_boot: int = N_BOOT, seed: int = 0) -> Scaling:
    """Both fits of one algorithm's runs, with bootstrap CIs over seeds."""
    ms, hits = _flatten(by_m)
    fits = {k: tobit_fit(ms, hits, k) for k in ("exp", "poly")}
    out = Scaling(label, dict(sorted(by_m.items())), fits)
    if fits["exp"] is not None and n_boot:
        out.ci, out.exp_wins = bootstrap_fits(by_m, n_boot, seed)
    return out


def theory_curve(law: str, eta: float, p: int, ms: Sequence[float]) -> np.ndarray:
    """1 / P(a noisy-expert rollout's first m tokens are all clean), per m: 1 / q^m."""
    from noisy_expert_gym.theory import step_clean_prob

    q = step_clean_prob(law, eta, p)
    return np.asarray([q ** -float(m) for m in ms])


@dataclass(frozen=True)
class LevelFit:
    """A theory shape scaled to one algorithm's runs: log T = a + log shape(x) + N(0, s^2), censored."""

    a: float
    sigma: float
    loglik: float

    def predict(self, shape: np.ndarray | float) -> np.ndarray:
        return np.exp(self.a) * np.asarray(shape, dtype=float)


def level_fit(shape: Sequence[float], hits: Sequence[Hit]) -> LevelFit | None:
    """The Tobit fit of the level alone (slope fixed at 1 on log shape); None without an uncensored point."""
    y = np.log(np.asarray([h.t for h in hits], dtype=float)) - np.log(np.asarray(shape, dtype=float))
    c = np.asarray([h.censored for h in hits], dtype=bool)
    if not len(y) or c.all():
        return None

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, log_s = theta
        s = math.exp(log_s)
        z = (y - a) / s
        logpdf = -0.5 * z * z - _LOG_SQRT_2PI
        logsf = special.log_ndtr(-z)
        ll = np.where(c, logsf, logpdf - log_s)
        lam = np.exp(logpdf - logsf)
        d_mu = np.where(c, lam, z) / s
        d_ls = np.where(c, lam * z, z * z - 1.0)
        return -float(ll.sum()), -np.asarray([d_mu.sum(), d_ls.sum()])

    s0 = max(float(np.std(y[~c])) if (~c).sum() > 1 else 0.3, 0.3)
    res = optimize.minimize(nll, np.asarray([float(y[~c].mean()), math.log(s0)]), jac=True, method="TNC",
                            bounds=[(None, None), (math.log(MIN_SIGMA), math.log(50.0))])
    return LevelFit(float(res.x[0]), math.exp(float(res.x[1])), -float(res.fun))


#: Env kwargs a scaling analysis may sweep: the horizon, the per-step rules' period, the noise level.
SCALING_VARIABLES: tuple[str, ...] = ("m", "period", "eta")


def scaling_variable(spec: Any) -> str | None:
    """The swept env kwarg a spec's scaling analysis runs over, or None (not a scaling spec).

    ``[report] scaling`` when the spec sets it, else ``m`` or ``period``, whichever the env grid
    sweeps (at least two values); only for specs that stop runs at a target (``[eval] stop_at``).
    """
    if spec.eval.get("stop_at") is None:
        return None
    chosen = (getattr(spec, "report", None) or {}).get("scaling")
    for var in ([chosen] if chosen else ["m", "period"]):
        if len(spec.env_grid.get(var, [])) >= 2:
            return var
    return None


def is_horizon_spec(spec: Any) -> bool:
    """A spec that sweeps the horizon ``m`` (or the period, or eta: :func:`scaling_variable`) with at
    least 2 values and stops runs at a target."""
    return scaling_variable(spec) is not None


def theory_shapes(variable: str, kwargs: dict[str, Any], n: int, per_step: bool) -> tuple[float, float, float]:
    """(q, offline shape q^-(L-1), online shape L) at one env config (docs/design.md §3.4).

    L is the number of positions with their own rule: P (the period, m when it is None) capped at m
    on a per-step task; m on a task without a period (modadd, the automata: the no-sharing rate,
    which a shared rule need not pay). q = the noisy expert's clean-token probability on a clean
    prefix, with n the task's states (:func:`noisy_expert_gym.theory.step_clean_prob`).
    """
    from noisy_expert_gym.theory import step_clean_prob

    m = int(kwargs["m"])
    rules = min(int(kwargs.get("period") or m), m) if per_step else m
    q = step_clean_prob(kwargs.get("law", "absorbing"), float(kwargs.get("eta", 0.1)), n)
    return q, q ** -(rules - 1), float(rules)


def is_offline(label: str) -> bool:
    """Which theory shape an algorithm is compared with: offline (BC's, labels starting with `bc`) or online."""
    return label.startswith("bc")


# ----- from a spec's results ------------------------------------------------------------------------
def collect(spec: Any, results: list[tuple[Any, dict | None]], curves: dict[str, list[dict]],
            target: float | None = None, interpolate: bool = True, variable: str = "m"
            ) -> dict[str, dict[str, dict[float, list[Hit]]]]:
    """{group (the env kwargs varied besides `variable`): {label: {x: [Hit per seed]}}} of finished runs."""
    target = target if target is not None else spec.eval.get("stop_at", spec.report["target"])
    out: dict[str, dict[str, dict[float, list[Hit]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run, row in results:
        if row is None:
            continue
        m = run.env_kwargs[variable]
        group = ",".join(f"{k}={v}" for k, v in run.env_varied.items() if k != variable) or "default"
        hit = time_to_target(curves.get(row["key"], []), target, interpolate=interpolate,
                             spent=row.get("trajectories"))
        out[group][run.label][float(m)].append(Hit(hit.t, hit.censored, run.seed))
    return out


@dataclass
class HorizonGroup:
    """One group's (e.g. one noise law's) analysis over the swept variable."""

    group: str
    env_kwargs: dict[str, Any]
    rows: list[Scaling]
    cap: float
    theory_growth: float
    """1/q: the offline theory's factor per unit of m or P (NaN on an eta sweep or without a closed form)."""
    variable: str = "m"
    """The swept env kwarg: ``m``, ``period`` or ``eta``."""
    n: int | None = None
    """The task's states (the noise's uniform part), from which q is computed."""
    shapes: dict[float, tuple[float, float, float]] = field(default_factory=dict)
    """Per swept value: (q, offline shape q^-(L-1), online shape L) (:func:`theory_shapes`)."""
    theory: dict[str, dict[str, LevelFit | None]] = field(default_factory=dict)
    """Per algorithm label: both shapes scaled to its runs, ``offline`` and ``online`` (:func:`level_fit`)."""
    per_step: bool = False
    """The task has per-step rules (a ``period``); else L = m is the no-sharing rate."""

    def shape(self, label: str, x: float) -> float:
        """The theory shape an algorithm is compared with (:func:`is_offline`) at x."""
        return self.shapes[x][1 if is_offline(label) else 2]

    def scaled(self, label: str) -> LevelFit | None:
        return self.theory.get(label, {}).get("offline" if is_offline(label) else "online")


def _problem_facts(spec: Any, kwargs: dict[str, Any]) -> tuple[int | None, bool]:
    """(the task's states n, whether it has per-step rules) of one env config; (None, False) if unknown."""
    try:
        from noisy_expert_gym import make_problem

        prob = make_problem(spec.env_id, **kwargs)
        return int(prob.task.num_actions), "period" in prob.kwargs
    except Exception:  # noqa: BLE001 - a task that cannot be built here (data, a hub model): no theory
        return None, False


def analyse(spec: Any, results: list[tuple[Any, dict | None]], curves: dict[str, list[dict]],
            n_boot: int = N_BOOT, seed: int = 0) -> list[HorizonGroup]:
    """Both fits and both theory shapes of every algorithm in every group of a scaling spec's runs
    (`results`: the spec's runs with their finished rows, :func:`scoreboards.analysis.report.gather`),
    with the budget cap and the theory per group."""
    var = scaling_variable(spec) or "m"
    data = collect(spec, results, curves, variable=var)
    groups = []
    first = spec.env_grid[var][0]
    for kwargs, varied in spec.env_configs():
        if varied.get(var) != first:
            continue  # one entry per group (the first value stands for it)
        g = ",".join(f"{k}={v}" for k, v in varied.items() if k != var) or "default"
        kw = {k: v for k, v in kwargs.items() if k != var}
        rows = [scaling(lab, data[g][lab], n_boot, seed) if var != "eta" else
                Scaling(lab, dict(sorted(data[g][lab].items())), {})
                for lab in spec.labels if lab in data.get(g, {})]
        n, per_step = _problem_facts(spec, kwargs)
        shapes: dict[float, tuple[float, float, float]] = {}
        theory: dict[str, dict[str, LevelFit | None]] = {}
        growth = float("nan")
        if n is not None:
            for x in spec.env_grid[var]:
                try:
                    shapes[float(x)] = theory_shapes(var, {**kwargs, var: x}, n, per_step)
                except Exception:  # noqa: BLE001 - a law without a clean-token probability
                    shapes = {}
                    break
        if shapes and var != "eta":
            growth = 1.0 / shapes[float(first)][0]
        for s in rows:
            ms, hits = _flatten(s.by_m)
            if shapes:
                theory[s.label] = {kind: level_fit([shapes[x][i] for x in ms], hits)
                                   for kind, i in (("offline", 1), ("online", 2))}
        groups.append(HorizonGroup(g, kw, rows, float(spec.budget_trajectories), growth, var, n, shapes, theory,
                                   per_step))
    return groups


__all__ = ["MIN_SIGMA", "N_BOOT", "SCALING_VARIABLES", "SLOPE_BOUNDS", "Fit", "HorizonGroup", "LevelFit", "Scaling",
           "analyse", "bootstrap_fits", "collect", "is_horizon_spec", "is_offline", "level_fit", "scaling",
           "scaling_variable", "theory_curve", "theory_shapes", "tobit_fit"]
