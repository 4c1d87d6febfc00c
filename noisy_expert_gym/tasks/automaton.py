"""State tracking: the chain of thought is the run of a finite automaton (docs/design.md §3).

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

The automata themselves (``modadd``, ``s5``, ``random``, relabelled copies) are built by
:mod:`noisy_expert_gym.tasks.automata`; :class:`AutomatonKwargs` declares the family's
keyword arguments.

Every method of :class:`AutomatonTask` accepts numpy arrays or torch tensors (any
device) and returns the same kind. Transitions are table gathers: no Python loop
runs over the batch.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import model_validator

from noisy_expert_gym.declarations import checked
from noisy_expert_gym.tasks.automata import (
    Automaton,
    check_automaton,
    check_options,
    check_seed,
    check_size,
    make_automaton,
)
from noisy_expert_gym.tasks.chain import ChainTask
from noisy_expert_gym.tasks.kwargs import ChainNoiseKwargs, Eta
from noisy_expert_gym.utils import is_torch


# ----------------------------------------------------------------------------- the task core
def check_symbols(m: Any) -> Any:
    """`m` if it is an integer >= 1, else a ValueError."""
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"`m` (number of input symbols) must be an integer >= 1, got {m!r}")
    return m


class AutomatonTask(ChainTask):
    """The state-tracking chain-of-thought task of an automaton with horizon ``m``.

    Args:
        automaton: the automaton (:func:`make_automaton`).
        m: number of input symbols = chain length = horizon, >= 1.
    """

    def __init__(self, automaton: Automaton, m: int = 31) -> None:
        if not isinstance(automaton, Automaton):
            raise TypeError(f"`automaton` must be an Automaton (make_automaton(...)), got {type(automaton).__name__}")
        check_symbols(m)
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


class AutomatonKwargs(ChainNoiseKwargs):
    """NoisyAutomaton's (NoisyDFA's, NoisyS5's) keyword arguments, declared; None means the automaton's default."""

    automaton: Annotated[str, checked(check_automaton)] = "random"
    """`random` (default), `modadd` or `s5`."""
    n: Annotated[int | None, checked(lambda n: check_size("n", n, 2))] = None
    """Number of states: `modadd` and `random` default to 7 (in [2, 1024]); `s5` has 120."""
    k: Annotated[int | None, checked(lambda k: check_size("k", k, 1))] = None
    """Number of input symbols: `modadd` has k = n; `random` defaults to n (in [1, 1024]); `s5` has 120 (alphabet `all`) or 2 (`generators`)."""
    m: Annotated[int, checked(check_symbols)] = 31
    """Input symbols per prompt = chain length = horizon, >= 1."""
    eta: Eta = 0.1
    """Noise level in [0, 1]."""
    kind: str | None = None
    """`random` only: `permutation` (default) or `dfa`."""
    alphabet: str | None = None
    """`s5` only: `all` (default) or `generators`."""
    automaton_seed: Annotated[int | None, checked(lambda seed: check_seed("automaton_seed", seed))] = None
    """`random` only: the seed of the transition table (default 0)."""
    relabel_seed: Annotated[int | None, checked(lambda seed: check_seed("relabel_seed", seed))] = None
    """A secret relabelling of symbol and state ids (None: none)."""

    @model_validator(mode="after")
    def _fit(self) -> AutomatonKwargs:
        check_options(self.automaton, self.n, self.k, self.kind, self.alphabet, self.automaton_seed)
        return self


def build_problem(kw: AutomatonKwargs) -> tuple[Any, Any, Any]:
    """The state-tracking problem from its validated keyword arguments: ``(task core, noisy expert, clean expert)``."""
    from noisy_expert_gym.oracle import Expert

    automaton = make_automaton(kw.automaton, kw.n, kw.k, kw.kind, kw.alphabet, kw.automaton_seed, kw.relabel_seed)
    task = AutomatonTask(automaton, kw.m)
    expert = Expert(task, law=kw.law, eta=kw.eta, kappa=kw.kappa, corruption_seed=kw.corruption_seed,
                    access=kw.access, top_k=kw.top_k, logit_noise=kw.logit_noise,
                    logit_noise_dist=kw.logit_noise_dist)
    return task, expert, Expert(task, clean=True)


__all__ = ["AutomatonKwargs", "AutomatonTask", "build_problem", "check_symbols"]
