"""The single env shared by the chain-of-thought tasks (NoisyModAdd, NoisyAutomaton).

Each registered env class (``envs/modadd.py``, ``envs/automaton.py``) is this
env with its id, its documentation page and its problem attributes; the MDP
itself is the task core's (:func:`noisy_expert_gym.tasks.chain.chain_step`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from noisy_expert_gym.oracle import RngOf
from noisy_expert_gym.problems import Problem, env_problem, problem_attribute
from noisy_expert_gym.rendering import render_ansi, render_rgb
from noisy_expert_gym.tasks.chain import REWARDS, chain_step
from noisy_expert_gym.utils import did_you_mean

RENDER_MODES = ["ansi", "rgb_array"]


def check_env_options(reward: str, render_mode: str | None) -> None:
    """Validate the env-only keyword arguments (the problem's are checked by its builder)."""
    if reward not in REWARDS:
        raise ValueError(
            f"unknown `reward` `{reward}`; valid values: {', '.join(REWARDS)}.{did_you_mean(reward, REWARDS)}"
        )
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(
            f"unknown `render_mode` `{render_mode}`; valid values: None, "
            f"{', '.join(RENDER_MODES)}.{did_you_mean(render_mode, RENDER_MODES)}"
        )


def check_action(action: Any, p: int) -> int:
    """An action as a plain int, or a ValueError (no silent clipping)."""
    a = np.asarray(action)
    if a.size != 1 or not np.issubdtype(a.dtype, np.integer) or not (0 <= a.item() < p):
        raise ValueError(f"action must be an integer in Discrete({p}) i.e. 0..{p - 1}, got {action!r}")
    return int(a.item())


def check_reset_options(options: dict[str, Any] | None, valid: tuple[str, ...] = ()) -> None:
    """Refuse reset options the env does not define (they would otherwise be silently ignored)."""
    if options is None:
        return
    if not isinstance(options, dict):
        raise TypeError(f"reset `options` must be a dict or None, got {type(options).__name__}")
    unknown = [k for k in options if k not in valid]
    if unknown:
        takes = f"it takes only {', '.join(repr(v) for v in valid)}" if valid else "it takes none"
        raise ValueError(f"unknown reset option(s) {', '.join(repr(k) for k in unknown)}: {takes}."
                         f"{did_you_mean(str(unknown[0]), valid)}")


def num_digits(task: Any) -> int:
    """Character cells per token in rendered frames: enough for every token id of the task."""
    return len(str(task.pad_token))


class ChainEnv(gym.Env):
    """A chain-of-thought task as a Gymnasium env (see the registered subclasses for the docs)."""

    #: The id whose problem this env serves when built from keyword arguments.
    ENV_ID: ClassVar[str]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "render_fps": 4}

    def __init__(self, problem: Problem | None = None, *, reward: str = "final",
                 render_mode: str | None = None, **problem_kwargs: Any) -> None:
        check_env_options(reward, render_mode)
        problem = env_problem(self.ENV_ID, problem, problem_kwargs)
        # The oracles draw from the env's np_random, re-read on each call so reseeding works.
        self.problem = problem.with_rng(RngOf(self, "np_random"))
        self.task = problem.task
        self.expert, self.clean_expert = self.problem.expert, self.problem.clean_expert
        self.reward_kind = reward
        self.render_mode = render_mode
        task = self.task
        self.observation_space = spaces.Box(0, task.pad_token, shape=(task.obs_len,), dtype=np.int64)
        self.action_space = spaces.Discrete(task.num_actions)
        self._obs: np.ndarray | None = None
        self._done = True

    eta = problem_attribute("eta", lambda self: self.expert.eta)
    law = problem_attribute("law", lambda self: self.expert.law)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        check_reset_options(options)
        prompt = self.task.sample_prompts(self.np_random, 1)
        self._obs = self.task.observe(prompt, np.empty((1, 0), np.int64))[0]
        # Per-episode caches (see chain_step): the true run, tokens written, chain still clean.
        self._states = self.task.clean_chains(prompt)
        self._t, self._clean = 0, np.ones(1, bool)
        self._done = False
        return self._obs.copy(), {"step": 0, "clean_so_far": True}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError(f"the episode has ended ({self.task.horizon} actions were taken); "
                               "call reset() first")
        a = check_action(action, self.task.num_actions)
        new, rew, term, info = chain_step(self.task, self._obs[None], np.array([a]), self.reward_kind,
                                          t=self._t, states=self._states, clean_so_far=self._clean)
        self._obs, self._t, self._clean = new[0], self._t + 1, info["clean_so_far"]
        terminated = bool(term[0])
        out: dict[str, Any] = {"step": int(info["step"][0]), "clean_so_far": bool(info["clean_so_far"][0])}
        if terminated:
            self._done = True
            out.update(self.episode_metrics())
        return self._obs.copy(), float(rew[0]), terminated, False, out

    def episode_metrics(self) -> dict[str, Any]:
        """Clean metrics of the finished chain (see Information)."""
        m = self.task.horizon
        prompt = self._obs[None, : m + 1]
        chain = self._obs[None, m + 1 :]
        return {k: v[0].item() for k, v in self.task.metrics(prompt, chain, states=self._states).items()}

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._obs is None:
            raise RuntimeError("call reset() before render()")
        return chain_parts(self.task, self._obs, self._states[0])

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        prompt, chain, correct = self._parts()
        if self.render_mode == "ansi":
            return render_ansi(prompt, chain, correct)
        return render_rgb(prompt, chain, correct, num_digits=num_digits(self.task))

    def close(self) -> None:
        pass


def chain_parts(task: Any, obs: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input symbols, chain written so far, which chain tokens are right) of one observation."""
    m = task.horizon
    chain = obs[m + 1 :]
    chain = chain[chain != task.pad_token]
    return obs[:m], chain, chain == states[: len(chain)]
