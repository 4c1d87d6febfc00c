"""Per-step rules: state tracking whose transition changes with the step (docs/design.md §3.4).

Position t (0-based) of the chain uses rule block ``b = t mod P`` of P blocks: the period P = 1
is one shared rule (today's :class:`~noisy_expert_gym.tasks.automaton.AutomatonTask`), P = m a
new rule at every step (the "combination lock" in which the offline lower bound lives), values
between give rules that repeat. Each block is k input symbols, each acting on the n states:

- ``automaton="random"``: block b is k **distinct** uniformly random permutations of the n states
  (distinct, so no position's input is irrelevant; independent draws repeat a permutation with
  probability 1/6 already at n = 3, k = 2). Blocks are drawn one after the other from one stream
  of ``automaton_seed``, so block b is the same for every P > b: the instances of a horizon sweep
  are nested (m = 5 is m = 4 plus one position). The stream is :func:`random_automaton`'s, so at
  P = 1 the task is ``NoisyAutomaton-v0``'s for the same seed whenever that automaton's k
  permutations are distinct (it then draws exactly them; a repeat is drawn again here).
- ``automaton="modadd"``: k = p symbols per block, symbol j of block b adds ``sigma_b(j)`` mod p,
  sigma_0 the identity (so P = 1 is exactly NoisyModAdd) and sigma_b (b >= 1) a keyed random
  permutation of Z_p drawn from ``automaton_seed``: every block is Z_p acting on itself, with
  its own names for the elements.

**Encoding: position-specific symbol tokens ("blocks").** Block b has its own k symbol tokens,
``b k .. b k + k - 1`` (before any relabelling), and position t draws its symbol from block
(t mod P)'s tokens only. Why this encoding, and not one token set with the position selecting
the rule:

1. The token names its rule, so the per-step rule is a plain (state, token) -> state table:
   every student represents it the same way, whatever its position encoding (a rotary student
   would otherwise have to build t mod P from offsets, a learned-position one would get it free:
   the task's difficulty would depend on the architecture).
2. Nothing transfers across positions: block b's tokens occur only at positions = b mod P, so
   what a student learns of block b comes only from those positions -- the combination lock.
3. The task is an ordinary automaton over P k symbols with a position-restricted prompt
   distribution, so everything downstream (the clean expert ``delta(y_t, x_{t+1})``, every noise
   law, both access modes, the oracle, the env's transition and rewards, the native vector env,
   the closed forms' group offset chain) works unchanged; only which symbols a prompt may hold
   changes (:meth:`PerStepTask.sample_symbols`, :meth:`PerStepTask.validate_obs`).

``relabel_seed`` relabels states and symbol tokens as for every automaton (an isomorphic copy
with a secret rule: the hidden-rule boards' knob); a block's tokens are then the images of its
own, listed in increasing id order (:attr:`PerStepTask.block_tokens`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import model_validator

from noisy_expert_gym.declarations import checked
from noisy_expert_gym.tasks.automata import (
    MAX_SIZE,
    Automaton,
    Group,
    _off_by_one,
    _seeded,
    check_seed,
    check_size,
    relabel,
    relabelling,
)
from noisy_expert_gym.tasks.automaton import AutomatonTask, check_symbols
from noisy_expert_gym.tasks.kwargs import ChainNoiseKwargs, Eta
from noisy_expert_gym.utils import check_rng_n, did_you_mean, is_torch

#: The automata whose rule can change with the step.
PER_STEP_AUTOMATA: tuple[str, ...] = ("random", "modadd")
#: Default number of states (``random``) and modulus (``modadd``): the main job's n = 3.
DEFAULT_STATES = 3
#: Default symbols per position of ``random`` (``modadd`` has k = p).
DEFAULT_SYMBOLS = 2


# ----------------------------------------------------------------------------- the blocks
def random_blocks(n: int, k: int, period: int, seed: int) -> Automaton:
    """P blocks of k distinct random permutations of the n states: an automaton over P k symbols.

    Column ``b k + j`` of the table is symbol j of block b. The permutations are drawn in order
    from :func:`~noisy_expert_gym.tasks.automata.random_automaton`'s stream of `seed`, a repeat
    within a block drawn again, so block b does not depend on P (nested instances).
    """
    check_blocks("random", n, k, period)
    rng = _seeded(seed, 0)
    cols: list[np.ndarray] = []
    for _ in range(period):
        block: list[np.ndarray] = []
        while len(block) < k:
            perm = rng.permutation(n)
            if not any((perm == c).all() for c in block):
                block.append(perm)
        cols += block
    return Automaton("random", np.stack(cols, axis=1), 0, _off_by_one(n), None,
                     {"automaton": "random", "n": n, "k": k, "period": period, "automaton_seed": seed})


def modadd_blocks(p: int, period: int, seed: int) -> Automaton:
    """Z_p with its own names per block: symbol j of block b adds ``sigma_b(j)`` mod p.

    sigma_0 is the identity (P = 1 is modular addition); sigma_1, sigma_2, ... are uniform random
    permutations of Z_p drawn in order from `seed` (nested instances). The automaton is Z_p acting
    on itself, so the closed forms' offset chain applies (:mod:`noisy_expert_gym.theory`).
    """
    check_blocks("modadd", p, p, period)
    rng = _seeded(seed, 3)
    idx = np.arange(p)
    sigmas = [idx] + [rng.permutation(p) for _ in range(period - 1)]
    elements = np.concatenate(sigmas)  # (P p,): the element each symbol token adds
    mul = (idx[:, None] + idx[None, :]) % p
    return Automaton("modadd", mul[:, elements], 0, _off_by_one(p), Group(mul=mul, inv=(-idx) % p, elements=elements),
                     {"automaton": "modadd", "n": p, "k": p, "period": period, "automaton_seed": seed})


def check_blocks(automaton: str, n: int, k: int, period: int) -> None:
    """Raise unless P blocks of k distinct symbols over n states exist and fit the vocabulary."""
    if automaton == "random" and n <= 12 and k > math.factorial(n):
        raise ValueError(f"a block holds k distinct permutations of the n states, and n = {n} states have only "
                         f"{math.factorial(n)}: use k <= {math.factorial(n)} (got k = {k})")
    if period * k > MAX_SIZE:
        raise ValueError(f"P k = {period} x {k} = {period * k} symbol tokens exceed the {MAX_SIZE} an automaton "
                         "may have: lower the period (or m, when the period is m) or k")


# ----------------------------------------------------------------------------- the task core
class PerStepTask(AutomatonTask):
    """State tracking with a rule per step: position t uses block ``t mod period`` (module docstring).

    Args:
        automaton: the automaton over all ``period * symbols_per_step`` symbol tokens
            (:func:`random_blocks`, :func:`modadd_blocks`, or a relabelling of one).
        m: the horizon.
        period: P, the number of rule blocks (1 <= P <= m).
        block_tokens: (P, k) int64: the symbol tokens of each block, in increasing id order.
            Default: block b's tokens are ``b k .. b k + k - 1``.
    """

    def __init__(self, automaton: Automaton, m: int, period: int, block_tokens: np.ndarray | None = None) -> None:
        super().__init__(automaton, m)
        check_period(period, self.m)
        if automaton.k % period:
            raise ValueError(f"an automaton with {automaton.k} symbols cannot hold {period} blocks of equal size")
        k = automaton.k // period
        tokens = (np.arange(automaton.k, dtype=np.int64).reshape(period, k) if block_tokens is None
                  else np.array(block_tokens, dtype=np.int64))
        if tokens.shape != (period, k) or sorted(tokens.reshape(-1).tolist()) != list(range(automaton.k)):
            raise ValueError(f"`block_tokens` must split the {automaton.k} symbol tokens into {period} rows of {k}")
        tokens.setflags(write=False)
        self.period = int(period)
        self.block_tokens = tokens
        #: (m, k): the tokens position t may hold (block t mod P's).
        self.position_tokens = tokens[np.arange(self.m) % self.period]
        self.position_tokens.setflags(write=False)
        # (m, vocab) bool: which tokens position t may hold (validate_obs).
        allowed = np.zeros((self.m, self.vocab_size), dtype=bool)
        allowed[np.arange(self.m)[:, None], self.position_tokens] = True
        self._allowed = allowed

    def __repr__(self) -> str:
        return f"PerStepTask({self.automaton!r}, m={self.m}, period={self.period})"

    @property
    def symbols_per_step(self) -> int:
        """k: the symbols a position may hold (its block's)."""
        return self.block_tokens.shape[1]

    @property
    def num_prompts(self) -> int:
        """How many distinct prompts there are: k^m (position t holds one of its block's k tokens,
        not any of the P k symbol tokens). A board's held-out share is checked against it."""
        return self.symbols_per_step**self.m

    def block_of(self, t: int) -> int:
        """The rule block of 0-based position t: ``t mod period``."""
        return t % self.period

    # ----- prompts: position t draws from its block's tokens -------------------------------
    def sample_symbols(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The symbols of n prompts, (N, m): position t uniform over block (t mod P)'s k tokens.

        One ``rng.integers`` call over (n, m), as the shared-rule task makes, mapped through the
        position's token list: n prompts drawn at once equal n drawn one at a time, and at P = 1
        (block 0's tokens 0..k-1) the draws are the shared-rule task's.
        """
        n = check_rng_n(f"{type(self).__name__}.sample_symbols", rng, n, torch_ok=False)
        j = rng.integers(0, self.symbols_per_step, size=(n, self.m), dtype=np.int64)
        return self.position_tokens[np.arange(self.m)[None, :], j]

    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        """n prompts (N, m+1): per-position symbols (:meth:`sample_symbols`), then the separator.
        Raises TypeError unless ``rng`` is a numpy or torch Generator and ``n`` an integer."""
        n = check_rng_n(f"{type(self).__name__}.sample_prompts", rng, n)
        if isinstance(rng, np.random.Generator):
            return super().sample_prompts(rng, n, device)
        import torch

        dev = device or rng.device
        j = torch.randint(0, self.symbols_per_step, (n, self.m), generator=rng, device=dev)
        pos = torch.tensor(self.position_tokens, device=j.device)  # (m, k): a copy (the array is read-only)
        x = pos.gather(1, j.T).T  # x[i, t] = pos[t, j[i, t]]
        sep = torch.full((n, 1), self.sep_token, dtype=torch.long, device=x.device)
        return torch.cat([x, sep], dim=1)

    def validate_obs(self, obs: Any) -> None:
        """:meth:`ChainTask.validate_obs`, and each symbol one of its position's block's tokens."""
        super().validate_obs(obs)
        x = obs[:, : self.m]
        x = x.cpu().numpy() if is_torch(x) else np.asarray(x)
        ok = self._allowed[np.arange(self.m)[None, :], x]
        if not ok.all():
            t = int(np.argwhere(~ok)[0][1])
            raise ValueError(f"the symbol at position {t} must be one of block {self.block_of(t)}'s tokens "
                             f"{self.position_tokens[t].tolist()} (position t uses block t mod {self.period}); "
                             f"got {int(x[~ok][0])}")


def check_period(period: Any, m: int) -> None:
    """Raise unless `period` is an integer in [1, m] (None, meaning m, is resolved before)."""
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)) or not 1 <= period <= m:
        raise ValueError(f"`period` must be an integer in [1, m] = [1, {m}] (or None for P = m), got {period!r}")


def check_period_value(period: Any) -> None:
    """Raise unless `period` is None or an integer >= 1 (the bound P <= m is checked with m)."""
    if period is not None and (isinstance(period, bool) or not isinstance(period, (int, np.integer)) or period < 1):
        raise ValueError(f"`period` must be an integer in [1, m] (or None for P = m), got {period!r}")


def check_per_step_automaton(automaton: str) -> str:
    if automaton not in PER_STEP_AUTOMATA:
        raise ValueError(f"unknown `automaton` `{automaton}` for per-step rules; valid values: "
                         f"{', '.join(PER_STEP_AUTOMATA)}.{did_you_mean(automaton, PER_STEP_AUTOMATA)}")
    return automaton


class PerStepKwargs(ChainNoiseKwargs):
    """NoisyPerStepAutomaton's (NoisyPerStepModAdd's) keyword arguments, declared."""

    automaton: Annotated[str, checked(check_per_step_automaton)] = "random"
    """`random` (default: k distinct random permutations per block) or `modadd` (Z_p, renamed per block)."""
    n: Annotated[int | None, checked(lambda n: check_size("n", n, 2))] = None
    """Number of states (`modadd`: p): 3 by default, in [2, 1024]."""
    k: Annotated[int | None, checked(lambda k: check_size("k", k, 1))] = None
    """Symbols per position (per block): `random` 2 by default (at most n!); `modadd` has k = p."""
    m: Annotated[int, checked(check_symbols)] = 5
    """Input symbols per prompt = chain length = horizon, >= 1."""
    period: Annotated[int | None, checked(check_period_value)] = None
    """P, the number of rule blocks; position t uses block t mod P. None (default): P = m, a new rule at every step; 1: one shared rule."""
    eta: Eta = 0.5
    """Noise level in [0, 1]."""
    automaton_seed: Annotated[int | None, checked(lambda seed: check_seed("automaton_seed", seed))] = None
    """The seed of the blocks (default 0)."""
    relabel_seed: Annotated[int | None, checked(lambda seed: check_seed("relabel_seed", seed))] = None
    """A secret relabelling of symbol and state ids (None: none)."""

    @model_validator(mode="after")
    def _fit(self) -> PerStepKwargs:
        n = DEFAULT_STATES if self.n is None else self.n
        if self.automaton == "modadd" and self.k is not None and self.k != n:
            raise ValueError(f"automaton='modadd' has k = n = p symbols per position; got n={n}, k={self.k} "
                             "(leave k None)")
        check_period(self.resolved_period, self.m)
        k = n if self.automaton == "modadd" else (DEFAULT_SYMBOLS if self.k is None else self.k)
        check_blocks(self.automaton, n, k, self.resolved_period)
        return self

    @property
    def resolved_period(self) -> Any:
        """P: ``period``, or m when it is None."""
        return self.m if self.period is None else self.period


def make_per_step(kw: PerStepKwargs) -> tuple[Automaton, np.ndarray]:
    """The automaton of validated kwargs and its (P, k) block tokens (relabelled when asked)."""
    n = DEFAULT_STATES if kw.n is None else int(kw.n)
    period = int(kw.resolved_period)
    seed = 0 if kw.automaton_seed is None else int(kw.automaton_seed)
    if kw.automaton == "modadd":
        auto = modadd_blocks(n, period, seed)
    else:
        auto = random_blocks(n, DEFAULT_SYMBOLS if kw.k is None else int(kw.k), period, seed)
    k = auto.k // period
    tokens = np.arange(auto.k, dtype=np.int64).reshape(period, k)
    if kw.relabel_seed is not None:
        auto = relabel(auto, int(kw.relabel_seed))
        _, tau = relabelling(auto.n, auto.k, int(kw.relabel_seed))
        tokens = np.sort(tau[tokens], axis=1)  # symbol x of the original is tau[x] in the copy
    return auto, tokens


def build_problem(kw: PerStepKwargs) -> tuple[Any, Any, Any]:
    """The per-step problem from its validated keyword arguments: ``(task core, noisy expert, clean expert)``."""
    from noisy_expert_gym.oracle import Expert

    auto, tokens = make_per_step(kw)
    task = PerStepTask(auto, kw.m, int(kw.resolved_period), tokens)
    expert = Expert(task, law=kw.law, eta=kw.eta, kappa=kw.kappa, corruption_seed=kw.corruption_seed,
                    access=kw.access, top_k=kw.top_k, logit_noise=kw.logit_noise,
                    logit_noise_dist=kw.logit_noise_dist)
    return task, expert, Expert(task, clean=True)


__all__ = ["DEFAULT_STATES", "DEFAULT_SYMBOLS", "PER_STEP_AUTOMATA", "PerStepKwargs", "PerStepTask",
           "build_problem", "check_blocks", "check_period", "check_period_value", "make_per_step", "modadd_blocks", "random_blocks"]
