"""The native batched VectorEnv for NoisyAutomaton (random automata, S5, modadd)."""

from __future__ import annotations

from noisy_expert_gym.envs.automaton import ENV_ID, AutomatonAttributes
from noisy_expert_gym.envs.chain_vector import ChainVectorEnv


class NoisyAutomatonVectorEnv(AutomatonAttributes, ChainVectorEnv):
    """``num_envs`` NoisyAutomaton envs stepped as one batch (see :class:`NoisyAutomatonEnv`).

    ``gym.make_vec("NoisyS5-v0", num_envs=N, ...)`` builds it (the registered
    ``vector_entry_point`` of every NoisyAutomaton id); it takes the single env's
    keyword arguments plus ``max_episode_steps`` (as Gymnasium's ``TimeLimit``)
    and ``autoreset_mode``. It equals ``SyncVectorEnv`` over N single envs seeded
    ``seed + i`` step for step (observations, rewards, terminations,
    truncations, infos); the clean expert's step is one table gather for the batch.

    ## Autoreset modes
    ``NEXT_STEP`` (default), ``SAME_STEP`` (``info["final_obs"]`` /
    ``info["final_info"]``) and ``DISABLED`` (reset ended sub-envs with
    ``reset(options={"reset_mask": mask})``).

    ``expert`` and ``clean_expert`` answer at every observation ``step`` returns, so the obvious
    loop (``obs, *_ = venv.step(venv.expert.sample(obs))``) runs in every mode: under NEXT_STEP an
    ended sub-env's complete chain, whose action the env ignores, is answered as its prompt's
    first position (mask those rows out of a dataset with the last step's ``terminated | truncated``).

    ## Reset options
    ``reset_mask``: reset only the masked sub-envs; any other key raises.

    ## Version History
    - v0: initial release.
    - v0 (same MDP and rewards; no answer the expert gave before changes): under
      ``autoreset_mode`` NEXT_STEP, on the step that resets an ended sub-env (the
      action is ignored, Gymnasium's contract), ``vec.expert`` answers as at that
      sub-env's prompt's first position, where it raised; a single env's ended
      episode is still refused. No version bump.
    """

    ENV_ID = ENV_ID


__all__ = ["NoisyAutomatonVectorEnv"]
