"""A token-embedding features extractor for Stable-Baselines3 policies (PPO's, :mod:`agents.algos.ppo`).

Use it over the env layer's SB3 adapter::

    from stable_baselines3 import PPO
    from agents.sb3_features import TokenFeaturesExtractor
    from noisy_expert_gym.bridges.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=16, reward="dense")
    model = PPO("MlpPolicy", venv, policy_kwargs={
        "features_extractor_class": TokenFeaturesExtractor}).learn(20_000)
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from noisy_expert_gym.utils import did_you_mean

EXTRACTORS = ("mean", "gru")


class TokenFeaturesExtractor(BaseFeaturesExtractor):
    """Features of a token-id observation: embed each token (and its position), then pool.

    SB3's default for a ``Box`` observation flattens it, i.e. treats every token
    id as a real number (or one-hots every position): useless for token
    sequences. Here each id is looked up in an embedding table:

    - ``mean`` (default): token + position embeddings, a per-token MLP, then a
      mean over the *written* tokens (padding excluded): cheap, and each
      (position, token) pair gets its own features.
    - ``gru``: a GRU reads the embedded sequence; the features are its last
      hidden state. It can carry a running sum along the sequence, but must
      carry it past the padding; it learned slower than ``mean`` on m = 3.

    Args:
        observation_space: a ``Box`` of integer token ids in ``[0, high]``.
        embed_dim: embedding width.
        features_dim: output width (GRU hidden size / MLP width).
        kind: ``mean`` or ``gru``.
        pad_token: the padding id (default: the space's ``high``, as in NoisyModAdd).
    """

    def __init__(self, observation_space: spaces.Box, embed_dim: int = 32, features_dim: int = 64,
                 kind: str = "mean", pad_token: int | None = None) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"TokenFeaturesExtractor needs a 1-D Box of token ids, got {observation_space}")
        if kind not in EXTRACTORS:
            raise ValueError(f"unknown extractor `{kind}`; valid: {', '.join(EXTRACTORS)}."
                             f"{did_you_mean(kind, EXTRACTORS)}")
        super().__init__(observation_space, features_dim)
        self.vocab_size = int(np.max(observation_space.high)) + 1
        self.seq_len = int(observation_space.shape[0])
        self.pad_token = int(self.vocab_size - 1 if pad_token is None else pad_token)
        self.kind = kind
        self.tok = nn.Embedding(self.vocab_size, embed_dim)
        self.pos = nn.Embedding(self.seq_len, embed_dim)
        if kind == "gru":
            self.gru = nn.GRU(embed_dim, features_dim, batch_first=True)
        else:
            self.mlp = nn.Sequential(nn.Linear(embed_dim, features_dim), nn.ReLU(),
                                     nn.Linear(features_dim, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        ids = observations.long()  # SB3 hands Box observations over as floats  # (B, L)
        x = self.tok(ids) + self.pos.weight[None, : ids.shape[1]]  # (B, L, E)
        if self.kind == "gru":
            _, h = self.gru(x)  # (1, B, F)
            return h[0]
        keep = (ids != self.pad_token).float()[..., None]  # (B, L, 1)
        return (self.mlp(x) * keep).sum(1) / keep.sum(1).clamp_min(1.0)  # (B, F)


__all__ = ["EXTRACTORS", "TokenFeaturesExtractor"]
