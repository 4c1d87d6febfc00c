"""The single NoisyModAdd env: observations, rewards, info keys and bad input."""

from __future__ import annotations

import math
import random
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.envs.modadd import NoisyModAddEnv
from tests.noisy_expert_gym import (
    LAW_NAMES,
    make_obs,
    ref_clean_next,
    ref_metrics,
    ref_sums,
    split_obs,
)

END_KEYS = {"full_exact", "final_exact", "num_errors", "correct_prefix_len"}


def _ref_reward(kind, xs, ys_before, action, p, m):
    ys = ys_before + [action]
    done = len(ys) == m
    s = ref_sums(xs, p)
    if kind == "final":
        return 1.0 if done and ys[-1] == s[-1] else 0.0
    if kind == "full":
        return 1.0 if done and ys == s else 0.0
    return (1.0 / m) if action == ref_clean_next(xs, ys_before, p) else 0.0


@given(p=st.integers(2, 13), m=st.integers(1, 12), eta=st.floats(0, 1),
       law=st.sampled_from(LAW_NAMES), reward=st.sampled_from(["final", "full", "dense"]),
       seed=st.integers(0, 2**31), p_clean=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
@settings(max_examples=40, deadline=None)
def test_episodes_match_reference(p, m, eta, law, reward, seed, p_clean):
    """Observations, rewards and every info key, step by step, against the reference."""
    env = gym.make("NoisyModAdd-v0", p=p, m=m, eta=eta, law=law, reward=reward)
    rnd = random.Random(seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    xs, ys = split_obs(obs, p, m)
    assert ys == [] and all(0 <= x < p for x in xs)
    assert info == {"step": 0, "clean_so_far": True}
    total = 0.0
    for t in range(m):
        clean = ref_clean_next(xs, ys, p)
        action = clean if rnd.random() < p_clean else rnd.randrange(p)
        obs, reward_t, term, trunc, info = env.step(action)
        want = _ref_reward(reward, xs, ys, action, p, m)
        ys = ys + [action]
        assert obs.tolist() == make_obs(xs, ys, p, m)
        assert env.observation_space.contains(obs)
        assert type(reward_t) is float and reward_t == pytest.approx(want, abs=1e-12)
        assert type(term) is bool and type(trunc) is bool
        assert term == (t == m - 1) and trunc is False
        total += reward_t
        assert info["step"] == t + 1
        assert info["clean_so_far"] == (ys == ref_sums(xs, p)[: t + 1])
        if term:
            assert set(info) == {"step", "clean_so_far"} | END_KEYS
            assert {k: info[k] for k in END_KEYS} == ref_metrics(xs, ys, p)
            assert all(type(info[k]) in (bool, int) for k in END_KEYS)
        else:
            assert set(info) == {"step", "clean_so_far"}
    if reward == "dense":  # the clean expert's own chain earns exactly 1
        assert (total == pytest.approx(1.0)) == (ref_metrics(xs, ys, p)["num_errors"] == 0)


def test_clean_chain_earns_reward_one_everywhere():
    for reward in ("final", "full", "dense"):
        env = gym.make("NoisyModAdd-v0", m=9, reward=reward)
        obs, _ = env.reset(seed=0)
        xs, _ = split_obs(obs, 7, 9)
        rewards = [env.step(s)[1] for s in ref_sums(xs, 7)]
        assert sum(rewards) == pytest.approx(1.0), reward


def test_dense_reward_follows_the_clean_expert_after_a_slip():
    # dense pays for agreeing with the clean expert *given the chain as written*.
    env = gym.make("NoisyModAdd-v0", p=7, m=4, reward="dense")
    obs, _ = env.reset(seed=1)
    xs, _ = split_obs(obs, 7, 4)
    s = ref_sums(xs, 7)
    slip = (s[0] + 3) % 7
    _, r0, *_ = env.step(slip)
    _, r1, *_ = env.step((slip + xs[1]) % 7)  # carried forward: right given the chain
    _, r2, *_ = env.step(s[2])  # the true sum, but wrong given the chain
    *_, info = env.step((s[2] + xs[3]) % 7)
    assert (r0, r1, r2) == (0.0, 0.25, 0.0)
    assert info["num_errors"] == 2 and info["correct_prefix_len"] == 0 and not info["full_exact"]
    assert info["final_exact"]  # y_3 = s_3 again, so y_4 = s_4


def test_prompts_are_uniform():
    env = NoisyModAddEnv(p=5, m=31)
    env.reset(seed=0)
    ops = np.concatenate([env.reset()[0][:31] for _ in range(300)])
    counts = np.bincount(ops, minlength=5)
    assert stats.chisquare(counts).pvalue > 1e-4, counts


def test_time_limit_truncates():
    env = gym.make("NoisyModAdd-v0", m=9, max_episode_steps=4)
    env.reset(seed=0)
    for t in range(4):
        _, _, term, trunc, info = env.step(0)
    assert (term, trunc) == (False, True) and set(info) == {"step", "clean_so_far"}


@pytest.mark.parametrize("kwargs,match", [
    ({"eta": 1.5}, r"`eta` must be in \[0, 1\], got 1.5"),
    ({"eta": -0.1}, r"\[0, 1\]"),
    ({"eta": math.nan}, r"\[0, 1\]"),
    ({"eta": "0.1"}, r"\[0, 1\]"),
    ({"p": 1}, r"`p`.*>= 2"),
    ({"p": 7.0}, r"`p`"),
    ({"m": 0}, r"`m`.*>= 1"),
    ({"law": "absorbng"},
     r"valid values: .*`absorbing`.*`mixture`.*`biased`.*Did you mean `absorbing`"),
    ({"law": "gaussian"}, r"valid values: .*`absorbing`"),
    ({"law": "temperature"}, r"teacher with logits"),
    ({"reward": "finl"}, r"valid values: final, full, dense.*Did you mean `final`"),
    ({"reward": "sparse"}, r"valid values: final, full, dense"),
    ({"render_mode": "ansii"}, r"valid values: None, ansi, rgb_array.*Did you mean `ansi`"),
    ({"render_mode": "human"}, r"valid values: None, ansi, rgb_array"),
])
def test_bad_kwargs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyModAddEnv(**kwargs)
    if kwargs.get("render_mode") != "human":  # gym.make maps "human" onto rgb_array + a wrapper
        with pytest.raises(ValueError, match=match), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's own render_mode warning
            gym.make("NoisyModAdd-v0", **kwargs)


@pytest.mark.parametrize("action", [7, -1, 100, 1.0, 2.5, np.float32(3), np.array([1, 2]),
                                    np.array([], dtype=np.int64), True, None, "3", [1, 2]])
def test_bad_actions_raise(action):
    env = NoisyModAddEnv(p=7, m=5)
    _obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match=r"Discrete\(7\)"):
        env.step(action)
    # nothing was written
    assert env.step(0)[0][6:].tolist() == [0, 8, 8, 8, 8]


@pytest.mark.parametrize("action", [3, np.int64(3), np.int32(3), np.array(3), np.array([3])])
def test_integer_like_actions_accepted(action):
    env = NoisyModAddEnv(p=7, m=5)
    env.reset(seed=0)
    assert env.step(action)[0][6] == 3


def test_step_after_end_and_before_reset_raise():
    env = NoisyModAddEnv(p=7, m=3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for _ in range(3):
        env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()
    env.step(0)  # fine again after reset
    wrapped = gym.make("NoisyModAdd-v0", m=3)
    with pytest.raises(gym.error.ResetNeeded):
        wrapped.step(0)
    wrapped.reset(seed=0)
    for _ in range(3):
        wrapped.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        wrapped.step(0)


def test_render_without_mode_warns():
    env = NoisyModAddEnv(m=3)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_docstring_documents_every_info_key_and_argument():
    doc = NoisyModAddEnv.__doc__
    for heading in ("Description", "Action Space", "Observation Space", "Starting State", "Rewards",
                    "Episode End", "Information", "Arguments", "Version History"):
        assert f"## {heading}" in doc, heading
    args = {"p", "m", "eta", "law", "reward", "render_mode"}
    for key in {"step", "clean_so_far"} | END_KEYS | args:
        assert f"``{key}``" in doc, key
