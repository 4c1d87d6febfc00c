"""NoisyAutomaton: state tracking (random automata, S5, modadd) with a queryable noisy expert."""

from __future__ import annotations

from noisy_expert_gym.envs.chain import ChainEnv
from noisy_expert_gym.problems import problem_attribute

ENV_ID = "NoisyAutomaton-v0"


def automaton_attribute(name: str) -> property:
    """An env attribute read from the automaton's options (resolved defaults included)."""
    return problem_attribute(name, lambda self: self.task.automaton.spec.get(name))


class AutomatonAttributes:
    """The problem's parameters as read-only attributes (stored once, in the task core)."""

    n = problem_attribute("n", lambda self: self.task.n)
    k = problem_attribute("k", lambda self: self.task.k)
    m = problem_attribute("m", lambda self: self.task.m)
    automaton = automaton_attribute("automaton")
    kind = automaton_attribute("kind")
    alphabet = automaton_attribute("alphabet")
    automaton_seed = automaton_attribute("automaton_seed")
    relabel_seed = automaton_attribute("relabel_seed")


class NoisyAutomatonEnv(AutomatonAttributes, ChainEnv):
    """State tracking with a chain of thought, imitated from a noisy expert.

    ## Description
    The agent reads m input symbols x_1..x_m and writes the run of a finite
    automaton with n states, s_t = delta(s_{t-1}, x_t) from a fixed start state
    s_0, one state per step; s_m is the answer (docs/design.md §3, "State tracking";
    :mod:`noisy_expert_gym.tasks.automaton`). The env carries a queryable *noisy
    expert* ``env.unwrapped.expert`` (pi~ of "Behavior Cloning is Not All You
    Need", arXiv 2606.30923): the clean expert passed through a noise law. Agents
    learn from expert queries; they are judged by the clean metrics.

    The clean expert (``env.unwrapped.clean_expert``, for evaluation and
    reference baselines only) answers the next state *given the chain as
    written*: delta(y_t, x_{t+1}), delta(s_0, x_1) first; it carries a slip forward.

    Automata (``automaton``):
    - ``random`` (default, ``NoisyAutomaton-v0``): a transition table drawn from
      ``automaton_seed``: ``kind="permutation"`` (each symbol permutes the
      states; ``NoisyAutomaton-v0``) or ``"dfa"`` (any table; ``NoisyDFA-v0``).
    - ``s5`` (``NoisyS5-v0``): the word problem of the symmetric group S5 (120
      states = permutations, composition as the transition), the standard hard
      state-tracking task (Liu et al. 2023, "Transformers Learn Shortcuts to
      Automata"; Merrill, Petty and Sabharwal 2024, "The Illusion of State in
      State-Space Models").
    - ``modadd``: Z_p, i.e. exactly NoisyModAdd's MDP with p = n.
    ``relabel_seed`` gives a secret isomorphic copy (symbol and state ids permuted).

    Noise laws (``law``), with U uniform over the n states:
    - ``absorbing`` (default): (1-eta) pi* + eta U while the prefix is error-free;
      U at every step once it contains an error (detected from the prefix).
    - ``mixture``: (1-eta) pi* + eta U everywhere.
    - ``biased``: (1-eta) pi* + eta delta(slip(clean)), slip = the next state id
      (mod n) in the automaton's own ids; for eta > 1/2 the clean action is no
      longer the mode.

    ## Action Space
    ``Discrete(n)``: the next state.

    ## Observation Space
    ``Box(0, max(n, k) + 1, (2m+1,), int64)``: x_1..x_m (symbol ids 0..k-1), the
    separator token ``max(n, k)``, then the chain written so far (state ids),
    padded with token ``max(n, k) + 1``. With ``automaton="modadd"`` this is
    NoisyModAdd's layout.

    ## Starting State
    Input symbols drawn uniformly from 0..k-1 with the env's seeded RNG; empty chain.

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
    - ``clean_so_far`` (bool): the chain written so far equals the true run.
    - At the last step also: ``full_exact`` (bool), ``final_exact`` (bool),
      ``num_errors`` (int, tokens differing from the clean expert's token given
      the chain as written), ``correct_prefix_len`` (int, longest correct prefix).

    ## Arguments
    - ``problem`` (Problem, default None): serve this problem
      (:func:`noisy_expert_gym.make_problem`) instead of building one from the
      arguments below.
    - ``automaton`` (str, default ``"random"``): ``random``, ``s5``, ``modadd``.
    - ``n`` (int, default None): states; ``random`` / ``modadd``: 7 by default,
      in [2, 1024]; ``s5``: 120.
    - ``k`` (int, default None): input symbols; ``random``: n by default, in
      [1, 1024]; ``modadd``: n; ``s5``: 120 (``alphabet="all"``) or 2.
    - ``m`` (int, default 31): input symbols per prompt = chain length = horizon, >= 1.
    - ``eta`` (float, default 0.1): noise level in [0, 1].
    - ``law`` (str, default ``"absorbing"``): ``absorbing``, ``mixture``, ``biased``,
      ``corrupted``, ``corrupted-absorbing`` (hidden per-state corruption; see NoisyModAdd).
    - ``kappa`` (float, default 1.0), ``corruption_seed`` (int, default 0): the hidden
      corruption's concentration and secret seed (corruption laws only).
    - ``access`` (str, default ``"full"``): ``full``, ``topk`` (the ``top_k`` most
      likely tokens and their log-probabilities, and samples) or ``sample`` (sampled
      tokens only); ``top_k`` (int, default None): tokens per answer with ``topk``.
    - ``logit_noise`` (float, default 0.0), ``logit_noise_dist`` (str, default
      ``"gaussian"``): the per-query logit noise's scale sigma and distribution
      (``gumbel`` the other); see NoisyModAdd.
    - ``kind`` (str, default None = ``"permutation"``): ``random`` only:
      ``permutation`` or ``dfa``.
    - ``alphabet`` (str, default None = ``"all"``): ``s5`` only: ``all`` (every
      element is a symbol) or ``generators`` ((0 1) and (0 1 2 3 4)).
    - ``automaton_seed`` (int, default None = 0): ``random`` only: the table's seed.
    - ``relabel_seed`` (int, default None): a secret relabelling of symbol and state ids.
    - ``reward`` (str, default ``"final"``): ``final``, ``full``, ``dense``.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"`` (multi-digit ids).

    ## Version History
    - v0: initial release.
    - v0 (no change for existing kwargs; their outputs are bit-identical): kwargs
      ``access="topk"`` with ``top_k``, ``logit_noise`` and ``logit_noise_dist`` (off
      by default). No version bump: new optional kwargs with behaviour-preserving defaults.
    - v0 (same MDP, rewards and oracle): ``eta`` given a string, None or a boolean is
      refused as not a number (``eta=True`` was read as 1).
    """

    ENV_ID = ENV_ID


__all__ = ["ENV_ID", "AutomatonAttributes", "NoisyAutomatonEnv"]
