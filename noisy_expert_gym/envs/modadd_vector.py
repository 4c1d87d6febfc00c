"""The native batched VectorEnv for NoisyModAdd: one numpy call steps every sub-env."""

from __future__ import annotations

from noisy_expert_gym.envs.chain_vector import ChainVectorEnv
from noisy_expert_gym.envs.modadd import ENV_ID
from noisy_expert_gym.problems import problem_attribute


class NoisyModAddVectorEnv(ChainVectorEnv):
    """``num_envs`` NoisyModAdd envs stepped as one batch (see :class:`NoisyModAddEnv`).

    ``gym.make_vec("NoisyModAdd-v0", num_envs=N, ...)`` builds it (the registered
    ``vector_entry_point``); it takes the single env's keyword arguments plus
    ``max_episode_steps`` (as Gymnasium's ``TimeLimit``) and ``autoreset_mode``.

    Sub-env i draws from its own generator seeded ``seed + i``, exactly as
    ``SyncVectorEnv`` seeds N single envs, so observations, rewards,
    terminations, truncations and infos equal those of
    ``gym.make_vec(..., vectorization_mode="sync")`` step for step. ``expert``
    answers batches of prefixes; its numpy sampling uses sub-env 0's generator.

    ## Autoreset modes
    ``NEXT_STEP`` (default; the step after an episode ends resets that sub-env
    and ignores its action), ``SAME_STEP`` (an ended sub-env resets in the same
    step; its last observation and info are in ``info["final_obs"]`` /
    ``info["final_info"]``) and ``DISABLED`` (the caller resets ended sub-envs
    with ``reset(options={"reset_mask": mask})``; stepping one first raises).

    ``expert`` and ``clean_expert`` answer at every observation ``step`` returns, so the obvious
    loop (``obs, *_ = venv.step(venv.expert.sample(obs))``) runs in every mode: under NEXT_STEP an
    ended sub-env's complete chain, whose action the env ignores, is answered as its prompt's
    first position (mask those rows out of a dataset with the last step's ``terminated | truncated``).

    ## Reset options
    ``reset_mask`` (a bool array of shape (num_envs,)): reset only those
    sub-envs; the others keep their episode (and a pending autoreset). Any other
    option key raises a ValueError.

    ## Version History
    - v0: initial release.
    - v0 (same MDP, rewards and oracle): ``reset(options={"reset_mask": mask})``
      resets only the masked sub-envs (it used to restart all of them, silently);
      unknown reset options raise; ``reset(seed=[..., None, ...])`` keeps a
      sub-env's generator for a None seed (as ``Env.reset(seed=None)`` does; it
      used to draw a fresh one); ``autoreset_mode`` SAME_STEP and DISABLED are
      supported.
    - v0 (same MDP and rewards; no answer the expert gave before changes): under
      ``autoreset_mode`` NEXT_STEP, on the step that resets an ended sub-env (the
      action is ignored, Gymnasium's contract), ``vec.expert`` answers as at that
      sub-env's prompt's first position, where it raised; a single env's ended
      episode is still refused. No version bump.
    """

    ENV_ID = ENV_ID

    p = problem_attribute("p", lambda self: self.task.p)
    m = problem_attribute("m", lambda self: self.task.m)


__all__ = ["NoisyModAddVectorEnv"]
