"""Closed forms for noisy-expert rollouts on modular addition and on state tracking (automata).

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

from typing import Any

import numpy as np

from noisy_expert_gym.noise import check_law
from noisy_expert_gym.utils import did_you_mean


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


# ----------------------------------------------------------------------------- state tracking
# For an automaton the offset trick needs a group: when states are the elements of a group G
# acting on itself (delta(s, x) = s * g_x, start = identity), the offset d = w s^-1 between a
# written state w and the true state s is carried unchanged by the clean expert (w g (s g)^-1 =
# w s^-1), a uniform write makes it uniform, and a slip that is a left translation c -> h c
# turns d into h d: a Markov chain over the n offsets, as for modadd (G = Z_p). In general
# (a DFA may merge states, so a wrong chain can become right again; the biased slip need not
# be a translation) the exact chain runs over (error made, true state, written state).
#
# Two consequences the tests check: under `absorbing` every write after the first error is
# uniform, so P(final correct) = q^m + (1 - q^(m-1)) / n for *any* automaton; under `mixture`
# a permutation automaton keeps w = s and w != s alike, so P(final correct) = (1-eta)^m +
# (1 - (1-eta)^m) / n -- both equal modadd's prob_final_correct with p = n.
#
# Per-step rules (docs/design.md §3.4, noisy_expert_gym.tasks.per_step): position t draws its symbol
# uniformly from its own set of columns (block t mod P's tokens), so the pair chain's transition
# changes with the step: step t averages over those columns only. The offset chain does not read
# the symbols at all (any group element carries the offset unchanged), so for a per-step group
# automaton (``modadd`` blocks) it holds as it is, and the two consequences above hold for any
# per-step automaton too.

#: Largest n * n * k the (true, written) pair chain enumerates per step.
PAIR_CHAIN_LIMIT = 50_000_000


def _automaton_of(task_or_automaton: Any) -> Any:
    from noisy_expert_gym.tasks.automata import Automaton, modadd_automaton

    if isinstance(task_or_automaton, Automaton):
        return task_or_automaton
    auto = getattr(task_or_automaton, "automaton", None)
    if isinstance(auto, Automaton):
        return auto
    if hasattr(task_or_automaton, "p"):  # ModAddTask
        return modadd_automaton(task_or_automaton.p)
    raise TypeError(f"expected an Automaton or a task with one (AutomatonTask, ModAddTask), got "
                    f"{type(task_or_automaton).__name__}")


def _check_m(m: Any) -> int:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"`m` (the horizon) must be an integer >= 1, got {m!r}")
    return int(m)


def position_columns(task_or_automaton: Any) -> np.ndarray | None:
    """(m, k) symbol tokens each position draws uniformly from, for a per-step task
    (:class:`~noisy_expert_gym.tasks.per_step.PerStepTask`); None when every position draws from
    all of the automaton's symbols."""
    cols = getattr(task_or_automaton, "position_tokens", None)
    return None if cols is None else np.asarray(cols)


def final_correct_pair_chain(automaton: Any, law: str, eta: float, m: int,
                             columns: np.ndarray | None = None) -> float:
    """P(final answer correct) of noisy-expert rollouts on uniform prompts, any automaton.

    A Markov chain over (no error yet, true state) and (error made, true state,
    written state): exact for every automaton and law; cost O(m n^2 k).

    Args:
        automaton: an Automaton or a task holding one; a per-step task brings its columns.
        columns: (P', k) int: position t draws its symbol uniformly from row ``t mod P'`` (a
            per-step transition); default: the task's per-position tokens, else every symbol.
    """
    check_law(law, eta)
    m = _check_m(m)
    auto = _automaton_of(automaton)
    columns = position_columns(automaton) if columns is None else np.asarray(columns)
    table, n = auto.table, auto.n
    if columns is None:
        columns = np.arange(auto.k)[None, :]
    if columns.ndim != 2 or columns.min() < 0 or columns.max() >= auto.k:
        raise ValueError(f"`columns` must be a (P, k) array of symbols in 0..{auto.k - 1}")
    k = columns.shape[1]
    if n * n * k > PAIR_CHAIN_LIMIT:
        raise ValueError(f"the pair chain needs n*n*k <= {PAIR_CHAIN_LIMIT:,} (got n={n}, k={k}); for a group "
                         "automaton use method='offset'")
    slip = np.zeros((n, n))
    slip[np.arange(n), auto.slip] = 1.0  # slip @ column c -> column slip[c]
    q = step_clean_prob(law, eta, n)
    clean = np.zeros(n)  # P(no error yet, true state s)
    clean[auto.start] = 1.0
    err = np.zeros((n, n))  # P(an error was made, true state s, written state w)
    for t in range(m):
        step = table[:, columns[t % len(columns)]]  # (n, k): this position's transitions
        # (s, w) -> (delta_t(s, x), delta_t(w, x)) for every symbol x: flat pair indices, (n, n, k).
        pair_next = (step[:, None, :] * n + step[None, :, :]).reshape(-1)
        true_next = np.bincount(step.reshape(-1), weights=np.repeat(clean / k, k), minlength=n)
        carried = np.bincount(pair_next, weights=np.repeat(err.reshape(-1) / k, k), minlength=n * n)
        carried = carried.reshape(n, n)  # the clean expert's token for the written chain, before noise
        new_err = np.zeros((n, n))
        if law == "biased":
            new_err += eta * true_next[:, None] * slip
            new_err += (1 - eta) * carried + eta * carried @ slip
        else:
            off = np.full((n, n), eta / n)
            np.fill_diagonal(off, 0.0)
            new_err += true_next[:, None] * off  # a uniform write that is not the clean token
            mass = carried.sum(1)[:, None]  # P(error made, true state)
            if law == "mixture":
                new_err += (1 - eta) * carried + eta / n * mass
            else:  # absorbing: uniform once the prefix contains an error
                new_err += mass / n
        clean, err = q * true_next, new_err
    return float(clean.sum() + np.trace(err))


