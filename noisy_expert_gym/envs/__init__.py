"""Gymnasium envs (one per file) and their native vector envs."""

from noisy_expert_gym.envs.automaton import NoisyAutomatonEnv
from noisy_expert_gym.envs.automaton_vector import NoisyAutomatonVectorEnv
from noisy_expert_gym.envs.modadd import NoisyModAddEnv
from noisy_expert_gym.envs.modadd_vector import NoisyModAddVectorEnv

__all__ = ["NoisyAutomatonEnv", "NoisyAutomatonVectorEnv", "NoisyModAddEnv", "NoisyModAddVectorEnv"]
