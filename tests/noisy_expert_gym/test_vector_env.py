"""The native vector env equals N single envs seeded seed + i, and SyncVectorEnv in every autoreset mode."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

import noisy_expert_gym
from noisy_expert_gym.envs.chain_vector import ChainVectorEnv
from noisy_expert_gym.envs.modadd_vector import NoisyModAddVectorEnv
from tests.noisy_expert_gym import LAW_NAMES, ref_probs, split_obs

#: Every registered id that has a native vector env.
VECTOR_IDS = sorted(k for k, (fam, _) in noisy_expert_gym.REGISTRY.items()
                    if noisy_expert_gym.FAMILIES[fam].vector_entry_point is not None)


class SingleEnvsNextStep:
    """N ``gym.make`` envs driven by hand with NEXT_STEP autoreset (the reference)."""

    def __init__(self, n: int, env_id: str = "NoisyModAdd-v0", **kwargs):
        self.envs = [gym.make(env_id, **kwargs) for _ in range(n)]
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


def _compare(n, steps, seed, action_seed, env_id="NoisyModAdd-v0", **kwargs):
    vec = gym.make_vec(env_id, num_envs=n, **kwargs)
    assert isinstance(vec.unwrapped, ChainVectorEnv)
    ref = SingleEnvsNextStep(n, env_id, **kwargs)
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


@pytest.mark.parametrize("env_id", VECTOR_IDS)
def test_every_vector_id_equals_single_envs(env_id):
    """Long enough for the prompt buffers to refill several times (blocks of 1, 2, 4, ... episodes)."""
    kw = {"m": 3, "eta": 0.3, "reward": "dense"}
    _compare(4, steps=70, seed=21, action_seed=3, env_id=env_id, **kw)


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


# ----------------------------------------------------------------------------- SyncVectorEnv, every
# autoreset mode and reset option (issue 10 item 1: honoured or refused, never silently ignored)
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]


def _same(x, y, path="out"):
    """Equal values, dtypes and keys, through nested info dicts and object arrays (final_obs)."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and set(x) == set(y), (path, sorted(x), sorted(y))
        for k in x:
            _same(x[k], y[k], f"{path}[{k!r}]")
    elif isinstance(x, tuple):
        assert len(x) == len(y), path
        for i, (u, v) in enumerate(zip(x, y)):
            _same(u, v, f"{path}[{i}]")
    elif isinstance(x, np.ndarray) and x.dtype == object:
        assert y.dtype == object and x.shape == y.shape, path
        for i, (u, v) in enumerate(zip(x, y)):
            assert (u is None) == (v is None), (path, i)
            if u is not None:
                _same(u, v, f"{path}[{i}]")
    else:
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype, (path, x.dtype, y.dtype)
        np.testing.assert_array_equal(x, y, err_msg=path)


def _seed_arg(rng, n):
    kind = rng.integers(4)
    if kind == 0:
        return None
    if kind == 1:
        return int(rng.integers(1000))
    return [None if rng.random() < 0.4 else int(rng.integers(1000)) for _ in range(n)]


def _drive_against_sync(env_id, mode, n, steps, seed, **kw):
    """Random actions, random partial resets (with and without seeds) on the native env and on
    SyncVectorEnv over the same single envs: every output identical."""
    native = gym.make_vec(env_id, num_envs=n, autoreset_mode=mode, **kw)
    sync = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **kw)
    assert native.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"] == mode
    rng = np.random.default_rng(seed)
    _same(native.reset(seed=seed), sync.reset(seed=seed))
    ended = np.zeros(n, bool)
    num_actions = native.single_action_space.n
    for _ in range(steps):
        u = rng.random()
        if (mode == AutoresetMode.DISABLED and ended.any()) or u < 0.15:
            mask = rng.random(n) < 0.4
            if mode == AutoresetMode.DISABLED:
                mask |= ended
            if not mask.any():
                mask[rng.integers(n)] = True
            seed_arg = _seed_arg(rng, n)
            # SyncVectorEnv pops reset_mask from the dict it is given: each env gets its own.
            _same(native.reset(seed=seed_arg, options={"reset_mask": mask.copy()}),
                  sync.reset(seed=seed_arg, options={"reset_mask": mask.copy()}))
            ended &= ~mask
        elif u < 0.18:
            seed_arg = _seed_arg(rng, n)
            _same(native.reset(seed=seed_arg, options={}), sync.reset(seed=seed_arg, options={}))
            ended[:] = False
        else:
            a = rng.integers(0, num_actions, size=n)
            out = native.step(a)
            _same(out, sync.step(a))
            ended = out[2] | out[3]
    return native


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("env_id", VECTOR_IDS)
def test_native_equals_sync_vector_env_every_mode_with_partial_resets(env_id, mode):
    _drive_against_sync(env_id, mode, n=5, steps=60, seed=7, m=3, eta=0.3, reward="dense",
                        max_episode_steps=None if env_id.endswith("S5-v0") else 2)


