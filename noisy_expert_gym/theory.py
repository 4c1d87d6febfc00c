"""Closed forms for noisy-expert rollouts on modular addition.

A noisy-expert rollout feeds its own (possibly corrupted) tokens back. Track the
offset d_t = y_t - s_t (mod p) between the written chain and the true running
sums. The clean expert carries the offset forward (it adds the next operand to
what is written), so under each law d_t is a small Markov chain:

- mixture: d' = d w.p. 1-eta, uniform on Z_p w.p. eta;
- absorbing: while no error was made, d' = 0 w.p. 1-eta+eta/p, else a uniform
  non-zero offset; after the first error, d' is uniform on Z_p at every step;
- biased: d' = d w.p. 1-eta, d+1 w.p. eta.

A rollout is fully clean iff it never leaves d = 0 (probability q^m with q the
per-step probability of the clean token); the final answer is right iff d_m = 0.
"""

from __future__ import annotations

import numpy as np

from noisy_expert_gym.noise import check_law


def step_clean_prob(law: str, eta: float, p: int) -> float:
    """Probability that one noisy-expert step on a clean prefix writes the clean token."""
    check_law(law, eta)
    if law == "biased":
        return 1.0 - eta
    return 1.0 - eta + eta / p


def prob_fully_clean(law: str, eta: float, p: int, m: int) -> float:
    """Exact probability that a noisy-expert rollout of length m is error-free.

    With p = 7, m = 31, eta = 0.2 under `absorbing`: (0.8 + 0.2/7)^31 ~ 0.3%.
    """
    return step_clean_prob(law, eta, p) ** m


def expected_correct_prefix(law: str, eta: float, p: int, m: int) -> float:
    """Expected length of the correct prefix of a noisy-expert rollout: sum_k q^k."""
    q = step_clean_prob(law, eta, p)
    return float(sum(q**k for k in range(1, m + 1)))


def _transition(law: str, eta: float, p: int) -> np.ndarray:
    """Transition matrix over states (e, d): index e * p + d, e = an error was made."""
    n = 2 * p
    t = np.zeros((n, n))
    for e in (0, 1):
        for d in range(p):
            i = e * p + d
            if law == "mixture" or (law == "absorbing" and e == 1):
                for d2 in range(p):
                    e2 = 1 if (e or d2 != 0) else 0
                    t[i, e2 * p + d2] += eta / p
                e2 = 1 if (e or d != 0) else 0
                if law == "mixture":
                    t[i, e2 * p + d] += 1 - eta
                else:  # absorbing after an error: the expert is uniform
                    t[i] = 0.0
                    for d2 in range(p):
                        t[i, p + d2] = 1.0 / p
            elif law == "absorbing":  # e == 0, so d == 0 on reachable states
                t[i, d] += 1 - eta + eta / p
                for d2 in range(p):
                    if d2 != d:
                        t[i, p + d2] += eta / p
            else:  # biased
                t[i, e * p + d] += 1 - eta
                t[i, p + (d + 1) % p] += eta
    return t


def prob_final_correct(law: str, eta: float, p: int, m: int) -> float:
    """Exact probability that a noisy-expert rollout ends on the right answer s_m."""
    check_law(law, eta)
    dist = np.zeros(2 * p)
    dist[0] = 1.0
    dist = dist @ np.linalg.matrix_power(_transition(law, eta, p), m)
    return float(dist[0] + dist[p])
