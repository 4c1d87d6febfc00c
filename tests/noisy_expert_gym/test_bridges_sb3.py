"""The SB3 bridge: the VecEnv adapter over the native vector env (the learners' token features
extractor is tested with the learners: tests/agents/test_sb3_features.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.bridges.sb3 import SB3VecEnv, make_sb3_vec_env

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 7, size=n)


@pytest.mark.parametrize("reward", ["final", "dense"])
def test_adapter_trajectories_equal_the_native_vector_env(reward):
    """Same seeds, same actions: the adapter's steps are the native env's minus its reset steps."""
    n, m, seed = 5, 3, 11
    native = gym.make_vec("NoisyModAdd-m3-v0", num_envs=n, reward=reward)
    ad = make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=n, reward=reward)
    assert isinstance(ad, VecEnv) and ad.num_envs == n
    nobs, _ = native.reset(seed=seed)
    ad.seed(seed)
    aobs = ad.reset()
    np.testing.assert_array_equal(aobs, nobs)
    rng = np.random.default_rng(0)
    for _episode in range(4):
        for t in range(m):
            a = _actions(rng, n)
            nobs, nrew, nterm, ntrunc, ninfo = native.step(a)
            ad.step_async(a)
            aobs, arew, adone, ainfos = ad.step_wait()
            np.testing.assert_allclose(arew, nrew.astype(np.float32))
            np.testing.assert_array_equal(adone, nterm | ntrunc)
            assert len(ainfos) == n
            if t < m - 1:
                np.testing.assert_array_equal(aobs, nobs)
                assert all("terminal_observation" not in i for i in ainfos)
            else:  # the last step: SB3 returns the reset obs, the final one in the infos
                assert adone.all()
                for i in range(n):
                    np.testing.assert_array_equal(ainfos[i]["terminal_observation"], nobs[i])
                    assert ainfos[i]["TimeLimit.truncated"] is False
                    assert ainfos[i]["full_exact"] == bool(ninfo["full_exact"][i])
                # Native NEXT_STEP: the following step resets (the action is ignored, reward 0).
                nobs, nrew, *_ = native.step(_actions(rng, n))
                assert (nrew == 0).all()
                np.testing.assert_array_equal(aobs, nobs)


def test_sb3_conventions_vecmonitor_and_truncation():
    """VecMonitor reads the adapter's episodes; a TimeLimit truncation is flagged for bootstrapping."""
    ad = VecMonitor(make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=3, reward="dense", max_episode_steps=2))
    ad.seed(0)
    obs = ad.reset()
    assert obs.shape == (3, 7) and obs.dtype == np.int64
    ad.step(np.zeros(3, np.int64))
    obs, rew, done, infos = ad.step(np.zeros(3, np.int64))
    assert done.all() and rew.dtype == np.float32
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["l"] == 2 and "terminal_observation" in info
    assert (obs[:, 4:] == 8).all()  # fresh episodes: empty chains


def test_sync_vector_env_same_step_and_partial_resets():
    """Any Gymnasium VectorEnv works: SAME_STEP final_obs, and NEXT_STEP partial resets via reset_mask."""
    for mode in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP):
        venv = gym.make_vec("NoisyModAdd-m3-v0", num_envs=2, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": mode})
        ad = SB3VecEnv(venv)
        ad.seed(3)
        ad.reset()
        # Sub-env 1 starts one step later: its episodes end one step after sub-env 0's.
        ad.step(np.array([0, 0]))
        ad.env_method("reset", indices=[1])
        obs, _, done, infos = ad.step(np.array([1, 1]))
        obs, _, done, infos = ad.step(np.array([2, 2]))
        assert done.tolist() == [True, False]
        assert infos[0]["terminal_observation"][4:].tolist() == [0, 1, 2]
        assert (obs[0, 4:] == 8).all()  # sub-env 0 restarted; sub-env 1 keeps its chain
        assert obs[1, 4:].tolist() == [1, 2, 8]


def test_attribute_access_and_wrapping():
    ad = make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=2, eta=0.3)
    assert ad.get_attr("eta") == [0.3, 0.3]
    assert ad.get_attr("observation_space")[0] == ad.observation_space
    assert ad.env_is_wrapped(gym.Wrapper) == [False, False]
    assert ad.has_attr("expert") and not ad.has_attr("nope")
    ad.set_attr("eta", 0.3)
    with pytest.raises(ValueError, match="all sub-envs"):
        ad.set_attr("eta", 0.1, indices=[0])
    with pytest.raises(TypeError, match="VectorEnv"):
        SB3VecEnv(gym.make("NoisyModAdd-m3-v0"))
    with pytest.raises(ValueError, match="Did you mean"):
        make_sb3_vec_env("NoisyModAd-v0")


def test_get_images_renders_every_sub_env():
    ad = make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=2, render_mode="rgb_array")
    ad.reset()
    imgs = ad.get_images()
    assert len(imgs) == 2 and imgs[0].ndim == 3 and imgs[0].dtype == np.uint8


def test_sb3_ppo_learns_through_the_adapter():
    """A few hundred PPO steps over the adapter with the token extractor run end to end."""
    ad = VecMonitor(make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=4, reward="dense"))
    model = PPO("MlpPolicy", ad, n_steps=24, batch_size=48, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    model.learn(total_timesteps=288)
    assert model.num_timesteps == 288
    assert len(model.ep_info_buffer) == 288 // 3
    action, _ = model.predict(ad.reset(), deterministic=True)
    assert action.shape == (4,)


def test_a_problem_serves_the_adapter():
    """make_sb3_vec_env(problem=...) serves a problem built once (its env options kept)."""
    from noisy_expert_gym import make_problem

    problem = make_problem("NoisyModAdd-m3-v0", eta=0.3, reward="dense")
    ad = make_sb3_vec_env(problem=problem, num_envs=2)
    assert ad.get_attr("eta") == [0.3, 0.3] and ad.get_attr("reward_kind")[0] == "dense"
    assert ad.venv.unwrapped.task is problem.task
