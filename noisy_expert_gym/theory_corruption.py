"""Closed forms for the unknown-corruption laws `corrupted` and `corrupted-absorbing`.

Our reconstruction of the paper's extension to unknown corruption (docs/design.md §2): the
learner knows only that the clean expert is deterministic; the expert answers

    pi~(.|s) = (1 - eta) delta(a*(s)) + eta c(.|s),   c(.|s) = (1 - kappa) U + kappa delta(w(s)),

with U uniform over the A answer tokens and w(s) a hidden wrong token, uniform
among the answer tokens other than the clean action a*(s), fixed per state by a
secret seed (:mod:`noisy_expert_gym.noise`). `corrupted-absorbing` answers c(.|s)
alone once the prefix contains an error. At one state the probabilities are
therefore (:func:`state_probs`)

    clean      q  = (1 - eta) + eta (1 - kappa) / A        (error-free prefix)
    w(s)       r  = eta (1 - kappa) / A + eta kappa
    any other  o  = eta (1 - kappa) / A

and, after an error under `corrupted-absorbing`, q_e = (1 - kappa) / A,
r_e = (1 - kappa) / A + kappa, o_e = (1 - kappa) / A.

Everything here assumes the clean action is one of the answer tokens (true of
NoisyModAdd and of the state-tracking family, whose answer tokens are all
actions). Quantities that depend on the random w(s) are **averaged over it** (over
the secret seed): for a fixed seed the hash makes w(s) pseudo-random, and the
states of one rollout are all distinct, so a path's probability is a product of
factors of independent w's and its expectation factorises. The mode condition,
the fully-clean probability and the majority vote under random tie-breaking do
not depend on which token w(s) is at all; only the majority vote with
``ties="lowest"`` and the final-answer probability do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from noisy_expert_gym.noise import CORRUPTION_LAWS, check_corruption, check_law
from noisy_expert_gym.sampling import TIES, check_num_samples

__all__ = ["expected_correct_prefix", "majority_vote_prob", "mode_boundary", "mode_margin",
           "prob_final_correct", "prob_fully_clean", "prob_majority_clean", "prob_mode_condition",
           "state_probs"]


def _check(law: str, eta: float, kappa: float, num_answers: int) -> None:
    check_law(law, eta, allowed=CORRUPTION_LAWS)
    check_corruption(law, kappa, 0)
    if isinstance(num_answers, bool) or not isinstance(num_answers, (int, np.integer)) or num_answers < 2:
        raise ValueError(f"`num_answers` (A, the answer tokens) must be an integer >= 2, got {num_answers!r}")


def state_probs(law: str, eta: float, kappa: float, num_answers: int, *, error: bool = False
                ) -> tuple[float, float, float]:
    """pi~ at one state: (clean action, the wrong token w(s), each of the A - 2 other answer tokens).

    Args:
        law: `corrupted` or `corrupted-absorbing`.
        eta: noise level in [0, 1].
        kappa: the corruption's concentration in [0, 1].
        num_answers: A >= 2.
        error: the prefix already contains an error (changes `corrupted-absorbing` only).
    """
    _check(law, eta, kappa, num_answers)
    a = num_answers
    if law == "corrupted-absorbing" and error:
        return (1 - kappa) / a, (1 - kappa) / a + kappa, (1 - kappa) / a
    other = eta * (1 - kappa) / a
    return 1 - eta + other, other + eta * kappa, other


def mode_boundary(kappa: float) -> float:
    """The noise level where the mode condition breaks: it holds on error-free prefixes iff eta < 1 / (1 + kappa).

    kappa = 1 (one wrong token per state): 1/2; kappa = 0 (uniform corruption): 1.
    """
    check_corruption("corrupted", kappa, 0)
    return 1.0 / (1.0 + kappa)


def mode_margin(law: str, eta: float, kappa: float, num_answers: int, *, error: bool = False) -> float:
    """pi~(clean) - max over the other tokens of pi~: 1 - eta (1 + kappa) on error-free prefixes, -kappa after
    an error under `corrupted-absorbing`. The same for every w(s)."""
    clean, wrong, _ = state_probs(law, eta, kappa, num_answers, error=error)
    return clean - wrong  # w(s) has at least the mass of every other token


def prob_mode_condition(law: str, eta: float, kappa: float, num_answers: int, *, error: bool = False) -> float:
    """Probability, over the hidden w(s), that the clean action is the strict mode of pi~ at a state.

    It does not depend on w(s) (w is never the clean token and always the runner-up),
    so it is 1.0 or 0.0: 1.0 iff eta (1 + kappa) < 1 on an error-free prefix (any
    prefix under `corrupted`); 0.0 after an error under `corrupted-absorbing` (the
    clean token then has (1 - kappa)/A <= the wrong token's mass). The comparison is
    exact in rational arithmetic on the given floats (no rounding at the boundary).
    """
    _check(law, eta, kappa, num_answers)
    if law == "corrupted-absorbing" and error:
        return 0.0
    e, k = Fraction(float(eta)), Fraction(float(kappa))
    return 1.0 if e * (1 + k) < 1 else 0.0


def _q(law: str, eta: float, kappa: float, num_answers: int) -> float:
    return state_probs(law, eta, kappa, num_answers)[0]


def prob_fully_clean(law: str, eta: float, kappa: float, num_answers: int, m: int) -> float:
    """Exact probability that a noisy-expert rollout of length m writes the clean action at every step: q^m.

    The same under both laws (they differ only after an error); w(s) plays no part.
    At kappa = 0 it equals `mixture`'s (1 - eta + eta / A)^m.
    """
    _check_m(m)
    return _q(law, eta, kappa, num_answers) ** m


def expected_correct_prefix(law: str, eta: float, kappa: float, num_answers: int, m: int) -> float:
    """Expected length of the error-free prefix of a noisy-expert rollout: sum_{j=1..m} q^j."""
    _check_m(m)
    q = _q(law, eta, kappa, num_answers)
    return float(sum(q**j for j in range(1, m + 1)))


def prob_final_correct(law: str, eta: float, kappa: float, p: int, m: int) -> float:
    """NoisyModAdd: probability that a noisy-expert rollout ends on the right answer s_m, averaged over the seed.

    The offset d_t = y_t - s_t (mod p) is carried forward by the clean expert;
    averaged over w(s), a step keeps d with probability q and otherwise moves it to
    each other offset with probability (1 - q) / (p - 1): a lazy walk whose
    non-trivial eigenvalue is lambda = (p q - 1) / (p - 1), so from d = 0,
    P(d_m = 0) = 1/p + (1 - 1/p) lambda^m (`corrupted`). Under
    `corrupted-absorbing` the walk switches, at the first error, to
    q_e = (1 - kappa) / p, lambda_e = -kappa / (p - 1), and from a non-zero offset
    P(d_s = 0) = (1 - lambda_e^s) / p:

        q^m + sum_{t=1..m} q^(t-1) (1 - q) (1 - lambda_e^(m-t)) / p.
    """
    _check(law, eta, kappa, p)
    _check_m(m)
    q = _q(law, eta, kappa, p)
    if law == "corrupted":
        lam = (p * q - 1) / (p - 1)
        return 1 / p + (1 - 1 / p) * lam**m
    lam_e = -kappa / (p - 1)
    return q**m + sum(q ** (t - 1) * (1 - q) * (1 - lam_e ** (m - t)) / p for t in range(1, m + 1))


def _check_m(m: int) -> None:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 0:
        raise ValueError(f"`m` (the rollout length) must be an integer >= 0, got {m!r}")


def _check_ties(ties: str) -> None:
    if ties not in TIES:
        raise ValueError(f"unknown `ties` {ties!r}; valid values: {', '.join(f'`{t}`' for t in TIES)}")


def majority_vote_prob(probs: Sequence[float], k: int, clean: int, ties: str = "random") -> float:
    """Exact probability that the majority vote of k i.i.d. draws from `probs` returns token `clean`.

    The multinomial sum over all count vectors, without enumerating the A^k outcomes:
    condition on the clean token's count n (binomial); the other tokens share the
    r = k - n remaining draws multinomially, r! prod_j (pi'_j^{n_j} / n_j!) with
    pi' = pi / (1 - pi_clean), so running over them is a truncated convolution of
    exponential generating functions (each n_j capped at n, tracking how many tie
    with n). Terms are scaled by r^{n_j} to stay in floating-point range (k up to
    ~700). O(k^2 A^2) convolutions of length <= k.

    Args:
        probs: a distribution over A tokens (non-negative, summing to 1).
        k: draws, >= 1.
        clean: the token whose win is measured, in [0, A).
        ties: ``"random"``: a tie among T + 1 tokens goes to each with probability
            1 / (T + 1); ``"lowest"``: to the lowest token id (the rules of
            :func:`noisy_expert_gym.sampling.majority_vote`).

    Raises:
        ValueError: k < 1, an unknown tie rule, or `probs` / `clean` malformed.
    """
    k = check_num_samples(k)
    _check_ties(ties)
    pr = [float(x) for x in probs]
    a = len(pr)
    if a < 1 or min(pr) < 0 or abs(sum(pr) - 1.0) > 1e-9:
        raise ValueError(f"`probs` must be a distribution (non-negative, summing to 1), got {probs!r}")
    if isinstance(clean, bool) or not (0 <= int(clean) < a):
        raise ValueError(f"`clean` must be a token in [0, {a - 1}], got {clean!r}")
    clean = int(clean)
    others = [j for j in range(a) if j != clean]
    p_c = pr[clean]
    rest_mass = sum(pr[j] for j in others)
    total = 0.0
    for n in range(1, k + 1):
        r = k - n  # draws left to the other tokens
        log_pn = _log_binom_pmf(k, n, p_c, rest_mass)  # P(N_clean = n)
        if log_pn == -math.inf:
            continue
        scale = float(max(r, 1))
        # dp[s, T]: sum over the others seen so far of prod (pi'_j scale)^{n_j} / n_j!, s = sum n_j,
        # every n_j within its cap, T of them equal to n (a tie).
        dp = np.zeros((r + 1, len(others) + 1))
        dp[0, 0] = 1.0
        for j in others:
            q = pr[j] / rest_mass if rest_mass > 0 else 0.0
            cap = min(n - 1 if (ties == "lowest" and j < clean) else n, r)  # a lower id must stay below n
            x = np.ones(cap + 1)
            for c in range(1, cap + 1):
                x[c] = x[c - 1] * q * scale / c
            tie = 0.0
            if ties == "random" and cap == n:
                tie, x[n] = x[n], 0.0
            new = np.zeros_like(dp)
            for t in range(dp.shape[1]):
                if dp[:, t].any():
                    new[:, t] += np.convolve(dp[:, t], x)[: r + 1]
                    if tie and t + 1 < dp.shape[1]:
                        new[n:, t + 1] += tie * dp[: r + 1 - n, t]
            dp = new
        weights = 1.0 / (1.0 + np.arange(dp.shape[1])) if ties == "random" else np.ones(dp.shape[1])
        inner = float(dp[r] @ weights)  # times r! / scale^r: P(the others' counts are allowed | N_clean = n)
        if inner > 0:
            total += math.exp(log_pn + math.lgamma(r + 1) - r * math.log(scale) + math.log(inner))
    return min(max(total, 0.0), 1.0)


def _log_binom_pmf(k: int, n: int, p: float, rest: float) -> float:
    """log P(Binomial(k, p) = n), with 1 - p given as `rest` (exact zeros stay -inf)."""
    if (p == 0.0 and n > 0) or (rest <= 0.0 and n < k):
        return -math.inf
    out = math.lgamma(k + 1) - math.lgamma(n + 1) - math.lgamma(k - n + 1)
    return out + (n * math.log(p) if n else 0.0) + ((k - n) * math.log(rest) if k - n else 0.0)


def prob_majority_clean(law: str, eta: float, kappa: float, num_answers: int, k: int, *, ties: str = "random",
                        error: bool = False, clean_rank: int | None = None) -> float:
    """Exact probability that the majority vote of k expert samples at a state is the clean action.

    Averaged over the hidden w(s) (uniform among the A - 1 other answer tokens). With
    ``ties="random"`` it does not depend on w(s) or on token ids; with
    ``ties="lowest"`` give ``clean_rank``, the clean action's rank among the answer
    tokens (its token id on NoisyModAdd), since a tie with w(s) is won by the lower id.

    As k grows it tends to 1 iff the mode condition holds (:func:`prob_mode_condition`);
    beyond the boundary it tends to 0 (exactly at it, eta (1 + kappa) = 1, clean and w(s)
    tie in probability and the vote is a coin flip between them).

    Args:
        law, eta, kappa, num_answers, error: as :func:`state_probs`.
        k: samples per state, >= 1.
        ties: ``random`` (default) or ``lowest``.
        clean_rank: required with ``ties="lowest"``: in [0, A).
    """
    clean_p, wrong_p, other_p = state_probs(law, eta, kappa, num_answers, error=error)
    k = check_num_samples(k)
    _check_ties(ties)
    a = int(num_answers)
    if ties == "lowest":
        if clean_rank is None or isinstance(clean_rank, bool) or not (0 <= int(clean_rank) < a):
            raise ValueError(f"ties='lowest' needs `clean_rank` (the clean action's rank among the {a} answer "
                             f"tokens) in [0, {a - 1}], got {clean_rank!r}")
        c = int(clean_rank)
    else:
        c = 0
    # The A - 2 other tokens are exchangeable, so under "lowest" only whether w(s) lies below or
    # above the clean token matters: two exact sums weighted by how many w's lie on each side.
    sides = [(c, c - 1), (a - 1 - c, c + 1)] if ties == "lowest" else [(1, 1)]
    out = 0.0
    for count, w in sides:
        if count == 0:
            continue
        probs = [other_p] * a
        probs[c], probs[w] = clean_p, wrong_p
        out += count * majority_vote_prob(probs, k, c, ties)
    return out / sum(n for n, _ in sides)
