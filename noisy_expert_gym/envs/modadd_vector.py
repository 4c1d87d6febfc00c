"""The native batched VectorEnv for NoisyModAdd: one numpy call steps every sub-env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from noisy_expert_gym.envs.modadd import RENDER_MODES, check_modadd_kwargs
from noisy_expert_gym.oracle import Expert
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

    metadata = {"render_modes": RENDER_MODES, "render_fps": 4, "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, p: int = 7, m: int = 31, eta: float = 0.1,
                 law: str = "absorbing", reward: str = "final", render_mode: str | None = None,
                 max_episode_steps: int | None = None) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"`num_envs` must be an integer >= 1, got {num_envs!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"`max_episode_steps` must be >= 1 or None, got {max_episode_steps!r}")
        self.task = check_modadd_kwargs(p, m, eta, law, reward, render_mode)
        self.num_envs = int(num_envs)
        self.p, self.m, self.eta, self.law, self.reward_kind = p, m, float(eta), law, reward
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = spaces.Box(0, p + 1, shape=(2 * m + 1,), dtype=np.int64)
        self.single_action_space = spaces.Discrete(p)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self.expert = Expert(self.task, law=law, eta=eta, rng=lambda: self._rngs[0])
        self.clean_expert = Expert(self.task, clean=True, rng=lambda: self._rngs[0])
        self._obs = np.zeros((self.num_envs, 2 * m + 1), np.int64)
        self._elapsed = np.zeros(self.num_envs, np.int64)
        self._needs_reset = np.ones(self.num_envs, bool)
        self._started = False

    def _new_prompts(self, idx: np.ndarray) -> None:
        # One draw per sub-env from its own generator, as the single env draws.
        prompts = np.concatenate([self.task.sample_prompts(self._rngs[i], 1) for i in idx])
        self._obs[idx] = self.task.observe(prompts, np.empty((len(idx), 0), np.int64))
        self._elapsed[idx] = 0
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
        n = self.num_envs
        rewards = np.zeros(n, np.float64)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        resetting = self._needs_reset.copy()
        active = ~resetting
        infos: dict[str, Any] = {}
        if active.all():
            new, rew, term, info = modadd_step(self.task, self._obs, a.astype(np.int64), self.reward_kind)
            self._obs, rewards, terminated = new, rew, term
        elif active.any():
            idx = np.flatnonzero(active)
            new, rew, term, info = modadd_step(self.task, self._obs[idx], a[idx].astype(np.int64),
                                               self.reward_kind)
            self._obs[idx], rewards[idx], terminated[idx] = new, rew, term
            info = {k: _scatter(v, idx, n) for k, v in info.items()}
        else:
            info = {"step": np.zeros(n, np.int64), "clean_so_far": np.ones(n, bool)}
        self._elapsed[active] += 1
        if self.max_episode_steps is not None:
            # As gymnasium's TimeLimit: truncated at the limit even when also terminated.
            truncated = active & (self._elapsed >= self.max_episode_steps)
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


def _scatter(v: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=v.dtype)
    out[idx] = v
    return out
