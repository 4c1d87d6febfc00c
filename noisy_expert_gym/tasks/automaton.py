"""State tracking: the chain of thought is the run of a finite automaton (DESIGN §3).

A prompt is m input symbols x_1..x_m from an alphabet of size k; the chain of
thought is the run s_1..s_m of an automaton with n states,
``s_t = delta(s_{t-1}, x_t)`` from a fixed start state s_0; the answer is s_m.
The clean expert answers, on *any* prefix, ``delta(y_t, x_{t+1})`` -- the next
state given the chain as written (``delta(s_0, x_1)`` on the empty chain) -- so
it carries an earlier slip forward exactly as modadd's does. The first slip is
always the first position where the chain leaves the true run, so "the prefix
contains an error" is "some written y_i != s_i", as for modadd.

Tokens generalise NoisyModAdd's layout: actions are the state ids 0..n-1, input
symbols the token ids 0..k-1, the separator is ``max(n, k)`` and the pad token
``max(n, k) + 1``. An observation is ``x_1..x_m, sep, y_1..y_t, pad...``
(length 2m+1). With ``automaton="modadd"`` (n = k = p, delta(s, x) = (s + x)
mod p, s_0 = 0) the MDP is exactly NoisyModAdd's.

Automata (:func:`make_automaton`):

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

Every method of :class:`AutomatonTask` accepts numpy arrays or torch tensors (any
device) and returns the same kind. Transitions are table gathers: no Python loop
runs over the batch.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from noisy_expert_gym.tasks.chain import ChainTask
from noisy_expert_gym.utils import did_you_mean, is_torch

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


def _check_seed(name: str, seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"`{name}` must be a non-negative integer or None, got {seed!r} "
                         f"({type(seed).__name__})")


def _check_size(name: str, value: Any, lo: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or not lo <= value <= MAX_SIZE):
        raise ValueError(f"`{name}` must be an integer in [{lo}, {MAX_SIZE}], got {value!r}")


def make_automaton(automaton: str = "random", n: int | None = None, k: int | None = None,
                   kind: str | None = None, alphabet: str | None = None,
                   automaton_seed: int | None = None, relabel_seed: int | None = None) -> Automaton:
    """Build an automaton from its options; None means the automaton's default (see :func:`build_problem`).

    Raises:
        ValueError: an unknown name, a size out of range, an option that does not
            apply to the automaton, or a seed that is not a non-negative integer
            (each message gives the valid values).
    """
    if automaton not in AUTOMATA:
        raise ValueError(f"unknown `automaton` `{automaton}`; valid values: {', '.join(AUTOMATA)}."
                         f"{did_you_mean(automaton, AUTOMATA)}")
    _check_size("n", n, 2)
    _check_size("k", k, 1)
    _check_seed("automaton_seed", automaton_seed)
    _check_seed("relabel_seed", relabel_seed)
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
        auto = modadd_automaton(p)
    elif automaton == "s5":
        alphabet = "all" if alphabet is None else alphabet
        if alphabet not in ALPHABETS:
            raise ValueError(f"unknown `alphabet` `{alphabet}`; valid values: {', '.join(ALPHABETS)}."
                             f"{did_you_mean(alphabet, ALPHABETS)}")
        want_k = 120 if alphabet == "all" else len(S5_GENERATORS)
        if (n is not None and n != 120) or (k is not None and k != want_k):
            raise ValueError(f"automaton='s5' with alphabet='{alphabet}' has n=120 states and k={want_k} "
                             f"symbols; got n={n}, k={k} (leave them None)")
        auto = s5_automaton(alphabet)
    else:
        kind = "permutation" if kind is None else kind
        if kind not in KINDS:
            raise ValueError(f"unknown `kind` `{kind}`; valid values: {', '.join(KINDS)}.{did_you_mean(kind, KINDS)}")
        n_ = DEFAULT_SIZE if n is None else int(n)
        auto = random_automaton(n_, n_ if k is None else int(k), 0 if automaton_seed is None else int(automaton_seed),
                                kind)
    return auto if relabel_seed is None else relabel(auto, int(relabel_seed))


# ----------------------------------------------------------------------------- the task core
class AutomatonTask(ChainTask):
    """The state-tracking chain-of-thought task of an automaton with horizon ``m``.

    Args:
        automaton: the automaton (:func:`make_automaton`).
        m: number of input symbols = chain length = horizon, >= 1.
    """

    def __init__(self, automaton: Automaton, m: int = 31) -> None:
        if not isinstance(automaton, Automaton):
            raise TypeError(f"`automaton` must be an Automaton (make_automaton(...)), got {type(automaton).__name__}")
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"`m` (number of input symbols) must be an integer >= 1, got {m!r}")
        self.automaton = automaton
        self.m = int(m)
        self._flat = automaton.table.reshape(-1)
        self._torch: dict[Any, tuple[Any, Any]] = {}  # device -> (flat table, slip) tensors

    def __repr__(self) -> str:
        return f"AutomatonTask({self.automaton!r}, m={self.m})"

    def __getstate__(self) -> dict[str, Any]:  # pickles without the per-device tensor cache
        return {**self.__dict__, "_torch": {}}

    @property
    def n(self) -> int:
        return self.automaton.n

    @property
    def k(self) -> int:
        return self.automaton.k

    @property
    def start_state(self) -> int:
        return self.automaton.start

    # ----- the transition (a table gather) -----------------------------------------
    def _tables(self, like: Any) -> tuple[Any, Any]:
        """(flat transition table, slip table) on `like`'s device (numpy or torch)."""
        if not is_torch(like):
            return self._flat, self.automaton.slip
        dev = like.device
        if dev not in self._torch:
            import torch

            self._torch[dev] = (torch.tensor(self._flat, device=dev),  # copies: the tables are read-only
                                torch.tensor(self.automaton.slip, device=dev))
        return self._torch[dev]

    def transition(self, states: Any, symbols: Any) -> Any:
        """delta(s, x) elementwise for states and symbols of one shape."""
        flat, _ = self._tables(states)
        if is_torch(states):
            return flat[states.long() * self.k + symbols.long()]
        return flat[states.astype(np.int64, copy=False) * self.k + symbols]

    def slip_of(self, clean: Any) -> Any:
        """The ``biased`` law's slip of each clean answer."""
        _, slip = self._tables(clean)
        return slip[clean.long()] if is_torch(clean) else slip[clean]

    def true_states(self, prompts: Any) -> Any:
        """The true run s_1..s_m of each prompt (or observation), (N, m): m batched gathers."""
        x = prompts[:, : self.m]
        if not is_torch(x):
            return self.automaton.run(x)
        import torch

        flat, _ = self._tables(x)
        k = self.k
        out = torch.empty(x.shape, dtype=torch.long, device=x.device)
        s = torch.full((x.shape[0],), self.start_state, dtype=torch.long, device=x.device)
        xl = x.long()
        for t in range(self.m):
            s = flat[s * k + xl[:, t]]
            out[:, t] = s
        return out

    clean_chains = true_states


