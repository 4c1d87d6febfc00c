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
    ``probs``, ``probs_along`` and ``log_prob`` raise ``ExpertAccessError``. With
    ``access="topk"`` and ``top_k=k`` it answers with the k most likely tokens of
    each row and their log-probabilities (``topk``, ``topk_along``; ties in
    increasing token id), and samples, as an inference server with ``logprobs=k``
    does. With ``logit_noise=sigma > 0`` every query's answer is read from its own
    perturbed row softmax(log pi~ + sigma eps), eps Gaussian (or Gumbel) per query
    and token, so two identical queries can disagree as serving replicas do
    (:mod:`noisy_expert_gym.logit_noise`).

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
      ``corruption_seed``, ``access``, ``top_k``, ``logit_noise``, ``logit_noise_dist``.
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
    - ``access`` (str, default ``"full"``): ``full``, ``topk`` (the ``top_k`` most
      likely tokens and their log-probabilities, and samples) or ``sample`` (sampled
      tokens only). The clean expert is always ``full``.
    - ``top_k`` (int, default None): tokens per answer with ``access="topk"``, in
      [1, p]; must stay None otherwise.
    - ``logit_noise`` (float, default 0.0): scale sigma >= 0 of the per-query logit
      noise (0: off).
    - ``logit_noise_dist`` (str, default ``"gaussian"``): ``gaussian`` or ``gumbel``;
      only with ``logit_noise`` > 0.
    - ``reward`` (str, default ``"final"``): ``final``, ``full``, ``dense``.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.

    ## Version History
    - v0: initial release.
    - v0 (same MDP, rewards and oracle): ``reset(options=...)`` refuses option keys
      it does not define (a ValueError) instead of silently ignoring them; an empty
      dict or None is accepted as before.
    - v0 (no change for existing kwargs; their outputs are bit-identical): laws
      ``corrupted`` and ``corrupted-absorbing`` with kwargs ``kappa`` and
      ``corruption_seed``; kwarg ``access`` (``full`` / ``sample``); the expert's
      ``sample_along``.
    - v0 (no change for existing kwargs; their outputs are bit-identical): kwarg
      ``access="topk"`` with ``top_k`` (the expert's ``topk`` / ``topk_along``); kwargs
      ``logit_noise`` and ``logit_noise_dist`` (off by default: no draw is made, so
      seeded rollouts are unchanged). No version bump: new optional kwargs whose
      defaults keep the MDP, rewards and oracle as they were.
    - v0 (same MDP, rewards and oracle): ``eta`` given a string, None or a boolean is
      refused as not a number (``eta=True`` was read as 1).
    """

    ENV_ID = ENV_ID

    # The problem's parameters, read from the task core and the noise law (stored once).
    p = problem_attribute("p", lambda self: self.task.p)
    m = problem_attribute("m", lambda self: self.task.m)


__all__ = ["ENV_ID", "RENDER_MODES", "NoisyModAddEnv", "check_action", "check_env_options", "check_reset_options"]
