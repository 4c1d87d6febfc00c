"""Gymnasium envs (one per file) and their native vector envs."""

from noisy_expert_gym.envs.automaton import NoisyAutomatonEnv
from noisy_expert_gym.envs.automaton_vector import NoisyAutomatonVectorEnv
from noisy_expert_gym.envs.modadd import NoisyModAddEnv
from noisy_expert_gym.envs.modadd_vector import NoisyModAddVectorEnv
from noisy_expert_gym.envs.per_step import NoisyPerStepAutomatonEnv
from noisy_expert_gym.envs.per_step_vector import NoisyPerStepAutomatonVectorEnv

__all__ = ["NoisyAutomatonEnv", "NoisyAutomatonVectorEnv", "NoisyModAddEnv", "NoisyModAddVectorEnv",
           "NoisyPerStepAutomatonEnv", "NoisyPerStepAutomatonVectorEnv"]