def build_problem(automaton: str = "random", n: int | None = None, k: int | None = None, m: int = 31,
                  eta: float = 0.1, law: str = "absorbing", kind: str | None = None,
                  alphabet: str | None = None, automaton_seed: int | None = None,
                  relabel_seed: int | None = None, kappa: float = 1.0, corruption_seed: int = 0,
                  access: str = "full") -> tuple[Any, Any, Any]:
    """The state-tracking problem: ``(task core, noisy expert, clean expert)``.

    Args:
        automaton: ``random`` (default), ``modadd`` or ``s5``.
        n: number of states: ``modadd`` and ``random`` default to 7; ``s5`` has 120.
        k: number of input symbols: ``modadd`` has k = n; ``random`` defaults to n;
            ``s5`` has 120 (``alphabet="all"``) or 2 (``"generators"``).
        m: number of input symbols per prompt = chain length = horizon, >= 1.
        eta: noise level in [0, 1].
        law: ``absorbing`` (default), ``mixture``, ``biased``, ``corrupted`` or
            ``corrupted-absorbing`` (:mod:`noisy_expert_gym.noise`).
        kind: ``random`` only: ``permutation`` (default) or ``dfa``.
        alphabet: ``s5`` only: ``all`` (default) or ``generators``.
        automaton_seed: ``random`` only: the seed of the transition table (default 0).
        relabel_seed: a secret relabelling of symbol and state ids (None: none).
        kappa: concentration of the hidden corruption in [0, 1] (corruption laws only).
        corruption_seed: secret seed of the corruption's wrong tokens (corruption laws only).
        access: ``full`` or ``sample`` (the noisy expert answers with sampled tokens only).

    Raises:
        ValueError: a value out of range or an option that does not apply, with the valid values.
    """
    from noisy_expert_gym.oracle import Expert

    task = AutomatonTask(make_automaton(automaton, n, k, kind, alphabet, automaton_seed, relabel_seed), m)
    expert = Expert(task, law=law, eta=eta, kappa=kappa, corruption_seed=corruption_seed, access=access)
    return task, expert, Expert(task, clean=True)


__all__ = ["ALPHABETS", "AUTOMATA", "KINDS", "MAX_SIZE", "S5_GENERATORS", "Automaton", "AutomatonTask", "Group",
           "build_problem", "make_automaton", "modadd_automaton", "random_automaton", "relabel",
           "relabelling", "s5_automaton", "s5_elements"]
