"""NoisyModAdd: modular addition with chain of thought and a queryable noisy expert."""

from __future__ import annotations

from noisy_expert_gym.envs.chain import (
    RENDER_MODES,
    ChainEnv,
    check_action,
    check_env_options,
    check_reset_options,
)
from noisy_expert_gym.problems import problem_attribute

ENV_ID = "NoisyModAdd-v0"


class NoisyModAddEnv(ChainEnv):
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
      instead of building one from ``p``, ``m``, ``eta``, ``law``.
    - ``p`` (int, default 7): modulus, >= 2.
    - ``m`` (int, default 31): number of operands = chain length = horizon, >= 1.
    - ``eta`` (float, default 0.1): noise level in [0, 1].
    - ``law`` (str, default ``"absorbing"``): ``absorbing``, ``mixture``, ``biased``.
    - ``reward`` (str, default ``"final"``): ``final``, ``full``, ``dense``.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.

    ## Version History
    - v0: initial release.
    - v0 (same MDP, rewards and oracle): ``reset(options=...)`` refuses option keys
      it does not define (a ValueError) instead of silently ignoring them; an empty
      dict or None is accepted as before.
    """

    ENV_ID = ENV_ID

    # The problem's parameters, read from the task core and the noise law (stored once).
    p = problem_attribute("p", lambda self: self.task.p)
    m = problem_attribute("m", lambda self: self.task.m)


__all__ = ["ENV_ID", "RENDER_MODES", "NoisyModAddEnv", "check_action", "check_env_options", "check_reset_options"]
