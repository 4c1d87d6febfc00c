"""Finite automata for state tracking (:mod:`noisy_expert_gym.tasks.automaton`'s task family).

Automata (:func:`make_automaton`), each a transition table, a start state and the ``biased`` law's
slip (and, for a group acting on itself, its multiplication table: :mod:`noisy_expert_gym.theory`):

- ``modadd``: the cyclic group Z_p acting on itself: modular addition.
- ``s5``: the word problem of the symmetric group S5 -- states are the 120
  permutations of 5 items (in lexicographic order, id 0 = identity = s_0), a
  symbol is a permutation g and ``delta(s, g) = s o g`` (``(s o g)[i] = s[g[i]]``:
  shuffle the positions of the current arrangement by g). The alphabet is all of
  S5 (k = 120) or the generating set {(0 1), (0 1 2 3 4)} (k = 2). S5 is the
  smallest non-solvable group; its word problem is NC^1-complete (Barrington
  1989), and small transformers need depth growing with the sequence length to
  track it while cyclic groups admit shortcuts (Liu, Ash, Goel, Krishnamurthy and
  Zhang 2023, "Transformers Learn Shortcuts to Automata", ICLR; Merrill, Petty and
  Sabharwal 2024, "The Illusion of State in State-Space Models", ICML).
- ``random``: a transition table drawn from ``automaton_seed``: ``kind=
  "permutation"`` (each symbol permutes the states: a permutation automaton, whose
  transition monoid is a group) or ``"dfa"`` (each delta(s, x) uniform: a general
  deterministic automaton, which may merge states).

``relabel_seed`` applies a secret random relabelling of the input-symbol ids and
of the state ids: an isomorphic copy of the task (same difficulty, same closed
forms, unknown rule). The ``biased`` law's structured slip is ``(c + 1) mod n``
in the automaton's own state ids; a relabelled copy carries the slip over with
the states, so the copy is isomorphic under every noise law.

Transitions are table gathers; :class:`Automaton` keeps its tables read-only.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from noisy_expert_gym.utils import did_you_mean

AUTOMATA: tuple[str, ...] = ("random", "modadd", "s5")
KINDS: tuple[str, ...] = ("permutation", "dfa")
ALPHABETS: tuple[str, ...] = ("all", "generators")
#: Largest number of states / input symbols (the vocabulary is max(n, k) + 2 tokens).
MAX_SIZE = 1024
#: Default sizes of ``modadd`` and ``random`` when n and k are not given (NoisyModAdd's p = 7).
DEFAULT_SIZE = 7


# ----------------------------------------------------------------------------- automata
@dataclass(frozen=True, eq=False)
class Group:
    """A finite group whose right regular action is an automaton's transition.

    States are the group's elements (state ids), the start state is the identity
    and ``delta(s, x) = s * g_x``. Theory uses it (the offset ``w s^-1`` between a
    written and the true state is carried unchanged by the clean expert).

    Attributes:
        mul: (n, n) int64: ``mul[a, b]`` = a * b.
        inv: (n,) int64: the inverse of each element.
        elements: (k,) int64: the element g_x each input symbol multiplies by.
    """

    mul: np.ndarray
    inv: np.ndarray
    elements: np.ndarray


@dataclass(frozen=True, eq=False)
class Automaton:
    """A deterministic finite automaton without accepting states (a semiautomaton).

    Attributes:
        name: ``modadd``, ``s5`` or ``random``.
        table: (n, k) int64 transition table: ``table[s, x]`` = delta(s, x).
        start: the start state s_0.
        slip: (n,) int64: the ``biased`` law's wrong answer when the clean answer is c.
        group: the group structure when the automaton is a group acting on itself.
        spec: the options that built it (``automaton``, ``n``, ``k``, ``kind``, ...).
    """

    name: str
    table: np.ndarray
    start: int
    slip: np.ndarray
    group: Group | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = np.array(self.table, dtype=np.int64)
        if t.ndim != 2 or not (2 <= t.shape[0] <= MAX_SIZE) or not (1 <= t.shape[1] <= MAX_SIZE):
            raise ValueError(f"an automaton's table must have shape (n, k) with 2 <= n <= {MAX_SIZE} and "
                             f"1 <= k <= {MAX_SIZE}, got {t.shape}")
        n = t.shape[0]
        if t.min() < 0 or t.max() >= n:
            raise ValueError(f"transition table entries must be states in 0..{n - 1}")
        slip = np.array(self.slip, dtype=np.int64)
        if slip.shape != (n,) or slip.min() < 0 or slip.max() >= n or (slip == np.arange(n)).any():
            raise ValueError(f"`slip` must map each of the {n} states to a different state")
        if not (0 <= int(self.start) < n):
            raise ValueError(f"`start` must be a state in 0..{n - 1}, got {self.start}")
        for name, arr in (("table", t), ("slip", slip)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "start", int(self.start))
        object.__setattr__(self, "spec", dict(self.spec))
        if self.group is not None:
            g = self.group
            if not (g.mul[self.start] == np.arange(n)).all() or not (g.mul[:, g.elements] == t).all():
                raise ValueError("`group` must have the start state as identity and delta(s, x) = s * g_x")

    @property
    def n(self) -> int:
        """Number of states."""
        return self.table.shape[0]

    @property
    def k(self) -> int:
        """Number of input symbols."""
        return self.table.shape[1]

    @property
    def is_permutation(self) -> bool:
        """Whether every symbol permutes the states (then no two runs ever merge)."""
        return bool((np.sort(self.table, axis=0) == np.arange(self.n)[:, None]).all())

    def run(self, symbols: np.ndarray) -> np.ndarray:
        """The true run s_1..s_m of each row of symbols (N, m), numpy: (N, m)."""
        flat, k = self.table.reshape(-1), self.k
        out = np.empty(symbols.shape, np.int64)
        s = np.full(symbols.shape[0], self.start, np.int64)
        for t in range(symbols.shape[1]):
            s = flat[s * k + symbols[:, t]]
            out[:, t] = s
        return out

    def __repr__(self) -> str:  # never prints the table: a hidden instance stays hidden in logs
        relabelled = ", relabelled" if self.spec.get("relabel_seed") is not None else ""
        return f"Automaton({self.name!r}, n={self.n}, k={self.k}{relabelled})"


def _off_by_one(n: int) -> np.ndarray:
    return (np.arange(n) + 1) % n


def modadd_automaton(p: int) -> Automaton:
    """Z_p acting on itself: delta(s, x) = (s + x) mod p, start 0 (NoisyModAdd's rule)."""
    idx = np.arange(p)
    mul = (idx[:, None] + idx[None, :]) % p
    group = Group(mul=mul, inv=(-idx) % p, elements=idx.copy())
    return Automaton("modadd", mul, 0, _off_by_one(p), group,
                     {"automaton": "modadd", "n": p, "k": p})


@functools.lru_cache(maxsize=1)
def s5_elements() -> tuple[tuple[int, ...], ...]:
    """The 120 permutations of (0, 1, 2, 3, 4) in lexicographic order: state id -> permutation."""
    return tuple(itertools.permutations(range(5)))


#: The generating set of the ``generators`` alphabet: the transposition (0 1) and the 5-cycle.
S5_GENERATORS: tuple[tuple[int, ...], ...] = ((1, 0, 2, 3, 4), (1, 2, 3, 4, 0))


@functools.lru_cache(maxsize=1)
def _s5_group() -> tuple[np.ndarray, np.ndarray]:
    perms = s5_elements()
    index = {p: i for i, p in enumerate(perms)}
    mul = np.array([[index[tuple(a[b[i]] for i in range(5))] for b in perms] for a in perms], np.int64)
    inv = np.array([index[tuple(int(j) for j in np.argsort(a))] for a in perms], np.int64)
    mul.setflags(write=False)
    inv.setflags(write=False)
    return mul, inv


def s5_automaton(alphabet: str = "all") -> Automaton:
    """The word problem of S5: states = the 120 permutations, delta(s, g) = s o g, start = identity.

    Args:
        alphabet: ``all`` (k = 120: symbol id = element id) or ``generators``
            (k = 2: symbol 0 is the transposition (0 1), symbol 1 the 5-cycle (0 1 2 3 4)).
    """
    mul, inv = _s5_group()
    if alphabet == "all":
        elements = np.arange(120)
    else:
        index = {p: i for i, p in enumerate(s5_elements())}
        elements = np.array([index[g] for g in S5_GENERATORS])
    return Automaton("s5", mul[:, elements], 0, _off_by_one(120), Group(mul, inv, elements),
                     {"automaton": "s5", "n": 120, "k": len(elements), "alphabet": alphabet})


def _seeded(seed: int, purpose: int) -> np.random.Generator:
    # Separate streams for the automaton and the relabelling even when both seeds are equal.
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(purpose,)))


