"""noisy-expert-gym: token-generation MDPs with a queryable noisy expert.

Importing the package registers every env with Gymnasium::

    import gymnasium as gym
    import noisy_expert_gym  # noqa: F401  (or use the id "noisy_expert_gym:NoisyModAdd-v0")
    env = gym.make("NoisyModAdd-v0", eta=0.1)
    env.unwrapped.expert.probs(obs)  # the noisy expert pi~
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from noisy_expert_gym.envs import NoisyModAddEnv, NoisyModAddVectorEnv
from noisy_expert_gym.noise import LAWS, noisy_probs
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks import ModAddTask

__version__ = "0.1.0"

_MODADD = "noisy_expert_gym.envs.modadd:NoisyModAddEnv"
_MODADD_VEC = "noisy_expert_gym.envs.modadd_vector:NoisyModAddVectorEnv"
_GSM8K = "noisy_expert_gym.envs.gsm8k:NoisyGSM8KEnv"

#: Every env id this package registers, with the kwargs that define the variant.
#: NoisyGSM8K-v0 needs the GSM-8K data (``data_dir=``, ``$NEG_GSM8K_DIR`` or `datasets`).
ENV_IDS: dict[str, dict] = {
    "NoisyModAdd-v0": {},
    # The paper's horizon ablation (m = 31 is the default id above).
    **{f"NoisyModAdd-m{m}-v0": {"m": m} for m in (3, 9, 15, 23)},
    "NoisyModAddMixture-v0": {"law": "mixture"},
    # eta > 1/2 breaks the mode condition: the stress case for horizon-free claims.
    "NoisyModAddBiased-v0": {"law": "biased", "eta": 0.6},
    "NoisyGSM8K-v0": {},
}


def _register_all() -> None:
    for env_id, kwargs in ENV_IDS.items():
        if env_id in registry:
            continue
        if env_id.startswith("NoisyModAdd"):
            register(id=env_id, entry_point=_MODADD, vector_entry_point=_MODADD_VEC,
                     kwargs=dict(kwargs), disable_env_checker=False)
        else:
            register(id=env_id, entry_point=_GSM8K, kwargs=dict(kwargs), disable_env_checker=False)


_register_all()

__all__ = ["ENV_IDS", "LAWS", "Expert", "ModAddTask", "NoisyModAddEnv", "NoisyModAddVectorEnv",
           "noisy_probs"]
