"""NoisyModAdd: modular addition with chain of thought and a queryable noisy expert."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from noisy_expert_gym._util import did_you_mean
from noisy_expert_gym.problems import Problem, env_problem, problem_attribute
from noisy_expert_gym.rendering import render_ansi, render_rgb
from noisy_expert_gym.tasks.modadd import REWARDS, modadd_step

ENV_ID = "NoisyModAdd-v0"
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


class NoisyModAddEnv(gym.Env):
    """Modular addition with a chain of thought, imitated from a noisy expert.

    ## Description
    The agent reads m residues x_1..x_m (mod p) and writes the chain of thought
    of running sums s_i = (x_1 + ... + x_i) mod p, one token per step; s_m is the
    answer. The env carries a queryable *noisy expert* ``env.unwrapped.expert``
    (pi~ of the paper "Behavior Cloning is Not All You Need", arXiv 2606.30923):
    the clean expert passed through a noise law. Agents learn from expert
    queries; they are judged by the clean metrics.

    The clean expert (``env.unwrapped.clean_expert``, for evaluation and
    reference baselines only) answers the correct next step *given the chain as
    written*: (y_t + x_{t+1}) mod p, x_1 first.

    Noise laws (``law``), with U uniform over the p residues:
    - ``absorbing`` (default): (1-eta) pi* + eta U while the prefix is error-free;
      U at every step once it contains an error (detected from the prefix).
    - ``mixture``: (1-eta) pi* + eta U everywhere.
    - ``biased``: (1-eta) pi* + eta delta((clean + 1) mod p); for eta > 1/2 the
      clean action is no longer the mode.
    - ``corrupted`` (unknown corruption, our reconstruction of the paper's
      extension): (1-eta) pi* + eta c(.|s) with a hidden, state-dependent
      corruption c(.|s) = (1-kappa) U + kappa delta(w(s)); the wrong token w(s) is
      drawn per prefix, uniformly among the other residues, from a hash of the
      prefix and a secret ``corruption_seed``. The clean action stays the strict
      mode (the mode condition) iff eta < 1/(1+kappa)
      (:mod:`noisy_expert_gym.theory_corruption`).
    - ``corrupted-absorbing``: as ``corrupted`` while the prefix is error-free;
      c(.|s) at every step once it contains an error.

    With ``access="sample"`` the noisy expert answers with sampled tokens only
    (``sample``, ``sample_along``, ``rollout``), as a teacher behind an API does;
    ``probs``, ``probs_along`` and ``log_prob`` raise ``ExpertAccessError``.

    ## Action Space
    ``Discrete(p)``: the next running sum.

    ## Observation Space
    ``Box(0, p+1, (2m+1,), int64)``: x_1..x_m, the separator token ``p`` ("="),
    then the chain written so far, padded with token ``p+1``.

    ## Starting State
    Operands drawn uniformly from 0..p-1 with the env's seeded RNG; empty chain.

    ## Rewards
    - ``final`` (default): 1.0 at the last step iff the answer equals s_m, else 0.
    - ``full``: 1.0 at the last step iff the whole chain equals s_1..s_m.
    - ``dense``: 1/m at each step whose action is the clean expert's action there.

    ## Episode End
    Terminated after exactly m actions. No truncation unless a ``TimeLimit``
    (``max_episode_steps``) shorter than m is applied. Stepping after the end
    raises; call ``reset()``.

    ## Information
    - ``step`` (int): number of chain tokens written.
    - ``clean_so_far`` (bool): the chain written so far equals the true sums.
    - At the last step also: ``full_exact`` (bool), ``final_exact`` (bool),
      ``num_errors`` (int, tokens differing from the clean expert's token given
      the chain as written), ``correct_prefix_len`` (int, longest correct prefix).

    ## Arguments
    - ``problem`` (Problem, default None): serve this problem
      (:func:`noisy_expert_gym.make_problem`: its task core and experts, built once)
      instead of building one from ``p``, ``m``, ``eta``, ``law``, ``kappa``,
      ``corruption_seed``, ``access``.
    - ``p`` (int, default 7): modulus, >= 2.
    - ``m`` (int, default 31): number of operands = chain length = horizon, >= 1.
    - ``eta`` (float, default 0.1): noise level in [0, 1].
    - ``law`` (str, default ``"absorbing"``): ``absorbing``, ``mixture``, ``biased``,
      ``corrupted``, ``corrupted-absorbing``.
    - ``kappa`` (float, default 1.0): concentration of the hidden corruption in
      [0, 1] (0 near-uniform, where ``corrupted`` equals ``mixture``; 1 one wrong
      token per state). Corruption laws only: other laws must leave the default.
    - ``corruption_seed`` (int, default 0): secret seed of the corruption's wrong
      tokens, in [0, 2**64). Corruption laws only: other laws must leave the default.
    - ``access`` (str, default ``"full"``): ``full`` or ``sample`` (the noisy expert
      answers with sampled tokens only). The clean expert is always ``full``.
    - ``reward`` (str, default ``"final"``): ``final``, ``full``, ``dense``.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.

    ## Version History
    - v0: initial release.
    - v0 (no change for existing kwargs; their outputs are bit-identical): laws
      ``corrupted`` and ``corrupted-absorbing`` with kwargs ``kappa`` and
      ``corruption_seed``; kwarg ``access`` (``full`` / ``sample``); the expert's
      ``sample_along``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "render_fps": 4}

    def __init__(self, problem: Problem | None = None, *, reward: str = "final",
                 render_mode: str | None = None, **problem_kwargs: Any) -> None:
        check_env_options(reward, render_mode)
        problem = env_problem(ENV_ID, problem, problem_kwargs)
        # The oracles draw from the env's np_random, re-read on each call so reseeding works.
        self.problem = problem.with_rng(lambda: self.np_random)
        self.task = problem.task
        self.expert, self.clean_expert = self.problem.expert, self.problem.clean_expert
        self.reward_kind = reward
        self.render_mode = render_mode
        p, m = self.task.p, self.task.m
        self.observation_space = spaces.Box(0, p + 1, shape=(2 * m + 1,), dtype=np.int64)
        self.action_space = spaces.Discrete(p)
        self._obs: np.ndarray | None = None
        self._done = True

    # The problem's parameters, read from the task core and the noise law (stored once).
    p = problem_attribute("p", lambda self: self.task.p)
    m = problem_attribute("m", lambda self: self.task.m)
    eta = problem_attribute("eta", lambda self: self.expert.eta)
    law = problem_attribute("law", lambda self: self.expert.law)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        prompt = self.task.sample_prompts(self.np_random, 1)
        self._obs = self.task.observe(prompt, np.empty((1, 0), np.int64))[0]
        self._done = False
        return self._obs.copy(), {"step": 0, "clean_so_far": True}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended (m actions were taken); call reset() first")
        a = check_action(action, self.p)
        new, rew, term, info = modadd_step(self.task, self._obs[None], np.array([a]), self.reward_kind)
        self._obs = new[0]
        terminated = bool(term[0])
        out: dict[str, Any] = {"step": int(info["step"][0]), "clean_so_far": bool(info["clean_so_far"][0])}
        if terminated:
            self._done = True
            out.update(self.episode_metrics())
        return self._obs.copy(), float(rew[0]), terminated, False, out

    def episode_metrics(self) -> dict[str, Any]:
        """Clean metrics of the finished chain (see Information)."""
        prompt = self._obs[None, : self.m + 1]
        chain = self._obs[None, self.m + 1 :]
        return {k: v[0].item() for k, v in self.task.metrics(prompt, chain).items()}

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._obs is None:
            raise RuntimeError("call reset() before render()")
        prompt = self._obs[: self.m]
        chain = self._obs[self.m + 1 :]
        chain = chain[chain != self.task.pad_token]
        correct = chain == self.task.true_sums(self._obs[None])[0, : len(chain)]
        return prompt, chain, correct

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        prompt, chain, correct = self._parts()
        if self.render_mode == "ansi":
            return render_ansi(prompt, chain, correct)
        return render_rgb(prompt, chain, correct, num_digits=len(str(self.p + 1)))

    def close(self) -> None:
        pass
