"""The native batched VectorEnv for NoisyPerStepAutomaton (random and modadd blocks)."""

from __future__ import annotations

from noisy_expert_gym.envs.chain_vector import ChainVectorEnv
from noisy_expert_gym.envs.per_step import ENV_ID, PerStepAttributes


class NoisyPerStepAutomatonVectorEnv(PerStepAttributes, ChainVectorEnv):
    """``num_envs`` NoisyPerStepAutomaton envs stepped as one batch (see :class:`NoisyPerStepAutomatonEnv`).

    ``gym.make_vec("NoisyPerStepAutomaton-v0", num_envs=N, ...)`` builds it (the registered
    ``vector_entry_point`` of every per-step id); it takes the single env's keyword arguments
    plus ``max_episode_steps`` (as Gymnasium's ``TimeLimit``) and ``autoreset_mode``. It equals
    ``SyncVectorEnv`` over N single envs seeded ``seed + i`` step for step (observations,
    rewards, terminations, truncations, infos): the per-step task draws a batch of prompts
    with one generator call, as the shared-rule tasks do.

    ## Autoreset modes
    ``NEXT_STEP`` (default), ``SAME_STEP`` (``info["final_obs"]`` / ``info["final_info"]``)
    and ``DISABLED`` (reset ended sub-envs with ``reset(options={"reset_mask": mask})``).

    ## Reset options
    ``reset_mask``: reset only the masked sub-envs; any other key raises.

    ## Version History
    - v0: initial release (issue 22).
    - v0 (same MDP and rewards; no answer the expert gave before changes): under
      ``autoreset_mode`` NEXT_STEP, on the step that resets an ended sub-env (the
      action is ignored, Gymnasium's contract), ``vec.expert`` answers as at that
      sub-env's prompt's first position, where it raised; a single env's ended
      episode is still refused. No version bump.
    """

    ENV_ID = ENV_ID


__all__ = ["NoisyPerStepAutomatonVectorEnv"]