def final_correct_offset_chain(automaton: Any, law: str, eta: float, m: int) -> float:
    """P(final answer correct) for a group automaton: a Markov chain over the offsets d = w s^-1.

    Needs ``automaton.group`` (``modadd``, ``s5``, per-step ``modadd`` blocks, their relabellings);
    for ``biased`` the slip must be a left translation c -> h c (modadd's off-by-one is; S5's is
    not). The chain never reads the symbols, so it holds for per-step rules as it is.

    Raises:
        ValueError: the automaton has no group structure, or the slip is not a translation.
    """
    check_law(law, eta)
    m = _check_m(m)
    auto = _automaton_of(automaton)
    g = auto.group
    if g is None:
        raise ValueError(f"{auto!r} is not a group acting on itself: use method='pair'")
    n, ident = auto.n, auto.start
    h = g.mul[auto.slip, g.inv]  # slip(c) c^-1 for every c
    if law == "biased" and not (h == h[0]).all():
        raise ValueError(f"the biased slip of {auto!r} is not a left translation: use method='pair'")
    # States (e, d), index e * n + d: e = an error was made, d = the offset.
    t = np.zeros((2 * n, 2 * n))
    for e in (0, 1):
        for d in range(n):
            i = e * n + d

            def to(d2: int, prob: float, i: int = i, e: int = e) -> None:
                t[i, (1 if (e or d2 != ident) else 0) * n + d2] += prob

            if law == "absorbing" and e == 1:
                for d2 in range(n):
                    t[i, n + d2] += 1.0 / n
            elif law == "biased":
                to(d, 1 - eta)
                to(int(g.mul[h[0], d]), eta)
            else:  # mixture, or absorbing before the first error: carried or uniform
                to(d, 1 - eta)
                for d2 in range(n):
                    to(d2, eta / n)
    dist = np.zeros(2 * n)
    dist[ident] = 1.0
    dist = dist @ np.linalg.matrix_power(t, m)
    return float(dist[ident] + dist[n + ident])


METHODS: tuple[str, ...] = ("auto", "pair", "offset")


def automaton_final_correct(automaton: Any, law: str, eta: float, m: int, method: str = "auto") -> float:
    """Exact P(final answer correct) of noisy-expert rollouts on uniform random prompts.

    Args:
        automaton: an :class:`~noisy_expert_gym.tasks.automata.Automaton` or a task holding one
            (a per-step task's positions draw from their own columns: :func:`position_columns`).
        law, eta: the noise law and level.
        m: the horizon.
        method: ``offset`` (group automata), ``pair`` (any automaton) or ``auto``
            (``offset`` where it applies, else ``pair``).
    """
    if method not in METHODS:
        raise ValueError(f"unknown `method` `{method}`; valid values: {', '.join(METHODS)}."
                         f"{did_you_mean(method, METHODS)}")
    auto = _automaton_of(automaton)
    if method == "auto":
        group_ok = auto.group is not None and (
            law != "biased" or len(set(auto.group.mul[auto.slip, auto.group.inv].tolist())) == 1)
        method = "offset" if group_ok else "pair"
    if method == "offset":
        return final_correct_offset_chain(auto, law, eta, m)
    return final_correct_pair_chain(auto, law, eta, m, columns=position_columns(automaton))


def closed_forms(task: Any, law: str, eta: float) -> dict[str, float]:
    """The exact rollout statistics of a chain-of-thought task (modadd or an automaton) under a law.

    Returns:
        ``fully_clean`` (q^m), ``final_correct`` and ``correct_prefix`` (the
        expected correct-prefix length), for rollouts of the noisy expert on
        uniform random prompts of ``task.horizon`` symbols.
    """
    m, n = task.horizon, task.num_actions
    if hasattr(task, "p"):  # modadd: the offset chain over Z_p
        final = prob_final_correct(law, eta, task.p, m)
    else:
        final = automaton_final_correct(task, law, eta, m)
    return {"fully_clean": prob_fully_clean(law, eta, n, m), "final_correct": final,
            "correct_prefix": expected_correct_prefix(law, eta, n, m)}
