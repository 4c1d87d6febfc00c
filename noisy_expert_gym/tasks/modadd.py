"""Modular addition with chain of thought: the pure batched core of NoisyModAdd.

Tokens: residues 0..p-1, the separator ``p`` ("=") and the pad token ``p+1``.
An observation is ``x_1..x_m, =, y_1..y_t, pad...`` (length 2m+1). The clean
running sums are ``s_i = (x_1 + ... + x_i) mod p``. The clean expert answers, on
*any* prefix, the correct next step given the chain as written:
``(y_t + x_{t+1}) mod p`` (``x_1`` at t = 0). On a clean prefix that is
``s_{t+1}``; after an earlier slip it carries the slip forward.

An *error* (slip) at position i is a token that differs from the clean expert's
token there. The first slip is always the first position where the chain leaves
the true running sums, so "the prefix contains an error" is simply
"some written y_i != s_i" -- which is how the absorbing law detects it on any
prefix, whoever wrote it.

Every function accepts numpy arrays or torch tensors and returns the same kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np

from noisy_expert_gym.declarations import checked
from noisy_expert_gym.tasks.chain import REWARDS, ChainTask, chain_step
from noisy_expert_gym.tasks.kwargs import ChainNoiseKwargs, Eta
from noisy_expert_gym.utils import cumsum


def check_modulus(p: Any) -> Any:
    """`p` if it is an integer >= 2, else a ValueError."""
    if not isinstance(p, (int, np.integer)) or p < 2:
        raise ValueError(f"`p` (the modulus) must be an integer >= 2, got {p!r}")
    return p


def check_operands(m: Any) -> Any:
    """`m` if it is an integer >= 1, else a ValueError."""
    if not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"`m` (number of operands) must be an integer >= 1, got {m!r}")
    return m


@dataclass(frozen=True)
class ModAddTask(ChainTask):
    """The modular-addition chain-of-thought task with modulus ``p`` and ``m`` operands:
    the chain task (:class:`~noisy_expert_gym.tasks.chain.ChainTask`) of Z_p, with
    n = k = p, delta(s, x) = (s + x) mod p and start 0."""

    p: int = 7
    m: int = 31

    symbol_name = "operands"
    state_name = "residues"

    def __post_init__(self) -> None:
        check_modulus(self.p)
        check_operands(self.m)

    @property
    def n(self) -> int:
        return self.p

    @property
    def k(self) -> int:
        return self.p

    @property
    def start_state(self) -> int:
        """The running sum before the first operand (the clean expert's first token is x_1)."""
        return 0

    def transition(self, states: Any, symbols: Any) -> Any:
        """delta(s, x) = (s + x) mod p, elementwise (the clean expert's step given the chain as written)."""
        return (states + symbols) % self.p

    def true_sums(self, prompts: Any) -> Any:
        """The clean running sums s_1..s_m, (N, m)."""
        return cumsum(prompts[:, : self.m], 1) % self.p

    clean_chains = true_sums

    def slip_of(self, clean: Any) -> Any:
        """The `biased` law's structured slip: the off-by-one answer (clean + 1) mod p."""
        return (clean + 1) % self.p


def modadd_step(task: ModAddTask, obs: np.ndarray, actions: np.ndarray, reward: str, *,
                t: np.ndarray | None = None, sums: np.ndarray | None = None,
                clean_so_far: np.ndarray | None = None, inplace: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The MDP transition for a batch of states (numpy): :func:`~noisy_expert_gym.tasks.chain.chain_step`
    with the running sums as the cached true run (``sums``)."""
    return chain_step(task, obs, actions, reward, t=t, states=sums, clean_so_far=clean_so_far,
                      inplace=inplace)


class ModAddKwargs(ChainNoiseKwargs):
    """NoisyModAdd's keyword arguments (``make_problem("NoisyModAdd-v0", ...)``, ``gym.make``), declared."""

    p: Annotated[int, checked(check_modulus)] = 7
    """The modulus, >= 2."""
    m: Annotated[int, checked(check_operands)] = 31
    """Number of operands = chain length = horizon, >= 1."""
    eta: Eta = 0.1
    """Noise level in [0, 1]."""


def build_problem(kw: ModAddKwargs) -> tuple[Any, Any, Any]:
    """NoisyModAdd's problem from its validated keyword arguments: ``(task core, noisy expert, clean expert)``."""
    from noisy_expert_gym.oracle import Expert

    task = ModAddTask(p=kw.p, m=kw.m)
    expert = Expert(task, law=kw.law, eta=kw.eta, kappa=kw.kappa, corruption_seed=kw.corruption_seed,
                    access=kw.access, top_k=kw.top_k, logit_noise=kw.logit_noise,
                    logit_noise_dist=kw.logit_noise_dist)
    return task, expert, Expert(task, clean=True)


__all__ = ["REWARDS", "ModAddKwargs", "ModAddTask", "build_problem", "check_modulus", "check_operands", "modadd_step"]
