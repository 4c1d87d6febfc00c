"""The native batched VectorEnv shared by the chain-of-thought tasks: one numpy call steps every sub-env.

Each registered vector env (``envs/modadd_vector.py``, ``envs/automaton_vector.py``)
is this class with its id and documentation. It equals ``SyncVectorEnv`` over N
single envs seeded ``seed + i`` -- observations, rewards, terminations,
truncations and infos -- in every autoreset mode and for every reset option
Gymnasium defines (``reset_mask``); unknown options are refused.

Speed: a step costs O(N) numpy work with per-episode caches (tokens written, the
true run, whether the chain is still clean). Each sub-env keeps its own
generator, as a single env does; prompts (and their true runs, one batched
``clean_chains`` call per refill) are drawn from it ahead of time in blocks of
1, 2, 4, ... up to 256 episodes (``sample_symbols(rng, K)`` equals K draws of one
prompt, so the streams are the single envs' own), because a numpy
``Generator.integers`` call costs tens of microseconds and one call per sub-env
per episode would dominate. The buffers take at most 16 MiB. Sub-env 0's
generator is shared with the vector env's expert (numpy sampling), so its
prompts are drawn one at a time, in call order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from noisy_expert_gym.envs.chain import (
    RENDER_MODES,
    chain_parts,
    check_env_options,
    check_reset_options,
    num_digits,
)
from noisy_expert_gym.oracle import RngOf
from noisy_expert_gym.problems import Problem, env_problem, problem_attribute
from noisy_expert_gym.rendering import render_ansi, render_rgb
from noisy_expert_gym.tasks.chain import chain_step
from noisy_expert_gym.utils import did_you_mean

METRIC_KEYS = ("full_exact", "final_exact", "num_errors", "correct_prefix_len")
RESET_OPTIONS = ("reset_mask",)
#: Most prompts held ahead per sub-env, and the memory the prompt buffers may take in all.
_MAX_BLOCK, _BUFFER_BYTES = 256, 16 << 20


def autoreset_mode_of(mode: Any) -> AutoresetMode:
    """An AutoresetMode from the enum or its value (``"NextStep"``, ``"SameStep"``, ``"Disabled"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    valid = [m.value for m in AutoresetMode]
    if mode not in valid:
        raise ValueError(f"unknown `autoreset_mode` {mode!r}; valid values: AutoresetMode.NEXT_STEP, "
                         f"SAME_STEP, DISABLED (or {', '.join(valid)}).{did_you_mean(str(mode), valid)}")
    return AutoresetMode(mode)


def check_reset_mask(mask: Any, num_envs: int) -> np.ndarray:
    """Gymnasium's checks of ``options["reset_mask"]`` (the same errors as SyncVectorEnv)."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"`options['reset_mask']` must be a numpy array, got {type(mask)}")
    if mask.shape != (num_envs,):
        raise ValueError(f"`options['reset_mask']` must have shape `({num_envs},)`, got {mask.shape}")
    if mask.dtype != np.bool_:
        raise TypeError(f"`options['reset_mask']` must have `dtype=np.bool_`, got {mask.dtype}")
    if not mask.any():
        raise ValueError("`options['reset_mask']` must contain a boolean array with at least one True value, "
                         f"got reset_mask={mask}")
    return mask.copy()


class ChainVectorEnv(VectorEnv):
    """``num_envs`` chain-of-thought envs stepped as one batch (see the registered subclasses)."""

    ENV_ID: ClassVar[str]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "render_fps": 4,
                                          "autoreset_mode": AutoresetMode.NEXT_STEP}

    eta = problem_attribute("eta", lambda self: self.expert.eta)
    law = problem_attribute("law", lambda self: self.expert.law)

    def __init__(self, num_envs: int = 1, problem: Problem | None = None, *, reward: str = "final",
                 render_mode: str | None = None, max_episode_steps: int | None = None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 **problem_kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"`num_envs` must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"`max_episode_steps` must be >= 1 or None, got {max_episode_steps!r}")
        check_env_options(reward, render_mode)
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        problem = env_problem(self.ENV_ID, problem, problem_kwargs)
        n = self.num_envs = int(num_envs)
        self._rngs = [np.random.default_rng() for _ in range(n)]
        # Sampling on numpy inputs uses sub-env 0's generator (re-read after reseeding).
        self.problem = problem.with_rng(RngOf(self, "_rngs", 0))
        self.task = task = problem.task
        self.expert, self.clean_expert = self.problem.expert, self.problem.clean_expert
        self.reward_kind = reward
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        m = task.horizon
        self.single_observation_space = spaces.Box(0, task.pad_token, shape=(task.obs_len,), dtype=np.int64)
        self.single_action_space = spaces.Discrete(task.num_actions)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self._obs = np.zeros((n, task.obs_len), np.int64)
        # Per-episode caches so a step costs O(N), not O(N m) (see chain_step):
        self._t = np.zeros(n, np.int64)  # tokens written = steps since reset
        self._states = np.zeros((n, m), np.int64)  # the true run of each prompt
        self._clean = np.ones(n, bool)  # the chain so far is error-free
        self._needs_reset = np.zeros(n, bool)  # ended: autoreset next step (or reset_mask when DISABLED)
        self._started = False
        # Prompts drawn ahead from each sub-env's generator (not sub-env 0's: see the module docstring),
        # with their true runs (one batched clean_chains call per refill, not one per episode).
        sym_dtype, state_dtype = _uint_for(task.sep_token), _uint_for(task.num_actions - 1)
        per_prompt = m * (np.dtype(sym_dtype).itemsize + np.dtype(state_dtype).itemsize)
        self._block_max = int(np.clip(_BUFFER_BYTES // (n * per_prompt), 1, _MAX_BLOCK))
        self._buf = np.zeros((n, self._block_max, m), sym_dtype)
        self._buf_states = np.zeros((n, self._block_max, m), state_dtype)
        self._buf_pos = np.zeros(n, np.int64)
        self._buf_len = np.zeros(n, np.int64)
        self._block = np.ones(n, np.int64)  # the next refill's size: doubles up to _block_max

    # ----- prompts ---------------------------------------------------------------
    def _reseed(self, i: int, seed: int) -> None:
        self._rngs[i] = np.random.default_rng(seed)
        self._buf_pos[i] = self._buf_len[i] = 0
        self._block[i] = 1

    def _refill(self, need: np.ndarray) -> None:
        """Draw the next block of prompts of each sub-env in `need` from its own generator."""
        m, sizes = self.task.horizon, self._block[need].copy()
        symbols = np.concatenate([self.task.sample_symbols(self._rngs[i], int(size))
                                  for i, size in zip(need, sizes)])
        runs = self.task.clean_chains(symbols)
        if (sizes == sizes[0]).all():  # the common case: sub-envs that run in lockstep
            size = int(sizes[0])
            self._buf[need, :size] = symbols.reshape(len(need), size, m)
            self._buf_states[need, :size] = runs.reshape(len(need), size, m)
        else:
            ends = np.cumsum(sizes)
            for i, size, end in zip(need, sizes, ends):
                self._buf[i, :size] = symbols[end - size : end]
                self._buf_states[i, :size] = runs[end - size : end]
        self._buf_pos[need], self._buf_len[need] = 0, sizes
        self._block[need] = np.minimum(2 * sizes, self._block_max)

    def _draw(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next buffered prompt of each sub-env in `idx` (sorted): (symbols, true runs), (len(idx), m).

        Sub-env 0's row is a placeholder (it has no buffer): :meth:`_new_prompts` draws it.
        The arrays may be views of the buffers, in their small dtypes.
        """
        need = idx[(self._buf_pos[idx] >= self._buf_len[idx]) & (idx != 0)]
        if len(need):
            self._refill(need)
        pos = self._buf_pos[idx]
        if len(idx) == self.num_envs > 1 and (pos[1:] == pos[-1]).all():  # in lockstep: one column
            symbols, states = self._buf[:, pos[-1]], self._buf_states[:, pos[-1]]
        else:
            symbols, states = self._buf[idx, pos], self._buf_states[idx, pos]
        self._buf_pos[idx] += 1
        self._buf_pos[0] = 0
        return symbols, states

    def _new_prompts(self, idx: np.ndarray) -> None:
        task, m = self.task, self.task.horizon
        symbols, states = self._draw(idx)
        rows = slice(None) if len(idx) == self.num_envs else idx  # the common case: every sub-env restarts
        self._obs[rows, :m] = symbols
        self._obs[rows, m] = task.sep_token
        self._obs[rows, m + 1 :] = task.pad_token
        self._states[rows] = states
        if idx[0] == 0:  # sub-env 0: one prompt at a time, in call order with the expert's draws
            x = task.sample_symbols(self._rngs[0], 1)
            self._obs[0, :m], self._states[0] = x[0], task.clean_chains(x)[0]
        self._t[rows] = 0
        self._clean[rows] = True
        self._needs_reset[rows] = False

    # ----- the Gymnasium API --------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env, or those in ``options["reset_mask"]`` (the others keep their state)."""
        n = self.num_envs
        check_reset_options(options, RESET_OPTIONS)
        mask = None
        if options is not None and "reset_mask" in options:
            mask = check_reset_mask(options["reset_mask"], n)
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"got {len(seeds)} seeds for {n} envs")
        # VectorEnv.reset seeds its own np_random and only takes a python int.
        super().reset(seed=int(seed) if isinstance(seed, (int, np.integer)) else None)
        idx = np.arange(n) if mask is None else np.flatnonzero(mask)
        for i in idx:
            if seeds[i] is not None:  # None keeps the sub-env's generator, as Env.reset(seed=None) does
                self._reseed(int(i), seeds[i])
        self._new_prompts(idx)
        self._started = True
        on = np.ones(n, bool) if mask is None else mask
        infos = {"step": np.zeros(n, np.int64), "_step": on.copy(),
                 "clean_so_far": on.copy(), "_clean_so_far": on.copy()}
        return self._obs.copy(), infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        n, num_actions = self.num_envs, self.task.num_actions
        a = np.asarray(actions)
        if a.shape != (n,) or a.dtype.kind not in "iu":
            raise ValueError(f"actions must be an integer array of shape ({n},), got {a.dtype} {a.shape}")
        # One comparison: a negative int64 viewed as uint64 is huge.
        if (a.view(np.uint64) >= num_actions).any() if a.dtype == np.int64 else (
                a.min() < 0 or a.max() >= num_actions):
            raise ValueError(f"actions must lie in Discrete({num_actions}) i.e. 0..{num_actions - 1}")
        resetting = self._needs_reset.copy()
        any_resetting = bool(resetting.any())
        if any_resetting and self.autoreset_mode == AutoresetMode.DISABLED:
            raise RuntimeError(f"sub-envs {np.flatnonzero(resetting).tolist()} have ended and autoreset_mode "
                               "is DISABLED: reset them first with reset(options={'reset_mask': mask})")
        a = a.astype(np.int64, copy=False)
        if not any_resetting:  # the fast path: O(N) with the per-episode caches, in place
            t0 = self._t[0]
            t = int(t0) if (self._t == t0).all() else self._t  # in lockstep: column access
            _, rewards, terminated, info = chain_step(
                self.task, self._obs, a, self.reward_kind, t=t, states=self._states,
                clean_so_far=self._clean, inplace=True)
            active = None
        else:  # NEXT_STEP: the sub-envs that ended last step reset now and ignore their action
            active = ~resetting
            idx = np.flatnonzero(active)
            rewards, terminated = np.zeros(n, np.float64), np.zeros(n, bool)
            info = {"step": np.zeros(n, np.int64), "clean_so_far": np.ones(n, bool)}
            if len(idx):
                new, rew, term, sub = chain_step(self.task, self._obs[idx], a[idx], self.reward_kind,
                                                 t=self._t[idx], states=self._states[idx],
                                                 clean_so_far=self._clean[idx])
                self._obs[idx], rewards[idx], terminated[idx] = new, rew, term
                info["step"][idx], info["clean_so_far"][idx] = sub["step"], sub["clean_so_far"]
        # The caches hold copies: the info arrays are the caller's to keep or mutate.
        self._t[:] = info["step"]
        self._clean[:] = info["clean_so_far"]
        truncated = np.zeros(n, bool)
        if self.max_episode_steps is not None:
            # As gymnasium's TimeLimit: truncated at the limit even when also terminated.
            truncated = self._t >= self.max_episode_steps
            if active is not None:
                truncated &= active
        ended = terminated | truncated
        infos: dict[str, Any] = {}
        for key, v in info.items():
            infos[key], infos["_" + key] = v, np.ones(n, bool)
        if terminated.any():
            done = np.flatnonzero(terminated)
            rows = slice(None) if len(done) == n else done
            m = self.task.horizon
            done_obs = self._obs[rows]
            metrics = self.task.metrics(done_obs[:, : m + 1], done_obs[:, m + 1 :], states=self._states[rows])
            for key in METRIC_KEYS:
                infos[key] = metrics[key] if len(done) == n else _scatter(metrics[key], done, n)
                infos["_" + key] = terminated.copy()
        if any_resetting:
            self._new_prompts(np.flatnonzero(resetting))
            infos["step"][resetting] = 0
            infos["clean_so_far"][resetting] = True
        if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
            infos = self._same_step_reset(ended, infos)
        else:
            self._needs_reset = ended
        return self._obs.copy(), rewards, terminated, truncated, infos

    def _same_step_reset(self, ended: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        """SAME_STEP: the ended sub-envs' final observation and info go to ``final_*``; they reset now."""
        n = self.num_envs
        done = np.flatnonzero(ended)
        final_obs = np.full(n, None, dtype=object)
        for i in done:
            final_obs[i] = self._obs[i].copy()
        final_info: dict[str, Any] = {}
        for key in [k for k in infos if not k.startswith("_")]:
            mask = infos["_" + key] & ended
            if mask.any():
                final_info[key] = np.where(mask, infos[key], np.zeros_like(infos[key]))
                final_info["_" + key] = mask
        # After the reset an ended sub-env's info is its reset info: step 0, clean, no metrics.
        out = {"step": infos["step"], "_step": infos["_step"],
               "clean_so_far": infos["clean_so_far"], "_clean_so_far": infos["_clean_so_far"]}
        for key in METRIC_KEYS:
            if key in infos and (infos["_" + key] & ~ended).any():
                out[key], out["_" + key] = infos[key], infos["_" + key] & ~ended
        self._new_prompts(done)
        out["step"][ended] = 0
        out["clean_so_far"][ended] = True
        out["final_obs"], out["_final_obs"] = final_obs, ended.copy()
        out["final_info"], out["_final_info"] = final_info, ended.copy()
        return out

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        out = []
        for i in range(self.num_envs):
            prompt, chain, correct = chain_parts(self.task, self._obs[i], self._states[i])
            out.append(render_ansi(prompt, chain, correct) if self.render_mode == "ansi"
                       else render_rgb(prompt, chain, correct, num_digits=num_digits(self.task)))
        return tuple(out)


def _uint_for(top: int) -> type:
    """The smallest integer dtype that holds 0..top."""
    return next(d for d in (np.uint8, np.uint16, np.int32, np.int64) if np.iinfo(d).max >= top)


def _scatter(v: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    """An (n,) array holding v at idx and zeros elsewhere."""
    out = np.zeros(n, dtype=v.dtype)
    out[idx] = v
    return out
