"""The MDP transition shared by the chain-of-thought tasks (modadd and the automata).

Both tasks lay an observation out as ``x_1..x_m, sep, y_1..y_t, pad...`` and
define the clean expert's next token as ``delta(y_t, x_{t+1})`` (``delta(start,
x_1)`` on the empty chain) for a task-specific transition ``delta``
(``task.transition``, ``task.start_state``). :func:`chain_step` writes one action
into each chain of a batch; the envs and the native vector envs call it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisy_expert_gym.utils import cumsum, is_torch

REWARDS: tuple[str, ...] = ("final", "full", "dense")


def where(cond: Any, a: Any, b: Any) -> Any:
    """np.where / torch.where by the kind of `cond`."""
    if is_torch(cond):
        import torch

        return torch.where(cond, a, b)
    return np.where(cond, a, b)


def gather_rows(x: Any, idx: Any) -> Any:
    """x[n, idx[n]] for a (N, L) array and (N,) indices."""
    if is_torch(x):
        return x.gather(1, idx[:, None].long())[:, 0]
    return np.take_along_axis(x, idx[:, None].astype(np.int64), axis=1)[:, 0]


def clip(x: Any, lo: int, hi: int) -> Any:
    return x.clamp(lo, hi) if is_torch(x) else np.clip(x, lo, hi)


def chain_metrics(chain: Any, states: Any, clean_along: Any) -> dict[str, Any]:
    """Per-episode clean metrics of complete chains (N, m), given the true run and the clean
    expert's token at every prefix (numpy or torch).

    - ``full_exact``: the whole chain equals the true run;
    - ``final_exact``: the last token (the answer) equals s_m;
    - ``correct_prefix_len``: length of the longest correct prefix (0..m);
    - ``num_errors``: number of slips (tokens that differ from the clean
      expert's token given the chain as written).
    """
    ok = chain == states
    full = ok.all(1)
    if is_torch(ok):
        prefix = (cumsum((~ok).long(), 1) == 0).sum(1)
    else:  # the first wrong position (argmax of a bool row), m when there is none
        prefix = np.where(full, chain.shape[1], (~ok).argmax(1))
    return {"full_exact": full, "final_exact": ok[:, -1], "correct_prefix_len": prefix,
            "num_errors": (chain != clean_along).sum(1)}


class ChainTask:
    """What every chain-of-thought task core shares (modadd, the automata): a base class.

    A subclass provides ``n`` (states = actions), ``k`` (input symbols), ``m`` (the
    horizon), ``start_state``, ``transition(states, symbols)`` (delta, elementwise),
    ``clean_chains(prompts)`` (the true run s_1..s_m, (N, m)) and ``slip_of(clean)``
    (the ``biased`` law's structured slip). Everything else of the
    :class:`~noisy_expert_gym.contracts.TaskCore` interface is written once here, on
    numpy arrays or torch tensors alike: the layout ``x_1..x_m, sep, y_1..y_t, pad...``
    with ``sep = max(n, k)`` and ``pad = sep + 1``, and the clean expert
    ``delta(y_t, x_{t+1})`` given the chain as written.
    """

    #: How error messages name the input symbols and the chain's tokens.
    symbol_name = "input symbols"
    state_name = "states"

    n: int
    k: int
    m: int

    @property
    def start_state(self) -> int:
        raise NotImplementedError

    def transition(self, states: Any, symbols: Any) -> Any:
        raise NotImplementedError

    def clean_chains(self, prompts: Any) -> Any:
        raise NotImplementedError

    def slip_of(self, clean: Any) -> Any:
        raise NotImplementedError

    # ----- sizes ---------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return self.n

    @property
    def sep_token(self) -> int:
        return max(self.n, self.k)

    @property
    def pad_token(self) -> int:
        return self.sep_token + 1

    @property
    def vocab_size(self) -> int:
        return self.sep_token + 2

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
    def num_prompts(self) -> int:
        """How many distinct prompts there are (k^m): a board's held-out set must be a small part."""
        return self.k**self.m

    @property
    def answer_mask(self) -> np.ndarray:
        """Actions the uniform part of the noise is spread over: all n states."""
        return np.ones(self.n, dtype=bool)

    # ----- prompts and observations ---------------------------------------------
    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        """Sample n prompts (N, m+1): symbols uniform in 0..k-1, then the separator."""
        if isinstance(rng, np.random.Generator):
            x = self.sample_symbols(rng, n)
            return np.concatenate([x, np.full((n, 1), self.sep_token, np.int64)], axis=1)
        import torch

        x = torch.randint(0, self.k, (n, self.m), generator=rng, device=device or rng.device)
        sep = torch.full((n, 1), self.sep_token, dtype=torch.long, device=x.device)
        return torch.cat([x, sep], dim=1)

    def sample_symbols(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The input symbols of n prompts, (N, m) int64 (numpy; ``sample_prompts`` adds the separator).

        One ``rng.integers`` call: n prompts drawn at once equal n prompts drawn one
        at a time from the same generator (the native vector env relies on it).
        """
        return rng.integers(0, self.k, size=(n, self.m), dtype=np.int64)

    def observe(self, prompts: Any, chain: Any) -> Any:
        """Observation from prompts (N, m+1) and a (possibly partial) chain (N, t)."""
        n, t = chain.shape
        if is_torch(prompts):
            import torch

            pad = torch.full((n, self.m - t), self.pad_token, dtype=torch.long, device=prompts.device)
            return torch.cat([prompts, chain.long(), pad], dim=1)
        pad = np.full((n, self.m - t), self.pad_token, np.int64)
        return np.concatenate([prompts, chain.astype(np.int64), pad], axis=1)

    def validate_obs(self, obs: Any) -> None:
        """Raise a ValueError unless `obs` is a well-formed batch (N, 2m+1) of prefixes."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_len:
            raise ValueError(
                f"observations must have shape (N, {self.obs_len}) (or ({self.obs_len},) for one) "
                f"for {self!r}; got {tuple(obs.shape)}"
            )
        lo, hi = int(obs.min()), int(obs.max())
        if lo < 0 or hi > self.pad_token:
            raise ValueError(f"observation tokens must lie in [0, {self.pad_token}], got [{lo}, {hi}]")
        if bool((obs[:, : self.m] >= self.k).any()) or bool((obs[:, self.m] != self.sep_token).any()):
            raise ValueError(
                f"observations must start with m={self.m} {self.symbol_name} in 0..{self.k - 1} "
                f"followed by the separator token {self.sep_token}"
            )
        chain = obs[:, self.m + 1 :]
        written = chain != self.pad_token
        # A chain is written left to right: no token may follow a pad.
        if bool((written[:, 1:] & ~written[:, :-1]).any()) or bool((chain[written] >= self.n).any()):
            raise ValueError(f"the chain part of an observation must be {self.state_name} in 0..{self.n - 1} "
                             "followed by padding")

    # ----- single prefixes --------------------------------------------------------
    def step_index(self, obs: Any) -> Any:
        """Number of chain tokens written so far, (N,)."""
        return (obs[:, self.m + 1 :] != self.pad_token).sum(1)

    def clean_actions(self, obs: Any) -> Any:
        """The clean expert's next token delta(y_t, x_{t+1}) at each prefix, (N,). Needs step_index < m."""
        t = self.step_index(obs)
        x_next = gather_rows(obs[:, : self.m], clip(t, 0, self.m - 1))
        y_last = gather_rows(obs[:, self.m + 1 :], clip(t - 1, 0, self.m - 1))
        prev = where(t == 0, self.start_state, y_last)  # the pad is never looked up
        return self.transition(prev, x_next)

    def has_error(self, obs: Any) -> Any:
        """Whether the chain written so far contains an error, (N,) bool."""
        chain = obs[:, self.m + 1 :]
        return ((chain != self.clean_chains(obs)) & (chain != self.pad_token)).any(1)

    def slip_actions(self, obs: Any) -> Any:
        """The ``biased`` law's structured slip at each prefix, (N,)."""
        return self.slip_of(self.clean_actions(obs))

    # ----- every prefix of complete chains (the trainers' fast path) ---------------
    def clean_along(self, prompts: Any, chain: Any) -> Any:
        """Clean expert's token at every prefix chain[:, :t], t = 0..m-1; (N, m)."""
        x = prompts[:, : self.m]
        if is_torch(chain):
            import torch

            prev = torch.cat([torch.full_like(chain[:, :1], self.start_state), chain[:, :-1]], dim=1)
        else:
            prev = np.concatenate([np.full_like(chain[:, :1], self.start_state), chain[:, :-1]], axis=1)
        return self.transition(prev, x)

    def error_along(self, prompts: Any, chain: Any) -> Any:
        """Whether chain[:, :t] already contains an error, t = 0..m-1; (N, m) bool."""
        bad = chain != self.clean_chains(prompts)
        mism = bad.long() if is_torch(bad) else bad.astype(np.int64)
        return (cumsum(mism, 1) - mism) > 0

    def slip_along(self, prompts: Any, chain: Any) -> Any:
        """``slip_actions`` at every prefix of complete chains, (N, m)."""
        return self.slip_of(self.clean_along(prompts, chain))

    def valid_along(self, prompts: Any, chain: Any) -> Any:
        """Which positions of complete chains count (all of them: no early end)."""
        if is_torch(chain):
            import torch

            return torch.ones(chain.shape, dtype=torch.bool, device=chain.device)
        return np.ones(chain.shape, dtype=bool)

    # ----- metrics ------------------------------------------------------------------
    def metrics(self, prompts: Any, chain: Any, states: Any = None) -> dict[str, Any]:
        """Per-episode clean metrics of complete chains (N, m) (:func:`chain_metrics`).

        ``full_exact``, ``final_exact``, ``correct_prefix_len`` and ``num_errors``
        (tokens that differ from the clean expert's token given the chain as
        written); ``states`` is the true run when the caller already has it.
        """
        states = self.clean_chains(prompts) if states is None else states
        return chain_metrics(chain, states, self.clean_along(prompts, chain))


def chain_step(task: Any, obs: np.ndarray, actions: np.ndarray, reward: str, *,
               t: np.ndarray | None = None, states: np.ndarray | None = None,
               clean_so_far: np.ndarray | None = None, inplace: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The MDP transition for a batch of states (numpy): write each action into its chain.

    Rewards: ``final`` 1.0 at the last step iff the answer equals s_m; ``full``
    1.0 at the last step iff the whole chain equals the true run s_1..s_m;
    ``dense`` 1/m for every step whose action equals the clean expert's action
    there (``delta(y_t, x_{t+1})``, given the chain as written).

    The keyword arguments are caches a vector env keeps per episode so a step
    costs O(N), not O(N m): ``t`` (= ``step_index(obs)``, (N,); or an int when
    every row has written the same number of tokens, for column access), ``states``
    (= ``clean_chains(obs)``, the true run), ``clean_so_far`` (the chain before
    this step is error-free); ``inplace`` writes the actions into ``obs`` itself.
    Omitted, they are computed from ``obs``: the result is the same either way.

    Returns:
        (next observations, rewards, terminated, info) with info arrays
        ``step`` (tokens written) and ``clean_so_far`` (chain still error-free).
    """
    n = obs.shape[0]
    m = task.horizon
    if t is None:
        t = task.step_index(obs)
    if states is None:
        states = task.clean_chains(obs)
    if clean_so_far is None:
        chain = obs[:, m + 1 :]
        clean_so_far = ((chain == states) | (chain == task.pad_token)).all(1)
    if isinstance(t, (int, np.integer)):  # every row has written t tokens: column access
        t = int(t)
        at: Any = np.s_[:]
        prev = obs[:, m + t] if t > 0 else np.full(n, task.start_state)
        terminated, step = np.full(n, t + 1 == m), np.full(n, t + 1, np.int64)
    else:
        at = np.arange(n)
        prev = np.where(t == 0, task.start_state, obs[at, m + t])
        terminated, step = t + 1 == m, t + 1
    ok = actions == states[at, t]  # this step writes the true state
    clean_now = clean_so_far & ok
    if reward == "final":
        rew = (terminated & ok).astype(np.float64)  # at the last step, ok means y_m == s_m
    elif reward == "full":
        rew = (terminated & clean_now).astype(np.float64)
    else:
        # The clean expert's action: delta(start, x_1) after the separator, else delta(y_t, x_{t+1}).
        rew = (actions == task.transition(prev, obs[at, t])).astype(np.float64) / m
    new = obs if inplace else obs.copy()
    new[at, m + 1 + t] = actions
    return new, rew, terminated, {"step": step, "clean_so_far": clean_now}