def random_automaton(n: int, k: int, seed: int, kind: str = "permutation") -> Automaton:
    """A transition table drawn from `seed`, start state 0.

    ``permutation``: column x is a uniform random permutation of the n states;
    ``dfa``: every delta(s, x) uniform on the n states.
    """
    rng = _seeded(seed, 0)
    if kind == "permutation":
        table = np.stack([rng.permutation(n) for _ in range(k)], axis=1)
    else:
        table = rng.integers(0, n, size=(n, k))
    return Automaton("random", table, 0, _off_by_one(n), None,
                     {"automaton": "random", "n": n, "k": k, "kind": kind, "automaton_seed": seed})


def relabelling(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The secret relabelling drawn from `seed`: (state permutation (n,), symbol permutation (k,))."""
    rng = _seeded(seed, 1)
    return rng.permutation(n), rng.permutation(k)


def relabel(automaton: Automaton, seed: int) -> Automaton:
    """An isomorphic copy: state s becomes sigma[s], symbol x becomes tau[x] (see :func:`relabelling`).

    delta'(sigma[s], tau[x]) = sigma[delta(s, x)], start' = sigma[start], and the
    slip and the group structure are carried over the same way.
    """
    sigma, tau = relabelling(automaton.n, automaton.k, seed)
    table = np.empty_like(automaton.table)
    table[sigma[:, None], tau[None, :]] = sigma[automaton.table]
    slip = np.empty(automaton.n, np.int64)
    slip[sigma] = sigma[automaton.slip]
    group = None
    if automaton.group is not None:
        g = automaton.group
        mul = np.empty_like(g.mul)
        mul[sigma[:, None], sigma[None, :]] = sigma[g.mul]
        inv = np.empty_like(g.inv)
        inv[sigma] = sigma[g.inv]
        elements = np.empty_like(g.elements)
        elements[tau] = sigma[g.elements]
        group = Group(mul, inv, elements)
    return Automaton(automaton.name, table, int(sigma[automaton.start]), slip, group,
                     {**automaton.spec, "relabel_seed": seed})


def check_seed(name: str, seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"`{name}` must be a non-negative integer or None, got {seed!r} "
                         f"({type(seed).__name__})")


def check_size(name: str, value: Any, lo: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or not lo <= value <= MAX_SIZE):
        raise ValueError(f"`{name}` must be an integer in [{lo}, {MAX_SIZE}], got {value!r}")


def check_options(automaton: str, n: int | None, k: int | None, kind: str | None,
                  alphabet: str | None, automaton_seed: int | None) -> None:
    """Raise unless the options fit the automaton: those that do not apply to it left None, and
    the sizes, kind and alphabet it allows (each message gives the valid values)."""
    if kind is not None and automaton != "random":
        raise ValueError(f"`kind` applies to automaton='random' only (got automaton='{automaton}'); "
                         "leave it None")
    if automaton_seed is not None and automaton != "random":
        raise ValueError(f"`automaton_seed` applies to automaton='random' only (got automaton='{automaton}'); "
                         "use `relabel_seed` for a secret isomorphic copy")
    if alphabet is not None and automaton != "s5":
        raise ValueError(f"`alphabet` applies to automaton='s5' only (got automaton='{automaton}')")
    if automaton == "modadd":
        p = DEFAULT_SIZE if n is None else int(n)
        if k is not None and k != p:
            raise ValueError(f"automaton='modadd' has k = n = p input symbols; got n={p}, k={k}")
    elif automaton == "s5":
        alphabet = "all" if alphabet is None else alphabet
        if alphabet not in ALPHABETS:
            raise ValueError(f"unknown `alphabet` `{alphabet}`; valid values: {', '.join(ALPHABETS)}."
                             f"{did_you_mean(alphabet, ALPHABETS)}")
        want_k = 120 if alphabet == "all" else len(S5_GENERATORS)
        if (n is not None and n != 120) or (k is not None and k != want_k):
            raise ValueError(f"automaton='s5' with alphabet='{alphabet}' has n=120 states and k={want_k} "
                             f"symbols; got n={n}, k={k} (leave them None)")
    else:
        kind = "permutation" if kind is None else kind
        if kind not in KINDS:
            raise ValueError(f"unknown `kind` `{kind}`; valid values: {', '.join(KINDS)}.{did_you_mean(kind, KINDS)}")


def check_automaton(automaton: str) -> str:
    """`automaton` if it names one (:data:`AUTOMATA`), else a ValueError with the valid names."""
    if automaton not in AUTOMATA:
        raise ValueError(f"unknown `automaton` `{automaton}`; valid values: {', '.join(AUTOMATA)}."
                         f"{did_you_mean(automaton, AUTOMATA)}")
    return automaton


def make_automaton(automaton: str = "random", n: int | None = None, k: int | None = None,
                   kind: str | None = None, alphabet: str | None = None,
                   automaton_seed: int | None = None, relabel_seed: int | None = None) -> Automaton:
    """Build an automaton from its options; None means the automaton's default (see :class:`AutomatonKwargs`).

    Raises:
        ValueError: an unknown name, a size out of range, an option that does not
            apply to the automaton, or a seed that is not a non-negative integer
            (each message gives the valid values).
    """
    check_automaton(automaton)
    check_size("n", n, 2)
    check_size("k", k, 1)
    check_seed("automaton_seed", automaton_seed)
    check_seed("relabel_seed", relabel_seed)
    check_options(automaton, n, k, kind, alphabet, automaton_seed)
    if automaton == "modadd":
        auto = modadd_automaton(DEFAULT_SIZE if n is None else int(n))
    elif automaton == "s5":
        auto = s5_automaton("all" if alphabet is None else alphabet)
    else:
        n_ = DEFAULT_SIZE if n is None else int(n)
        auto = random_automaton(n_, n_ if k is None else int(k), 0 if automaton_seed is None else int(automaton_seed),
                                "permutation" if kind is None else kind)
    return auto if relabel_seed is None else relabel(auto, int(relabel_seed))


__all__ = ["ALPHABETS", "AUTOMATA", "DEFAULT_SIZE", "KINDS", "MAX_SIZE", "S5_GENERATORS", "Automaton", "Group",
           "check_automaton", "check_options", "check_seed", "check_size", "make_automaton", "modadd_automaton",
           "random_automaton", "relabel", "relabelling", "s5_automaton", "s5_elements"]
