"""Pure, batched task cores: the MDP of each task is defined once here.

A task core is what both the Gymnasium envs and the trainers call. Every method
takes a batch and works on numpy arrays or on torch tensors (on any device),
returning the same kind it was given. The interface (duck-typed, see
:class:`noisy_expert_gym.tasks.modadd.ModAddTask` for the reference) is:

- ``num_actions`` (A), ``vocab_size`` (input tokens), ``prompt_len`` (P, the
  separator included), ``horizon`` (H), ``obs_len`` (P + H), ``pad_token``,
  ``answer_mask`` (which actions the uniform noise is spread over);
- ``sample_prompts(rng, n)`` with a numpy ``Generator`` or ``torch.Generator``;
- ``observe(prompts, chain)`` -> observations (N, P + H);
- ``step_index(obs)``, ``clean_actions(obs)``, ``has_error(obs)``,
  ``slip_actions(obs)`` for a batch of single prefixes;
- ``clean_along(prompts, chain)``, ``error_along(prompts, chain)``,
  ``slip_along(prompts, chain)`` -> (N, H): the same at every prefix of complete
  chains (what trainers use: one call answers all H prefixes of a rollout);
- ``valid_along(prompts, chain)`` -> (N, H) bool: which positions count (trainers
  mask their loss with it; GSM-8K ends at EOS, modadd never early);
- ``clean_chains(prompts)`` and ``metrics(prompts, chain)``.

The chain-of-thought tasks (modadd, :class:`~noisy_expert_gym.tasks.automaton.AutomatonTask`)
also offer ``start_state`` and ``transition(states, symbols)`` (the clean expert's
step, which :func:`noisy_expert_gym.tasks.chain.chain_step`, the envs' transition,
uses), ``sample_symbols(rng, n)`` (a prompt's symbols; n prompts drawn at once
equal n drawn one at a time) and ``metrics(..., states=)`` (the true run when known).
"""

from noisy_expert_gym.tasks.automata import Automaton, make_automaton
from noisy_expert_gym.tasks.automaton import AutomatonTask
from noisy_expert_gym.tasks.gsm8k import GSM8KTask
from noisy_expert_gym.tasks.modadd import ModAddTask
from noisy_expert_gym.tasks.per_step import PerStepTask

__all__ = ["Automaton", "AutomatonTask", "GSM8KTask", "ModAddTask", "PerStepTask", "make_automaton"]
