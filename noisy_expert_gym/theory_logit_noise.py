"""Closed forms of the per-query logit noise (DESIGN §2.7; :mod:`noisy_expert_gym.logit_noise`).

A query at a prefix with row p answers from ``r = softmax(log p + sigma eps)`` over the
support of p, eps iid per token. What is known in closed form:

- **Which token is the argmax of r.** Gumbel noise: argmax(log p + sigma g) is distributed
  as softmax(log p / sigma) over the support (the Gumbel-max trick at temperature sigma),
  exactly (:func:`argmax_distribution`). Gaussian noise: the probability that token i
  stays the argmax is the one-dimensional integral
  ``int phi(z) prod_{j != i} Phi((log p_i - log p_j) / sigma + z) dz``
  (:func:`prob_argmax_kept`), computed by quadrature. At sigma = 0 the argmax is the row's.
- **The expected row E[r].** No closed form in general (it is a (|support| - 1)-dimensional
  integral). For a two-token row (the ``biased`` law's rows, a ``mixture`` over two
  answer tokens) it is one-dimensional: with d = log p_1 - log p_2,
  ``E[r_1] = E[sigmoid(d + sigma D)]``, D = eps_1 - eps_2 ~ N(0, 2) (Gaussian) or the
  standard logistic (Gumbel) (:func:`expected_row_two_tokens`). For Gaussian noise and any
  row, to second order in sigma, ``E[r_i] = p_i + sigma^2 p_i (sum_j p_j^2 - p_i) + O(sigma^4)``
  (:func:`expected_row_second_order`): mass moves from the tokens above the row's
  collision probability sum_j p_j^2 to those below it, so the expected row is flatter than p.

The tests compare each with Monte Carlo draws of :class:`~noisy_expert_gym.logit_noise.LogitNoise`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special, stats

from noisy_expert_gym.logit_noise import (
    LOGIT_NOISE_DISTS,
    check_logit_noise,
    check_logit_noise_dist,
)


def _row(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1 or (p < 0).any() or not math.isclose(p.sum(), 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError("`p` must be one probability row (A,) that sums to 1")
    return p


def argmax_distribution(p: np.ndarray, sigma: float, dist: str = "gumbel") -> np.ndarray:
    """P(token i is the argmax of the perturbed row), ``(A,)``: exact for Gumbel noise, softmax(log p / sigma)
    over the support (the argmax of p, ties shared equally, at sigma = 0).

    Raises:
        ValueError: ``dist="gaussian"`` (no closed form over the whole row; see :func:`prob_argmax_kept`).
    """
    p = _row(p)
    check_logit_noise(sigma)
    check_logit_noise_dist(dist)
    if dist != "gumbel":
        raise ValueError("the argmax distribution has a closed form for Gumbel noise only; for Gaussian noise "
                         "use prob_argmax_kept(p, i, sigma) per token")
    if sigma == 0:
        top = p == p.max()
        return top / top.sum()
    with np.errstate(divide="ignore"):
        z = np.where(p > 0, np.log(p) / sigma, -np.inf)
    return special.softmax(z)


def prob_argmax_kept(p: np.ndarray, i: int, sigma: float, dist: str = "gaussian") -> float:
    """The probability that token `i` is the argmax of the perturbed row (``i`` the clean token: it stays the mode).

    Gaussian: ``int phi(z) prod_{j in support, j != i} Phi((log p_i - log p_j) / sigma + z) dz`` by adaptive
    quadrature (absolute error below 1e-9); Gumbel: :func:`argmax_distribution`'s entry. 0 for a token
    outside the support. At sigma = 0: 1 if i is the strict argmax of p.
    """
    p = _row(p)
    check_logit_noise(sigma)
    check_logit_noise_dist(dist)
    if p[i] == 0:
        return 0.0
    if dist == "gumbel" or sigma == 0:
        if sigma == 0:
            return float(p[i] > np.delete(p, i).max(initial=-1.0))
        return float(argmax_distribution(p, sigma, "gumbel")[i])
    others = np.log(p[(p > 0) & (np.arange(len(p)) != i)])
    gap = (math.log(p[i]) - others) / sigma  # (support - 1,)

    def integrand(z: float) -> float:
        return float(stats.norm.pdf(z) * np.prod(stats.norm.cdf(gap + z)))

    val, _ = integrate.quad(integrand, -12.0, 12.0, epsabs=1e-11, epsrel=1e-10, limit=200)
    return float(val)


def expected_row_two_tokens(p1: float, sigma: float, dist: str = "gaussian") -> float:
    """E[r_1] for a two-token row (p1, 1 - p1), both > 0: ``E[sigmoid(log(p1 / (1 - p1)) + sigma D)]`` with D the
    difference of the two tokens' noises (N(0, 2) for Gaussian, standard logistic for Gumbel), by quadrature."""
    check_logit_noise(sigma)
    check_logit_noise_dist(dist)
    if not 0 < p1 < 1:
        raise ValueError(f"`p1` must be in (0, 1) (a two-token row), got {p1!r}")
    d = math.log(p1) - math.log1p(-p1)
    if sigma == 0:
        return float(p1)
    pdf = (lambda x: stats.norm.pdf(x, scale=math.sqrt(2.0))) if dist == "gaussian" else stats.logistic.pdf
    val, _ = integrate.quad(lambda x: float(pdf(x) * special.expit(d + sigma * x)), -60.0, 60.0,
                            epsabs=1e-11, epsrel=1e-10, limit=200)
    return float(val)


def expected_row_second_order(p: np.ndarray, sigma: float) -> np.ndarray:
    """E[r] for Gaussian noise to second order in sigma: ``p_i + sigma^2 p_i (sum_j p_j^2 - p_i)`` over the support
    (the Taylor expansion of softmax around log p; the error is O(sigma^4))."""
    p = _row(p)
    check_logit_noise(sigma)
    return p + sigma**2 * p * (np.sum(p**2) - p)


__all__ = ["LOGIT_NOISE_DISTS", "argmax_distribution", "expected_row_second_order", "expected_row_two_tokens",
           "prob_argmax_kept"]
