"""The native batched VectorEnv for NoisyModAdd: one numpy call steps every sub-env."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from noisy_expert_gym.envs.modadd import ENV_ID, RENDER_MODES, check_env_options
from noisy_expert_gym.problems import Problem, env_problem, problem_attribute
from noisy_expert_gym.rendering import render_ansi, render_rgb
from noisy_expert_gym.tasks.modadd import modadd_step

_METRIC_KEYS = ("full_exact", "final_exact", "num_errors", "correct_prefix_len")


class NoisyModAddVectorEnv(VectorEnv):
    """``num_envs`` NoisyModAdd envs stepped as one batch (see :class:`NoisyModAddEnv`).

    Sub-env i draws from its own generator seeded ``seed + i``, exactly as
    ``SyncVectorEnv`` seeds N single envs, so observations and rewards equal
    those of N single envs with the corresponding seeds. Autoreset mode:
    ``NEXT_STEP`` (the step after an episode ends resets that sub-env and
    ignores its action). ``expert`` answers batches of prefixes; sampling uses
    sub-env 0's generator.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "render_fps": 4, "autoreset_mode": AutoresetMode.NEXT_STEP}

    p = problem_attribute("p", lambda self: self.task.p)
    m = problem_attribute("m", lambda self: self.task.m)
    eta = problem_attribute("eta", lambda self: self.expert.eta)
    law = problem_attribute("law", lambda self: self.expert.law)

    def __init__(self, num_envs: int = 1, problem: Problem | None = None, *, reward: str = "final",
                 render_mode: str | None = None, max_episode_steps: int | None = None,
                 **problem_kwargs: Any) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"`num_envs` must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"`max_episode_steps` must be >= 1 or None, got {max_episode_steps!r}")
        check_env_options(reward, render_mode)
        problem = env_problem(ENV_ID, problem, problem_kwargs)
        self._rngs = [np.random.default_rng() for _ in range(int(num_envs))]
        # Sampling on numpy inputs uses sub-env 0's generator (re-read after reseeding).
        self.problem = problem.with_rng(lambda: self._rngs[0])
        self.task = problem.task
        self.expert, self.clean_expert = self.problem.expert, self.problem.clean_expert
        self.num_envs = int(num_envs)
        self.reward_kind = reward
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        p, m = self.task.p, self.task.m
        self.single_observation_space = spaces.Box(0, p + 1, shape=(2 * m + 1,), dtype=np.int64)
        self.single_action_space = spaces.Discrete(p)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        n = self.num_envs
        self._obs = np.zeros((n, 2 * m + 1), np.int64)
        # Per-episode caches so a step costs O(N), not O(N m) (see modadd_step):
        self._t = np.zeros(n, np.int64)  # tokens written = steps since reset
        self._sums = np.zeros((n, m), np.int64)  # the true running sums of each prompt
        self._clean = np.ones(n, bool)  # the chain so far is error-free
        self._needs_reset = np.ones(n, bool)
        self._started = False

    def _new_prompts(self, idx: np.ndarray) -> None:
        # One draw per sub-env from its own generator, exactly as the single env draws.
        m = self.m
        operands = np.concatenate([self.task.sample_prompts(self._rngs[i], 1) for i in idx])[:, :m]
        if len(idx) == self.num_envs:  # the common case: every sub-env restarts together
            self._obs[:, :m] = operands
            self._obs[:, m] = self.task.sep_token
            self._obs[:, m + 1 :] = self.task.pad_token
            self._sums[:] = self.task.true_sums(operands)
        else:
            prompts = np.concatenate([operands, np.full((len(idx), 1), self.task.sep_token)], axis=1)
            self._obs[idx] = self.task.observe(prompts, np.empty((len(idx), 0), np.int64))
            self._sums[idx] = self.task.true_sums(prompts)
        self._t[idx] = 0
        self._clean[idx] = True
        self._needs_reset[idx] = False

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        # VectorEnv.reset seeds its own np_random and only takes a python int.
        super().reset(seed=int(seed) if isinstance(seed, (int, np.integer)) else None)
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, (int, np.integer)) else seed
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
            self._rngs = [np.random.default_rng(s) if s is not None else np.random.default_rng() for s in seeds]
        self._new_prompts(np.arange(self.num_envs))
        self._started = True
        n = self.num_envs
        infos = {"step": np.zeros(n, np.int64), "_step": np.ones(n, bool),
                 "clean_so_far": np.ones(n, bool), "_clean_so_far": np.ones(n, bool)}
        return self._obs.copy(), infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be an integer array of shape ({self.num_envs},), got "
                             f"{a.dtype} {a.shape}")
        if a.min() < 0 or a.max() >= self.p:
            raise ValueError(f"actions must lie in Discrete({self.p}) i.e. 0..{self.p - 1}")
        a = a.astype(np.int64, copy=False)
        n = self.num_envs
        resetting = self._needs_reset.copy()
        active = ~resetting
        infos: dict[str, Any] = {}
        if not resetting.any():  # the fast path: O(N) with the per-episode caches, in place
            _, rewards, terminated, info = modadd_step(
                self.task, self._obs, a, self.reward_kind, t=self._t, sums=self._sums,
                clean_so_far=self._clean, inplace=True)
        elif active.any():
            idx = np.flatnonzero(active)
            new, rew, term, info = modadd_step(self.task, self._obs[idx], a[idx], self.reward_kind,
                                               t=self._t[idx], sums=self._sums[idx],
                                               clean_so_far=self._clean[idx])
            rewards, terminated = np.zeros(n, np.float64), np.zeros(n, bool)
            self._obs[idx], rewards[idx], terminated[idx] = new, rew, term
            info = {"step": _scatter(info["step"], idx, n, self._t),
                    "clean_so_far": _scatter(info["clean_so_far"], idx, n, self._clean)}
        else:
            rewards, terminated = np.zeros(n, np.float64), np.zeros(n, bool)
            info = {"step": np.zeros(n, np.int64), "clean_so_far": np.ones(n, bool)}
        # The caches hold copies: the info arrays are the caller's to keep or mutate.
        self._t[:] = info["step"]
        self._clean[:] = info["clean_so_far"]
        truncated = np.zeros(n, bool)
        if self.max_episode_steps is not None:
            # As gymnasium's TimeLimit: truncated at the limit even when also terminated.
            truncated = active & (self._t >= self.max_episode_steps)
        ended = terminated | truncated
        if resetting.any():
            self._new_prompts(np.flatnonzero(resetting))
            info["step"][resetting] = 0
            info["clean_so_far"][resetting] = True
        for k, v in info.items():
            infos[k], infos["_" + k] = v, np.ones(n, bool)
        if terminated.any():
            m = self.m
            done_obs = self._obs[terminated]
            metrics = self.task.metrics(done_obs[:, : m + 1], done_obs[:, m + 1 :])
            for k in _METRIC_KEYS:
                infos[k] = _scatter(metrics[k], np.flatnonzero(terminated), n)
                infos["_" + k] = terminated.copy()
        self._needs_reset = ended
        return self._obs.copy(), rewards, terminated, truncated, infos

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        out = []
        sums = self.task.true_sums(self._obs)
        for i in range(self.num_envs):
            chain = self._obs[i, self.m + 1 :]
            chain = chain[chain != self.task.pad_token]
            correct = chain == sums[i, : len(chain)]
            prompt = self._obs[i, : self.m]
            out.append(render_ansi(prompt, chain, correct) if self.render_mode == "ansi"
                       else render_rgb(prompt, chain, correct, num_digits=len(str(self.p + 1))))
        return tuple(out)


def _scatter(v: np.ndarray, idx: np.ndarray, n: int, fill: np.ndarray | None = None) -> np.ndarray:
    """An (n,) array holding v at idx and `fill` (or zeros) elsewhere."""
    out = np.zeros(n, dtype=v.dtype) if fill is None else fill.copy()
    out[idx] = v
    return out
