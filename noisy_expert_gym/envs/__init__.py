"""Gymnasium envs (one per file) and their native vector envs."""

from noisy_expert_gym.envs.modadd import NoisyModAddEnv
from noisy_expert_gym.envs.modadd_vector import NoisyModAddVectorEnv

__all__ = ["NoisyModAddEnv", "NoisyModAddVectorEnv"]