@given(mode=st.sampled_from(MODES), env_id=st.sampled_from(["NoisyModAdd-v0", "NoisyAutomaton-v0", "NoisyDFA-v0"]),
       m=st.integers(1, 5), n=st.integers(1, 6), reward=st.sampled_from(["final", "full", "dense"]),
       law=st.sampled_from(LAW_NAMES), max_steps=st.one_of(st.none(), st.integers(1, 6)), seed=st.integers(0, 2**30))
@settings(max_examples=20, deadline=None)
def test_native_equals_sync_vector_env_property(mode, env_id, m, n, reward, law, max_steps, seed):
    kw = {"m": m, "reward": reward, "law": law, "eta": 0.4}
    if max_steps is not None:
        kw["max_episode_steps"] = max_steps
    _drive_against_sync(env_id, mode, n=n, steps=4 * m + 6, seed=seed, **kw)


def test_reset_mask_keeps_the_other_sub_envs():
    """The issue's failing case: sub-env 1 keeps its episode (its first chain token, 2)."""
    v = gym.make_vec("NoisyModAdd-v0", num_envs=3, m=4)
    v.reset(seed=0)
    v.step(np.array([1, 2, 3]))
    o, info = v.reset(options={"reset_mask": np.array([True, False, False])})
    assert o[1, 5] == 2 and o[2, 5] == 3 and o[0, 5] == 8
    assert info["_step"].tolist() == [True, False, False]


@pytest.mark.parametrize("mask,exc", [
    ([True, False, True], TypeError),
    (np.array([True, False]), ValueError),
    (np.array([1, 0, 1]), TypeError),
    (np.zeros(3, bool), ValueError),
])
def test_bad_reset_masks_raise_as_sync_does(mask, exc):
    for mode in ("vector_entry_point", "sync"):
        v = gym.make_vec("NoisyAutomaton-v0", num_envs=3, m=3, vectorization_mode=mode)
        v.reset(seed=0)
        with pytest.raises(exc, match="reset_mask"):
            v.reset(options={"reset_mask": mask})


def test_unknown_options_are_refused_and_options_are_not_mutated():
    v = gym.make_vec("NoisyS5-v0", num_envs=2, m=3)
    with pytest.raises(ValueError, match=r"unknown reset option.*'mask'.*'reset_mask'.*Did you mean `reset_mask`"):
        v.reset(seed=0, options={"mask": np.ones(2, bool)})
    opts = {"reset_mask": np.array([True, False])}
    v.reset(seed=0)
    v.reset(options=opts)
    assert set(opts) == {"reset_mask"}


def test_disabled_mode_refuses_to_step_an_ended_sub_env():
    v = gym.make_vec("NoisyAutomaton-v0", num_envs=2, m=2, autoreset_mode="Disabled")
    assert v.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    v.reset(seed=0)
    v.step(np.zeros(2, np.int64))
    *_, term, _, _ = v.step(np.zeros(2, np.int64))
    assert term.all()
    with pytest.raises(RuntimeError, match=r"reset_mask"):
        v.step(np.zeros(2, np.int64))
    v.reset(options={"reset_mask": np.array([True, True])})
    v.step(np.zeros(2, np.int64))


