"""noisy-expert-gym: token-generation MDPs with a queryable noisy expert.

Importing the package registers every env with Gymnasium::

    import gymnasium as gym
    import noisy_expert_gym  # noqa: F401  (or use the id "noisy_expert_gym:NoisyModAdd-v0")
    env = gym.make("NoisyModAdd-v0", eta=0.1)
    env.unwrapped.expert.probs(obs)  # the noisy expert pi~

The MDP and its experts exist once per process as a *problem*
(:func:`make_problem`): the envs, the trainers (``agents``) and the harness
(``scoreboards``) all take one. This package imports neither of those layers.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from noisy_expert_gym.contracts import Oracle, TaskCore
from noisy_expert_gym.envs import (
    NoisyAutomatonEnv,
    NoisyAutomatonVectorEnv,
    NoisyModAddEnv,
    NoisyModAddVectorEnv,
)
from noisy_expert_gym.noise import LAWS, NoiseLaw, noisy_probs
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.problems import ENV_IDS, FAMILIES, REGISTRY, Problem, make_problem
from noisy_expert_gym.tasks import AutomatonTask, ModAddTask

__version__ = "0.1.0"


def _register_all() -> None:
    for env_id, (family, kwargs) in REGISTRY.items():
        if env_id in registry:
            continue
        fam = FAMILIES[family]
        register(id=env_id, entry_point=fam.entry_point, vector_entry_point=fam.vector_entry_point,
                 kwargs=dict(kwargs), disable_env_checker=False)


_register_all()

__all__ = ["ENV_IDS", "LAWS", "AutomatonTask", "Expert", "ModAddTask", "NoiseLaw", "NoisyAutomatonEnv",
           "NoisyAutomatonVectorEnv", "NoisyModAddEnv", "NoisyModAddVectorEnv", "Oracle", "Problem", "TaskCore",
           "make_problem", "noisy_probs"]
