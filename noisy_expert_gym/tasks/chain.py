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

from noisy_expert_gym._util import cumsum, is_torch

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
