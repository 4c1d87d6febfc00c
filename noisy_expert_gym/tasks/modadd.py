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
from typing import Any

import numpy as np

from noisy_expert_gym._util import cumsum, is_torch
from noisy_expert_gym.tasks.chain import REWARDS, chain_metrics, chain_step
from noisy_expert_gym.tasks.chain import clip as _clip
from noisy_expert_gym.tasks.chain import gather_rows as _gather
from noisy_expert_gym.tasks.chain import where as _where


@dataclass(frozen=True)
class ModAddTask:
    """The modular-addition chain-of-thought task with modulus ``p`` and ``m`` operands."""

    p: int = 7
    m: int = 31

    def __post_init__(self) -> None:
        if not isinstance(self.p, (int, np.integer)) or self.p < 2:
            raise ValueError(f"`p` (the modulus) must be an integer >= 2, got {self.p!r}")
        if not isinstance(self.m, (int, np.integer)) or self.m < 1:
            raise ValueError(f"`m` (number of operands) must be an integer >= 1, got {self.m!r}")

    # ----- sizes ---------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return self.p

    @property
    def sep_token(self) -> int:
        return self.p

    @property
    def pad_token(self) -> int:
        return self.p + 1

    @property
    def vocab_size(self) -> int:
        return self.p + 2

    @property
    def prompt_len(self) -> int:
        return self.m + 1

    @property
    def horizon(self) -> int:
        return self.m

    @property
    def obs_len(self) -> int:
        return 2 * self.m + 1

    @property
    def answer_mask(self) -> np.ndarray:
        """Actions the uniform part of the noise is spread over: all p residues."""
        return np.ones(self.p, dtype=bool)

    # ----- prompts and observations ---------------------------------------------
    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        """Sample n prompts (N, m+1): operands uniform in 0..p-1, then the separator."""
        if isinstance(rng, np.random.Generator):
            x = self.sample_symbols(rng, n)
            return np.concatenate([x, np.full((n, 1), self.sep_token, np.int64)], axis=1)
        import torch

        x = torch.randint(0, self.p, (n, self.m), generator=rng, device=device or rng.device)
        sep = torch.full((n, 1), self.sep_token, dtype=torch.long, device=x.device)
        return torch.cat([x, sep], dim=1)

    def sample_symbols(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The input symbols of n prompts, (N, m) int64 (numpy; ``sample_prompts`` adds the separator).

        One ``rng.integers`` call: n prompts drawn at once equal n prompts drawn one
        at a time from the same generator (the native vector env relies on it).
        """
        return rng.integers(0, self.p, size=(n, self.m), dtype=np.int64)

    def observe(self, prompts: Any, chain: Any) -> Any:
        """Observation from prompts (N, m+1) and a (possibly partial) chain (N, t)."""
        n, t = chain.shape
        if is_torch(prompts):
            import torch

            pad = torch.full((n, self.m - t), self.pad_token, dtype=torch.long, device=prompts.device)
            return torch.cat([prompts, chain.long(), pad], dim=1)
        pad = np.full((n, self.m - t), self.pad_token, np.int64)
        return np.concatenate([prompts, chain.astype(np.int64), pad], axis=1)

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

    def validate_obs(self, obs: Any) -> None:
        """Raise a ValueError unless `obs` is a well-formed batch (N, 2m+1) of prefixes."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_len:
            raise ValueError(
                f"observations must have shape (N, {self.obs_len}) (or ({self.obs_len},) for one) "
                f"for p={self.p}, m={self.m}; got {tuple(obs.shape)}"
            )
        lo, hi = int(obs.min()), int(obs.max())
        if lo < 0 or hi > self.pad_token:
            raise ValueError(f"observation tokens must lie in [0, {self.pad_token}], got [{lo}, {hi}]")
        if bool((obs[:, : self.m] >= self.p).any()) or bool((obs[:, self.m] != self.sep_token).any()):
            raise ValueError(
                f"observations must start with m={self.m} operands in 0..{self.p - 1} "
                f"followed by the separator token {self.sep_token}"
            )
        chain = obs[:, self.m + 1 :]
        written = chain != self.pad_token
        # A chain is written left to right: no token may follow a pad.
        if bool((written[:, 1:] & ~written[:, :-1]).any()) or bool((chain[written] == self.sep_token).any()):
            raise ValueError("the chain part of an observation must be residues followed by padding")

    # ----- single prefixes --------------------------------------------------------
    def step_index(self, obs: Any) -> Any:
        """Number of chain tokens written so far, (N,)."""
        return (obs[:, self.m + 1 :] != self.pad_token).sum(1)

    def clean_actions(self, obs: Any) -> Any:
        """The clean expert's next token at each prefix, (N,). Needs step_index < m."""
        t = self.step_index(obs)
        x_next = _gather(obs[:, : self.m], _clip(t, 0, self.m - 1))
        y_last = _gather(obs[:, self.m + 1 :], _clip(t - 1, 0, self.m - 1))
        return _where(t == 0, x_next, (y_last + x_next) % self.p)

    def has_error(self, obs: Any) -> Any:
        """Whether the chain written so far contains an error, (N,) bool."""
        chain = obs[:, self.m + 1 :]
        return ((chain != self.true_sums(obs)) & (chain != self.pad_token)).any(1)

    def slip_actions(self, obs: Any) -> Any:
        """The `biased` law's structured slip: the off-by-one answer (clean + 1) mod p."""
        return (self.clean_actions(obs) + 1) % self.p

    # ----- every prefix of complete chains (the trainers' fast path) ---------------
    def clean_along(self, prompts: Any, chain: Any) -> Any:
        """Clean expert's token at every prefix chain[:, :t], t = 0..m-1; (N, m)."""
        x = prompts[:, : self.m]
        prev = chain[:, :-1]
        first = x[:, :1]
        rest = (prev + x[:, 1:]) % self.p
        if is_torch(chain):
            import torch

            return torch.cat([first, rest], dim=1)
        return np.concatenate([first, rest], axis=1)

    def error_along(self, prompts: Any, chain: Any) -> Any:
        """Whether chain[:, :t] already contains an error, t = 0..m-1; (N, m) bool."""
        mism = (chain != self.true_sums(prompts)).astype(np.int64) if not is_torch(chain) else (
            chain != self.true_sums(prompts)
        ).long()
        return (cumsum(mism, 1) - mism) > 0

    def slip_along(self, prompts: Any, chain: Any) -> Any:
        return (self.clean_along(prompts, chain) + 1) % self.p

    def valid_along(self, prompts: Any, chain: Any) -> Any:
        """Which positions of complete chains count (all of them: modadd has no early end)."""
        if is_torch(chain):
            import torch

            return torch.ones(chain.shape, dtype=torch.bool, device=chain.device)
        return np.ones(chain.shape, dtype=bool)

    # ----- metrics ------------------------------------------------------------------
    def metrics(self, prompts: Any, chain: Any, states: Any = None) -> dict[str, Any]:
        """Per-episode clean metrics of complete chains (N, m) (:func:`~noisy_expert_gym.tasks.chain.chain_metrics`).

        ``full_exact``, ``final_exact``, ``correct_prefix_len`` and ``num_errors``
        (tokens that differ from the clean expert's token given the chain as
        written); ``states`` is the true run when the caller already has it.
        """
        states = self.true_sums(prompts) if states is None else states
        return chain_metrics(chain, states, self.clean_along(prompts, chain))


def modadd_step(task: ModAddTask, obs: np.ndarray, actions: np.ndarray, reward: str, *,
                t: np.ndarray | None = None, sums: np.ndarray | None = None,
                clean_so_far: np.ndarray | None = None, inplace: bool = False
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The MDP transition for a batch of states (numpy): :func:`~noisy_expert_gym.tasks.chain.chain_step`
    with the running sums as the cached true run (``sums``)."""
    return chain_step(task, obs, actions, reward, t=t, states=sums, clean_so_far=clean_so_far,
                      inplace=inplace)


def build_problem(p: int = 7, m: int = 31, eta: float = 0.1, law: str = "absorbing", kappa: float = 1.0,
                  corruption_seed: int = 0, access: str = "full") -> tuple[Any, Any, Any]:
    """NoisyModAdd's problem: ``(task core, noisy expert, clean expert)``.

    Args:
        p: modulus, >= 2.
        m: number of operands = chain length = horizon, >= 1.
        eta: noise level in [0, 1].
        law: ``absorbing`` (default), ``mixture``, ``biased``, ``corrupted`` or
            ``corrupted-absorbing`` (:mod:`noisy_expert_gym.noise`).
        kappa: concentration of the hidden corruption in [0, 1] (corruption laws
            only): 0 near-uniform, 1 (default) one wrong token per state.
        corruption_seed: secret seed of the corruption's wrong tokens, an integer in
            [0, 2**64) (corruption laws only; default 0).
        access: ``full`` (default) or ``sample``: the noisy expert answers with
            sampled tokens only. The clean expert (evaluation only) is always ``full``.

    Raises:
        ValueError: a value out of range, with the valid values.
    """
    from noisy_expert_gym.oracle import Expert

    task = ModAddTask(p=p, m=m)
    expert = Expert(task, law=law, eta=eta, kappa=kappa, corruption_seed=corruption_seed, access=access)
    return task, expert, Expert(task, clean=True)


__all__ = ["REWARDS", "ModAddTask", "build_problem", "modadd_step"]
