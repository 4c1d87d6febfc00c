"""The native vector env equals N single envs seeded seed + i (NEXT_STEP autoreset)."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.envs.modadd_vector import NoisyModAddVectorEnv
from tests.noisy_expert_gym import LAW_NAMES, ref_probs, split_obs


class SingleEnvsNextStep:
    """N ``gym.make`` envs driven by hand with NEXT_STEP autoreset (the reference)."""

    def __init__(self, n: int, **kwargs):
        self.envs = [gym.make("NoisyModAdd-v0", **kwargs) for _ in range(n)]
        self.needs_reset = [False] * n

    def reset(self, seed):
        out = [e.reset(seed=None if seed is None else seed + i) for i, e in enumerate(self.envs)]
        self.needs_reset = [False] * len(self.envs)
        return [o for o, _ in out], [i for _, i in out]

    def step(self, actions):
        rows = []
        for i, (e, a) in enumerate(zip(self.envs, actions)):
            if self.needs_reset[i]:  # the action is ignored; the sub-env resets
                obs, info = e.reset()
                rows.append((obs, 0.0, False, False, info))
                self.needs_reset[i] = False
            else:
                obs, r, term, trunc, info = e.step(int(a))
                rows.append((obs, r, term, trunc, info))
                self.needs_reset[i] = term or trunc
        return rows


def _assert_infos_equal(vec_info, single_infos):
    n = len(single_infos)
    keys = set().union(*single_infos)
    assert {k for k in vec_info if not k.startswith("_")} >= keys
    for k in vec_info:
        if k.startswith("_"):
            continue
        mask = vec_info["_" + k]
        assert mask.shape == (n,) and mask.dtype == bool
        for i, info in enumerate(single_infos):
            assert bool(mask[i]) == (k in info), (k, i)
            if k in info:
                assert vec_info[k][i] == info[k], (k, i, vec_info[k][i], info[k])


def _compare(n, steps, seed, action_seed, **kwargs):
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=n, **kwargs)
    assert isinstance(vec.unwrapped, NoisyModAddVectorEnv)
    ref = SingleEnvsNextStep(n, **kwargs)
    p = vec.single_action_space.n
    rnd = np.random.default_rng(action_seed)
    for episode_seed in (seed, None):  # a second reset continues the seeded streams
        vobs, vinfo = vec.reset(seed=episode_seed)
        sobs, sinfos = ref.reset(episode_seed)
        assert (vobs == np.stack(sobs)).all()
        _assert_infos_equal(vinfo, sinfos)
        for _ in range(steps):
            actions = rnd.integers(0, p, size=n)
            vobs, vrew, vterm, vtrunc, vinfo = vec.step(actions)
            rows = ref.step(actions)
            assert vobs.dtype == np.int64
            assert vobs.shape == (n, vec.single_observation_space.shape[0])
            assert (vobs == np.stack([r[0] for r in rows])).all()
            assert vrew.tolist() == [r[1] for r in rows]
            assert vterm.tolist() == [r[2] for r in rows]
            assert vtrunc.tolist() == [r[3] for r in rows]
            _assert_infos_equal(vinfo, [r[4] for r in rows])
    return vec


@pytest.mark.parametrize("max_episode_steps", [None, 3, 5, 6])
@pytest.mark.parametrize("reward", ["final", "dense"])
def test_vector_env_equals_single_envs(max_episode_steps, reward):
    kw = {"m": 5, "p": 7, "eta": 0.2, "reward": reward}
    if max_episode_steps is not None:
        kw["max_episode_steps"] = max_episode_steps
    _compare(6, steps=25, seed=10, action_seed=1, **kw)


def test_vector_env_equals_single_envs_biased_full_reward():
    _compare(4, steps=13, seed=3, action_seed=2, m=4, p=3, reward="full", law="biased", eta=0.6)


@given(p=st.integers(2, 13), m=st.integers(1, 12), eta=st.floats(0, 1),
       law=st.sampled_from(LAW_NAMES), reward=st.sampled_from(["final", "full", "dense"]),
       seed=st.integers(0, 2**30), n=st.integers(1, 5),
       max_steps=st.one_of(st.none(), st.integers(1, 13)))
@settings(max_examples=15, deadline=None)
def test_vector_env_equals_single_envs_property(p, m, eta, law, reward, seed, n, max_steps):
    kw = {"p": p, "m": m, "eta": eta, "law": law, "reward": reward}
    if max_steps is not None:
        kw["max_episode_steps"] = max_steps
    _compare(n, steps=2 * m + 3, seed=seed, action_seed=seed, **kw)


def test_metadata_and_spaces():
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=3, m=9)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert vec.num_envs == 3
    assert vec.single_observation_space == gym.spaces.Box(0, 8, shape=(19,), dtype=np.int64)
    assert vec.single_action_space == gym.spaces.Discrete(7)
    assert vec.observation_space.shape == (3, 19)
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)
    obs2, *_ = vec.step(vec.action_space.sample())
    assert vec.observation_space.contains(obs2)
    obs2[:] = 0  # returned arrays are fresh copies
    assert vec.step(np.zeros(3, np.int64))[0][:, 11].min() >= 0 and (vec.unwrapped._obs != 0).any()


def test_reset_with_list_of_seeds():
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=3, m=9)
    a, _ = vec.reset(seed=[5, 6, 7])
    b, _ = vec.reset(seed=5)
    assert (a == b).all()
    with pytest.raises(ValueError, match="2 seeds for 3 envs"):
        vec.reset(seed=[1, 2])


def test_vector_expert_answers_batches():
    p, m = 7, 9
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=16, m=m, law="mixture", eta=0.3)
    obs, _ = vec.reset(seed=0)
    rnd = random.Random(0)
    for _ in range(4):
        obs, *_ = vec.step(np.array([rnd.randrange(p) for _ in range(16)]))
    want = np.array([ref_probs("mixture", 0.3, p, *split_obs(o, p, m)) for o in obs])
    np.testing.assert_allclose(vec.unwrapped.expert.probs(obs), want, atol=1e-12)
    a = vec.unwrapped.expert.sample(obs)
    assert a.shape == (16,) and vec.action_space.contains(a)
    assert vec.unwrapped.expert.num_queries == 32
    clean = vec.unwrapped.clean_expert.probs(obs)
    assert (clean.max(1) == 1.0).all()


@pytest.mark.parametrize("actions,match", [
    (np.zeros(3, np.int64), r"shape \(4,\)"),
    (np.zeros((4, 1), np.int64), r"shape \(4,\)"),
    (np.zeros(4), "integer"),
    (np.array([0, 1, 7, 2]), r"Discrete\(7\)"),
    (np.array([0, -1, 0, 2]), r"Discrete\(7\)"),
    ([0.5, 1, 2, 3], "integer"),
])
def test_bad_actions_raise(actions, match):
    vec = NoisyModAddVectorEnv(num_envs=4, m=5)
    vec.reset(seed=0)
    before = vec._obs.copy()
    with pytest.raises(ValueError, match=match):
        vec.step(actions)
    assert (vec._obs == before).all()


def test_bad_construction_and_step_before_reset():
    with pytest.raises(RuntimeError, match="reset"):
        NoisyModAddVectorEnv(num_envs=2, m=3).step(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="num_envs"):
        NoisyModAddVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        NoisyModAddVectorEnv(num_envs=2, max_episode_steps=0)
    with pytest.raises(ValueError, match="Did you mean `mixture`"):
        gym.make_vec("NoisyModAdd-v0", num_envs=2, law="mixtre")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gym.make_vec("NoisyModAdd-v0", num_envs=2, eta=2.0)


def test_vector_render():
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=2, m=4, render_mode="ansi")
    vec.reset(seed=0)
    vec.step(np.array([0, 1]))
    frames = vec.render()
    assert isinstance(frames, tuple) and len(frames) == 2
    assert all(isinstance(f, str) for f in frames)
    single = gym.make("NoisyModAdd-v0", m=4, render_mode="ansi")
    single.reset(seed=1)
    single.step(1)
    assert frames[1] == single.render()
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=2, m=4, render_mode="rgb_array")
    vec.reset(seed=0)
    imgs = vec.render()
    assert len(imgs) == 2 and all(i.dtype == np.uint8 and i.ndim == 3 for i in imgs)


def test_vector_env_equals_sync_vector_env():
    """Drop-in for gymnasium's SyncVectorEnv over the same env: same arrays, same info masks."""
    kw = {"m": 4, "p": 5, "eta": 0.3, "law": "mixture", "reward": "dense", "max_episode_steps": 3}
    vec = gym.make_vec("NoisyModAdd-v0", num_envs=5, **kw)
    sync = gym.make_vec("NoisyModAdd-v0", num_envs=5, vectorization_mode="sync", **kw)
    assert sync.metadata["autoreset_mode"] == vec.metadata["autoreset_mode"]
    rnd = np.random.default_rng(0)

    def same(x, y):
        for u, v in zip(x, y, strict=True):
            if isinstance(u, dict):
                assert set(u) == set(v)
                for k in u:
                    np.testing.assert_array_equal(u[k], v[k], err_msg=k)
            else:
                np.testing.assert_array_equal(u, v)

    same(vec.reset(seed=8), sync.reset(seed=8))
    for _ in range(12):
        a = rnd.integers(0, 5, size=5)
        same(vec.step(a), sync.step(a))
