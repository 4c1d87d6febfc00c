"""The queryable expert oracle: the noisy expert pi~ and, for evaluation only, the clean pi*.

An :class:`Expert` answers for any prefix (not only an env's current state):
one observation ``(L,)`` or a batch ``(N, L)``, as numpy arrays or torch tensors
on any device. Every prefix answered counts one query. The trainers' fast path
:meth:`Expert.probs_along` answers all H prefixes of complete chains in one call
(N * H queries).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from noisy_expert_gym._util import is_torch, sample_categorical
from noisy_expert_gym.noise import NoiseLaw

RngLike = np.random.Generator | Callable[[], np.random.Generator] | None


class OracleBase:
    """Query counting and seeded randomness shared by every expert oracle.

    ``rng`` is a numpy Generator, or a zero-argument callable returning the current
    one (so an env's reseeded ``np_random`` is always used).
    """

    def __init__(self, rng: RngLike = None) -> None:
        self._rng = rng
        self._fallback_rng = np.random.default_rng()
        self._torch_gen: Any = None
        self.num_queries = 0

    #: Validate every token of numpy observations (torch inputs are checked for shape only).
    full_numpy_check = True

    def reset_queries(self) -> None:
        """Reset the query counter to zero."""
        self.num_queries = 0

    def with_rng(self, rng: RngLike) -> Any:
        """A view of this oracle drawing from `rng`, with its own query counter.

        The task core and any heavy state (an LM teacher's weights) are shared, not
        copied: this is how one problem's experts serve an env (its ``np_random``),
        a trainer and a harness at once.
        """
        view = copy.copy(self)
        view._rng, view._torch_gen, view.num_queries = rng, None, 0
        view._fallback_rng = np.random.default_rng()
        return view

    @property
    def rng(self) -> np.random.Generator:
        r = self._rng() if callable(self._rng) else self._rng
        return r if r is not None else self._fallback_rng

    def torch_generator(self, device: Any) -> Any:
        """A torch.Generator on `device`, seeded once from the numpy RNG (reproducible)."""
        import torch

        dev = torch.device(device)
        if self._torch_gen is None or self._torch_gen.device != dev:
            self._torch_gen = torch.Generator(device=dev)
            self._torch_gen.manual_seed(int(self.rng.integers(2**62)))
        return self._torch_gen


    def _batch(self, obs: Any) -> tuple[Any, bool]:
        if not is_torch(obs):
            obs = np.asarray(obs)
            if not np.issubdtype(obs.dtype, np.integer):
                raise ValueError(f"observations must be integer token ids, got dtype {obs.dtype}")
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        if is_torch(obs) or not self.full_numpy_check:
            # Shape only: a full check would synchronise the device on every query.
            if obs.ndim != 2 or obs.shape[1] != self.task.obs_len:
                self.task.validate_obs(obs)
        else:
            self.task.validate_obs(obs)
        t = self.task.step_index(obs)
        if bool((t >= self.task.horizon).any()):
            raise ValueError("an observation holds a complete chain: there is no next action to query")
        return obs, single

    def _check_prompts(self, prompts: Any, chain: Any = None) -> None:
        """Raise a ValueError unless prompts (N, P) (and complete chains (N, H)) are well formed."""
        task = self.task
        n = prompts.shape[0] if prompts.ndim == 2 else -1
        want_chain = chain is None or (chain.ndim == 2 and tuple(chain.shape) == (n, task.horizon))
        if prompts.ndim != 2 or prompts.shape[1] != task.prompt_len or not want_chain:
            got = "" if chain is None else f" and chains {tuple(chain.shape)}"
            raise ValueError(
                f"expected prompts of shape (N, {task.prompt_len})"
                + ("" if chain is None else f" and complete chains (N, {task.horizon})")
                + f"; got prompts {tuple(prompts.shape)}{got}"
            )
        if is_torch(prompts):
            return  # shapes only: a full check would synchronise the device on every query
        if chain is not None and chain.size and (chain.min() < 0 or chain.max() >= task.num_actions):
            raise ValueError(f"chain tokens must lie in [0, {task.num_actions - 1}], "
                             f"got [{chain.min()}, {chain.max()}]")
        task.validate_obs(task.observe(prompts, prompts[:, :0]))


class Expert(OracleBase):
    """A queryable expert over a deterministic-clean-expert task core.

    Args:
        task: the task core (e.g. :class:`~noisy_expert_gym.tasks.ModAddTask`).
        law: noise law (`absorbing`, `mixture`, `biased`); ignored when ``clean``.
        eta: noise level in [0, 1]; ignored when ``clean``.
        rng: numpy Generator (or a zero-argument callable returning the current
            one, so an env's reseeded ``np_random`` is always used) for
            :meth:`sample` on numpy inputs.
        clean: answer with the clean expert pi* instead. The clean expert is
            for evaluation and reference ceilings (`bc-clean`) only; leaderboard
            submissions never see it.
    """

    def __init__(self, task: Any, law: str = "absorbing", eta: float = 0.0, rng: RngLike = None,
                 clean: bool = False) -> None:
        self.task = task
        self.noise = NoiseLaw.clean() if clean else NoiseLaw(law, eta)  # validated here, once
        super().__init__(rng)

    @property
    def law(self) -> str:
        """The noise law's name (``clean`` for the clean expert)."""
        return self.noise.law

    @property
    def eta(self) -> float:
        """The noise level (0 for the clean expert)."""
        return self.noise.eta

    @property
    def is_clean(self) -> bool:
        return self.noise.is_clean

    def __repr__(self) -> str:
        return f"Expert(task={self.task}, law={self.law!r}, eta={self.eta})"

    # ----- single prefixes -----------------------------------------------------
    def _probs(self, obs: Any) -> Any:
        task = self.task
        if self.is_clean:
            return self.noise.probs(task.clean_actions(obs), None, None, task.answer_mask)
        return self.noise.probs(task.clean_actions(obs), task.has_error(obs), task.slip_actions(obs),
                                task.answer_mask)

    def probs(self, obs: Any) -> Any:
        """Next-action distribution at each prefix: (N, A) (or (A,) for one observation)."""
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        out = self._probs(obs)
        return out[0] if single else out

    def log_prob(self, obs: Any, actions: Any) -> Any:
        """log pi(a|s) for a batch of prefixes and actions, (N,)."""
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        probs = self._probs(obs)
        if is_torch(probs):
            import torch

            a = torch.as_tensor(actions, device=probs.device).long().reshape(-1)
            return probs.gather(1, a[:, None])[:, 0].log()[0 if single else slice(None)]
        a = np.asarray(actions).reshape(-1)
        if a.shape[0] != probs.shape[0]:
            raise ValueError(f"got {a.shape[0]} actions for {probs.shape[0]} observations")
        if a.min() < 0 or a.max() >= probs.shape[1]:
            raise ValueError(f"actions must lie in [0, {probs.shape[1] - 1}]")
        with np.errstate(divide="ignore"):
            out = np.log(probs[np.arange(len(a)), a])
        return out[0] if single else out

    def sample(self, obs: Any, generator: Any = None) -> Any:
        """Sample actions from the expert at each prefix, (N,) (a scalar for one observation).

        numpy inputs draw from the seeded numpy RNG (the env's ``np_random``);
        torch inputs draw from ``generator`` or one seeded from it.
        """
        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        out = sample_from(self._probs(obs), generator or self._gen_for(obs))
        return out[0] if single else out

    def _gen_for(self, x: Any) -> Any:
        return self.torch_generator(x.device) if is_torch(x) else self.rng

    # ----- every prefix of complete chains (trainers) --------------------------
    def probs_along(self, prompts: Any, chain: Any) -> Any:
        """The expert's distribution at every prefix chain[:, :t] of complete chains: (N, H, A)."""
        task = self.task
        self._check_prompts(prompts, chain)
        self.num_queries += chain.shape[0] * chain.shape[1]
        clean = task.clean_along(prompts, chain)
        if self.is_clean:
            return self.noise.probs(clean, None, None, task.answer_mask)
        return self.noise.probs(clean, task.error_along(prompts, chain), task.slip_along(prompts, chain),
                                task.answer_mask)

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The expert's own rollouts from `prompts` (its tokens fed back): chains (N, H).

        Costs N * H queries. This is how offline "noisy expert trajectories" are made.
        """
        task = self.task
        self._check_prompts(prompts)
        n = prompts.shape[0]
        gen = generator or self._gen_for(prompts)
        if is_torch(prompts):
            import torch

            chain = torch.empty((n, 0), dtype=torch.long, device=prompts.device)
            cat = lambda a, b: torch.cat([a, b[:, None]], dim=1)
        else:
            chain = np.empty((n, 0), dtype=np.int64)
            cat = lambda a, b: np.concatenate([a, b[:, None]], axis=1)
        for _ in range(task.horizon):
            obs = task.observe(prompts, chain)
            self.num_queries += n
            chain = cat(chain, sample_from(self._probs(obs), gen))
        return chain


def sample_from(probs: Any, generator: Any) -> Any:
    """One categorical draw per row of `probs` (N, A), numpy or torch (inverse CDF)."""
    return sample_categorical(probs, generator)