def test_bad_autoreset_mode_raises():
    with pytest.raises(ValueError, match="autoreset_mode.*Did you mean `SameStep`"):
        gym.make_vec("NoisyModAdd-v0", num_envs=2, autoreset_mode="SameStp")


def test_reset_with_a_none_seed_keeps_the_sub_envs_generator():
    a = gym.make_vec("NoisyAutomaton-v0", num_envs=2, m=3)
    b = gym.make_vec("NoisyAutomaton-v0", num_envs=2, m=3)
    a.reset(seed=[4, 5])
    b.reset(seed=[4, 5])
    a.reset(seed=[None, 9])  # sub-env 0 continues its stream
    oa, _ = a.reset(seed=[None, 9])
    b.reset()
    ob, _ = b.reset(seed=[None, 9])
    assert (oa[0] == ob[0]).all()


def test_expert_draws_interleave_with_sub_env_0_prompts_as_in_a_single_env():
    """The vector env's expert samples from sub-env 0's generator (prompts and draws in call order):
    with one sub-env, expert-driven episodes are a single env's."""
    m = 4
    vec = gym.make_vec("NoisyS5-v0", num_envs=1, m=m, alphabet="generators")
    single = gym.make("NoisyS5-v0", m=m, alphabet="generators")
    vo, _ = vec.reset(seed=2)
    so, _ = single.reset(seed=2)
    for _ in range(3 * (m + 1)):
        assert (vo[0] == so).all()
        if single.unwrapped._done:
            vo, *_ = vec.step(np.zeros(1, np.int64))
            so, _ = single.reset()
            continue
        a = vec.unwrapped.expert.sample(vo)
        assert a[0] == single.unwrapped.expert.sample(so)
        vo, *_ = vec.step(a)
        so, *_ = single.step(a[0])


@pytest.mark.parametrize("env_id", VECTOR_IDS)
@pytest.mark.parametrize("mode", list(AutoresetMode))
@pytest.mark.parametrize("who", ["expert", "clean_expert"])
def test_the_obvious_expert_driven_loop_runs_past_the_first_episode(env_id, mode, who):
    """`a = venv.expert.sample(obs); venv.step(a)` for 3 episodes, in every autoreset mode (issue 27).

    Under the default NEXT_STEP autoreset, step m returns each sub-env's complete chain and the next
    step ignores the action taken there (Gymnasium's contract): the loop used to crash at step m + 1
    because the expert refused to answer at a complete chain. The clean expert, driving the loop,
    must then score every episode full_exact = 1.
    """
    venv = gym.make_vec(env_id, num_envs=4, autoreset_mode=mode)
    oracle = getattr(venv, who)
    m = venv.task.horizon
    obs, _ = venv.reset(seed=3)
    episodes = 0
    for _ in range(3 * m + (2 if mode == AutoresetMode.NEXT_STEP else 0)):
        if mode == AutoresetMode.DISABLED and venv.task.step_index(obs).max() >= m:
            obs, _ = venv.reset(options={"reset_mask": venv.task.step_index(obs) >= m})
        rows = oracle.probs(obs)  # the full-access questions answer there too
        assert rows.shape == (4, venv.task.num_actions) and np.allclose(rows.sum(1), 1.0)
        obs, _, terminated, _, info = venv.step(oracle.sample(obs))
        if terminated.any():
            episodes += 1
            if who == "clean_expert":
                ended = info["final_info"] if mode == AutoresetMode.SAME_STEP else info
                assert ended["full_exact"][terminated].all()
    assert episodes == 3
    single = gym.make(env_id)  # a single env's ended episode is still refused, with how to go on
    obs, _ = single.reset(seed=0)
    for _ in range(m):
        obs, *_ = single.step(single.unwrapped.clean_expert.sample(obs))
    with pytest.raises(ValueError, match="complete chain.*reset the env"):
        single.unwrapped.clean_expert.sample(obs)
