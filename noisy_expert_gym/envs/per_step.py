"""NoisyPerStepAutomaton: state tracking whose rule changes with the step, with a queryable noisy expert."""

from __future__ import annotations

from noisy_expert_gym.envs.chain import ChainEnv
from noisy_expert_gym.problems import problem_attribute

ENV_ID = "NoisyPerStepAutomaton-v0"


def kwarg_attribute(name: str) -> property:
    """An env attribute read from the problem's keyword arguments (defaults resolved)."""
    return problem_attribute(name, lambda self: self.problem.kwargs[name])


class PerStepAttributes:
    """The problem's parameters as read-only attributes (stored once, in the task core and its kwargs)."""

    n = problem_attribute("n", lambda self: self.task.n)
    k = problem_attribute("k", lambda self: self.task.symbols_per_step)
    m = problem_attribute("m", lambda self: self.task.m)
    period = problem_attribute("period", lambda self: self.task.period)
    automaton = kwarg_attribute("automaton")
    automaton_seed = kwarg_attribute("automaton_seed")
    relabel_seed = kwarg_attribute("relabel_seed")


class NoisyPerStepAutomatonEnv(PerStepAttributes, ChainEnv):
    """State tracking whose rule changes with the step, imitated from a noisy expert.

    ## Description
    The agent reads m input symbols x_1..x_m and writes the run s_t = delta_t(s_{t-1}, x_t) of
    an automaton with n states from the start state s_0, one state per step; s_m is the answer.
    Unlike ``NoisyAutomaton-v0`` the rule changes with the step: position t (1-based) uses rule
    block (t - 1) mod P of P blocks, each k input symbols acting on the states (docs/design.md
    §3.4; :mod:`noisy_expert_gym.tasks.per_step`). P = m (the default) is a new rule at every
    step -- the "combination lock" of Misra et al. (2020) in which offline imitation needs
    samples exponential in the horizon (Block et al., arXiv 2606.30923) -- P = 1 one shared
    rule. The env carries a queryable *noisy expert* ``env.unwrapped.expert`` (pi~): the clean
    expert passed through a noise law. Agents learn from expert queries; they are judged by
    the clean metrics.

    Each block has its own symbol tokens and position t draws its symbol from its block's
    tokens only, so a token names its rule ("blocks" encoding): the per-step rule is a plain
    (state, token) -> state table, and nothing a student learns at one position transfers to
    a position of another block.

    Blocks (``automaton``):
    - ``random`` (default, ``NoisyPerStepAutomaton-v0``): k distinct uniformly random
      permutations of the n states per block, drawn block after block from
      ``automaton_seed`` (block b does not depend on P or m: nested instances; at P = 1 the
      task is ``NoisyAutomaton-v0``'s with the same n, k and seed whenever that automaton's k
      permutations are distinct).
    - ``modadd`` (``NoisyPerStepModAdd-v0``): Z_p with k = p symbols per block, symbol j of
      block b adding sigma_b(j) mod p; sigma_0 is the identity (P = 1 is ``NoisyModAdd-v0``
      with p = n) and sigma_b (b >= 1) a random permutation of Z_p drawn from ``automaton_seed``.
    ``relabel_seed`` gives a secret isomorphic copy (symbol and state ids permuted).

    The clean expert (``env.unwrapped.clean_expert``, evaluation and reference baselines
    only) answers the next state *given the chain as written*: delta_t(y_{t-1}, x_t),
    delta_1(s_0, x_1) first; it carries a slip forward.

    Noise laws (``law``), with U uniform over the n states:
    - ``absorbing`` (default): (1-eta) pi* + eta U while the prefix is error-free; U at
      every step once it contains an error (detected from the prefix).
    - ``mixture``: (1-eta) pi* + eta U everywhere.
    - ``biased``: (1-eta) pi* + eta delta(slip(clean)), slip = the next state id (mod n).
    - ``corrupted``, ``corrupted-absorbing``: a hidden per-prefix wrong token (see NoisyModAdd).

    ## Action Space
    ``Discrete(n)``: the next state.

    ## Observation Space
    ``Box(0, max(n, P k) + 1, (2m+1,), int64)``: x_1..x_m (symbol tokens 0..P k - 1; position t
    holds one of its block's k tokens), the separator token ``max(n, P k)``, then the chain
    written so far (state ids), padded with token ``max(n, P k) + 1``.

    ## Starting State
    Each input symbol x_t drawn uniformly from its block's k tokens with the env's seeded RNG;
    empty chain.

    ## Rewards
    - ``final`` (default): 1.0 at the last step iff the answer equals s_m, else 0.
    - ``full``: 1.0 at the last step iff the whole chain equals s_1..s_m.
    - ``dense``: 1/m at each step whose action is the clean expert's action there.

    ## Episode End
    Terminated after exactly m actions. No truncation unless a ``TimeLimit``
    (``max_episode_steps``) shorter than m is applied. Stepping after the end raises; call
    ``reset()``.

    ## Information
    - ``step`` (int): number of chain tokens written.
    - ``clean_so_far`` (bool): the chain written so far equals the true run.
    - At the last step also: ``full_exact`` (bool), ``final_exact`` (bool), ``num_errors``
      (int, tokens differing from the clean expert's token given the chain as written),
      ``correct_prefix_len`` (int, longest correct prefix).

    ## Arguments
    - ``problem`` (Problem, default None): serve this problem
      (:func:`noisy_expert_gym.make_problem`) instead of building one from the arguments below.
    - ``automaton`` (str, default ``"random"``): ``random`` or ``modadd``.
    - ``n`` (int, default None = 3): states (``modadd``: p), in [2, 1024].
    - ``k`` (int, default None): symbols per position; ``random``: 2, at most n!; ``modadd``: p.
    - ``m`` (int, default 5): input symbols per prompt = chain length = horizon, >= 1.
    - ``period`` (int, default None = m): P, the number of rule blocks, in [1, m]; P k <= 1024.
    - ``eta`` (float, default 0.5): noise level in [0, 1].
    - ``law`` (str, default ``"absorbing"``): ``absorbing``, ``mixture``, ``biased``,
      ``corrupted``, ``corrupted-absorbing``.
    - ``kappa`` (float, default 1.0), ``corruption_seed`` (int, default 0): the hidden
      corruption's concentration and secret seed (corruption laws only).
    - ``access`` (str, default ``"full"``): ``full`` or ``sample`` (the noisy expert answers
      with sampled tokens only).
    - ``automaton_seed`` (int, default None = 0): the blocks' seed.
    - ``relabel_seed`` (int, default None): a secret relabelling of symbol and state ids.
    - ``reward`` (str, default ``"final"``): ``final``, ``full``, ``dense``.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.

    The defaults (n = 3, k = 2, m = 5, P = m, absorbing eta = 0.5) are the largest horizon of
    ``make quick``, the main job (scoreboards/sweeps/shipped_specs/quick.toml).

    ## Version History
    - v0: initial release (issue 22).
    - v0 (same MDP, rewards and oracle): ``task.num_prompts`` counts the k^m prompts the env
      can draw (it counted (P k)^m, every symbol token at every position); ``eta`` given a
      string, None or a boolean is refused as not a number (``eta=True`` was read as 1).
    """

    ENV_ID = ENV_ID


__all__ = ["ENV_ID", "NoisyPerStepAutomatonEnv", "PerStepAttributes"]
