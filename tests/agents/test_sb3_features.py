"""PPO's token features extractor: token ids embedded (not flattened), alone and inside SB3's PPO."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

from agents.sb3_features import TokenFeaturesExtractor
from noisy_expert_gym.bridges.sb3 import make_sb3_vec_env

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("kind", ["gru", "mean"])
def test_token_extractor_embeds_token_ids(kind):
    space = gym.spaces.Box(0, 8, shape=(7,), dtype=np.int64)
    ex = TokenFeaturesExtractor(space, embed_dim=8, features_dim=16, kind=kind)
    assert ex.vocab_size == 9 and ex.pad_token == 8 and ex.features_dim == 16
    obs = torch.tensor([[1, 2, 3, 7, 1, 8, 8], [1, 2, 3, 7, 1, 3, 8]], dtype=torch.float32)
    f = ex(obs)
    assert f.shape == (2, 16)
    assert not torch.allclose(f[0], f[1])  # the written token changes the features
    with pytest.raises(ValueError, match="Did you mean `gru`"):
        TokenFeaturesExtractor(space, kind="gr")


def test_sb3_ppo_learns_with_the_extractor():
    """A few hundred PPO steps over the env layer's adapter with the token extractor run end to end."""
    ad = VecMonitor(make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=4, reward="dense"))
    model = PPO("MlpPolicy", ad, n_steps=24, batch_size=48, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"features_extractor_class": TokenFeaturesExtractor,
                               "features_extractor_kwargs": {"embed_dim": 8, "features_dim": 16}})
    model.learn(total_timesteps=288)
    assert model.num_timesteps == 288 and len(model.ep_info_buffer) == 288 // 3
    action, _ = model.predict(ad.reset(), deterministic=True)
    assert action.shape == (4,)
