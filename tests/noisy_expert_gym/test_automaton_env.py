"""The NoisyAutomaton envs: episodes and oracle rows against the reference, the modadd equivalence,
rendering of multi-digit state ids, the registered ids, and bad input."""

from __future__ import annotations

import random
import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import noisy_expert_gym
from noisy_expert_gym import make_problem
from noisy_expert_gym.envs.automaton import NoisyAutomatonEnv
from noisy_expert_gym.rendering import _GLYPHS, GREEN, RED
from tests.noisy_expert_gym import (
    LAW_NAMES,
    RefAutomaton,
    random_auto_prefix,
    ref_auto_clean_next,
    ref_auto_metrics,
    ref_auto_obs,
    ref_auto_probs,
    ref_auto_split,
    ref_run,
)

END_KEYS = {"full_exact", "final_exact", "num_errors", "correct_prefix_len"}
AUTOMATON_IDS = sorted(k for k, (fam, _) in noisy_expert_gym.REGISTRY.items() if fam == "automaton")

#: Keyword arguments of small automata of every kind (fast enough for property tests).
CONFIGS = st.one_of(
    st.fixed_dictionaries({"automaton": st.just("random"), "n": st.integers(2, 9), "k": st.integers(1, 6),
                           "kind": st.sampled_from(["permutation", "dfa"]),
                           "automaton_seed": st.integers(0, 2**32)}),
    st.fixed_dictionaries({"automaton": st.just("modadd"), "n": st.integers(2, 9)}),
    st.fixed_dictionaries({"automaton": st.just("s5"), "alphabet": st.sampled_from(["all", "generators"])}),
)


def _ref_reward(kind, ref, xs, ys_before, action, m):
    ys = ys_before + [action]
    done = len(ys) == m
    s = ref_run(ref, xs)
    if kind == "final":
        return 1.0 if done and ys[-1] == s[-1] else 0.0
    if kind == "full":
        return 1.0 if done and ys == s else 0.0
    return (1.0 / m) if action == ref_auto_clean_next(ref, xs, ys_before) else 0.0


@given(config=CONFIGS, relabel_seed=st.one_of(st.none(), st.integers(0, 2**32)), m=st.integers(1, 8),
       eta=st.floats(0, 1), law=st.sampled_from(LAW_NAMES), reward=st.sampled_from(["final", "full", "dense"]),
       seed=st.integers(0, 2**31), p_clean=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
@settings(max_examples=40, deadline=None)
def test_episodes_and_oracle_rows_match_reference(config, relabel_seed, m, eta, law, reward, seed, p_clean):
    """Observations, rewards, every info key and the oracle's rows, step by step, against the reference."""
    env = gym.make("NoisyAutomaton-v0", m=m, eta=eta, law=law, reward=reward, relabel_seed=relabel_seed, **config)
    u = env.unwrapped
    ref = RefAutomaton.of(u.task.automaton)
    rnd = random.Random(seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs) and info == {"step": 0, "clean_so_far": True}
    xs, ys = ref_auto_split(ref, obs, m)
    assert ys == [] and all(0 <= x < ref.k for x in xs)
    for t in range(m):
        probs = u.expert.probs(obs)
        np.testing.assert_allclose(probs, ref_auto_probs(law, eta, ref, xs, ys), atol=1e-12)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12) and (probs >= 0).all()
        np.testing.assert_array_equal(u.clean_expert.probs(obs), ref_auto_probs("clean", 0.0, ref, xs, ys))
        clean = ref_auto_clean_next(ref, xs, ys)
        action = clean if rnd.random() < p_clean else rnd.randrange(ref.n)
        obs, r, term, trunc, info = env.step(action)
        want = _ref_reward(reward, ref, xs, ys, action, m)
        ys = ys + [action]
        assert obs.tolist() == ref_auto_obs(ref, xs, ys, m)
        assert type(r) is float and r == pytest.approx(want, abs=1e-12)
        assert term == (t == m - 1) and trunc is False
        assert info["step"] == t + 1 and info["clean_so_far"] == (ys == ref_run(ref, xs)[: t + 1])
        if term:
            assert set(info) == {"step", "clean_so_far"} | END_KEYS
            assert {k: info[k] for k in END_KEYS} == ref_auto_metrics(ref, xs, ys)
        else:
            assert set(info) == {"step", "clean_so_far"}


@given(config=CONFIGS, m=st.integers(1, 8), eta=st.floats(0, 1), law=st.sampled_from(LAW_NAMES),
       seed=st.integers(0, 2**31))
@settings(max_examples=25, deadline=None)
def test_probs_along_match_reference(config, m, eta, law, seed):
    """The trainers' fast path: every prefix of complete chains, numpy and torch; rows sum to 1."""
    problem = make_problem("NoisyAutomaton-v0", m=m, eta=eta, law=law, **config)
    ref = RefAutomaton.of(problem.task.automaton)
    rnd = random.Random(seed)
    pairs = [random_auto_prefix(rnd, ref, m, length=m) for _ in range(12)]
    sep = problem.task.sep_token
    prompts = np.array([xs + [sep] for xs, _ in pairs], dtype=np.int64)
    chain = np.array([ys for _, ys in pairs], dtype=np.int64)
    got = problem.expert.probs_along(prompts, chain)
    want = np.array([[ref_auto_probs(law, eta, ref, xs, ys[:t]) for t in range(m)] for xs, ys in pairs])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-12)
    got_t = problem.expert.probs_along(torch.as_tensor(prompts), torch.as_tensor(chain))
    np.testing.assert_allclose(got_t.double().numpy(), want, atol=1e-6)
    assert problem.expert.num_queries == 2 * 12 * m


# ----------------------------------------------------------------------------- modadd equivalence
def _trace(env_id, seed, episodes, action_rule, **kwargs):
    """Observations, oracle rows (noisy and clean), sampled expert actions, rewards and infos."""
    env = gym.make(env_id, **kwargs)
    u = env.unwrapped
    rnd = random.Random(seed)
    trace = []
    obs, info = env.reset(seed=seed)
    trace.append((obs.tolist(), info))
    for _ in range(episodes):
        done = False
        while not done:
            probs, clean = u.expert.probs(obs), u.clean_expert.probs(obs)
            sampled = int(u.expert.sample(obs))  # draws from the env's seeded generator
            action = sampled if action_rule == "expert" else rnd.randrange(env.action_space.n)
            obs, r, term, trunc, info = env.step(action)
            trace.append((probs.tolist(), clean.tolist(), sampled, obs.tolist(), r, term, trunc, info))
            done = term or trunc
        obs, info = env.reset()
        trace.append((obs.tolist(), info))
    return trace


@given(p=st.integers(2, 11), m=st.integers(1, 9), eta=st.floats(0, 1), law=st.sampled_from(LAW_NAMES),
       reward=st.sampled_from(["final", "full", "dense"]), seed=st.integers(0, 2**31),
       rule=st.sampled_from(["expert", "random"]))
@settings(max_examples=30, deadline=None)
def test_modadd_automaton_is_noisy_modadd(p, m, eta, law, reward, seed, rule):
    """automaton='modadd' gives NoisyModAdd's MDP: identical observations, oracle rows, expert samples,
    rewards and infos (metrics) for the same seeds."""
    kw = {"m": m, "eta": eta, "law": law, "reward": reward}
    a = _trace("NoisyAutomaton-v0", seed, 2, rule, automaton="modadd", n=p, **kw)
    b = _trace("NoisyModAdd-v0", seed, 2, rule, p=p, **kw)
    assert a == b


def test_modadd_automaton_vector_env_and_rollouts_equal_noisy_modadd():
    kw = {"m": 6, "eta": 0.3, "law": "absorbing", "reward": "dense"}
    va = gym.make_vec("NoisyAutomaton-v0", num_envs=5, automaton="modadd", n=7, **kw)
    vb = gym.make_vec("NoisyModAdd-v0", num_envs=5, p=7, **kw)
    ra, rb = va.reset(seed=4), vb.reset(seed=4)
    assert repr(ra) == repr(rb)
    obs = ra[0]
    for step in range(20):
        if step % 7 == 6:  # every episode has ended (m = 6): the next step autoresets
            a = np.zeros(5, np.int64)
        else:  # the experts' draws come from sub-env 0's generator, interleaved with its prompts
            a = va.unwrapped.expert.sample(obs)
            assert (a == vb.unwrapped.expert.sample(obs)).all()
        ra, rb = va.step(a), vb.step(a)
        assert repr(ra) == repr(rb)
        obs = ra[0]
    pa = make_problem("NoisyAutomaton-v0", automaton="modadd", n=7, m=9, eta=0.2)
    pb = make_problem("NoisyModAdd-v0", p=7, m=9, eta=0.2)
    prompts = pa.task.sample_prompts(np.random.default_rng(0), 64)
    ca = pa.expert.with_rng(np.random.default_rng(1)).rollout(prompts)
    cb = pb.expert.with_rng(np.random.default_rng(1)).rollout(prompts)
    assert (ca == cb).all()
    np.testing.assert_array_equal(pa.expert.probs_along(prompts, ca), pb.expert.probs_along(prompts, cb))


# ----------------------------------------------------------------------------- ids, problems, attributes
def test_registered_ids_and_their_defaults():
    assert {"NoisyAutomaton-v0", "NoisyDFA-v0", "NoisyS5-v0"} <= set(AUTOMATON_IDS)
    want = {"NoisyAutomaton-v0": ("random", 7, 7, "permutation", None, 0),
            "NoisyDFA-v0": ("random", 7, 7, "dfa", None, 0),
            "NoisyS5-v0": ("s5", 120, 120, None, "all", None)}
    for env_id, (automaton, n, k, kind, alphabet, seed) in want.items():
        u = gym.make(env_id).unwrapped
        assert isinstance(u, NoisyAutomatonEnv)
        assert (u.automaton, u.n, u.k, u.kind, u.alphabet, u.automaton_seed, u.relabel_seed) == (
            automaton, n, k, kind, alphabet, seed, None)
        assert (u.m, u.eta, u.law, u.reward_kind) == (31, 0.1, "absorbing", "final")
        assert u.observation_space == gym.spaces.Box(0, max(n, k) + 1, shape=(63,), dtype=np.int64)
        assert u.action_space == gym.spaces.Discrete(n)
        v = gym.make_vec(env_id, num_envs=2).unwrapped
        assert (v.automaton, v.n, v.k, v.kind) == (automaton, n, k, kind)


@pytest.mark.parametrize("env_id", AUTOMATON_IDS)
def test_problem_round_trip(env_id):
    problem = make_problem(env_id, m=5, eta=0.2, reward="dense")
    env = problem.make_env()
    assert env.unwrapped.task is problem.task and env.unwrapped.reward_kind == "dense"
    again = env.unwrapped.problem.make_env()  # the env's problem builds the same MDP again
    assert again.unwrapped.task is problem.task
    vec = problem.make_vec(3)
    assert vec.unwrapped.task is problem.task
    with pytest.raises(AttributeError, match="fixed by the env's problem"):
        env.unwrapped.automaton_seed = 99


def test_relabelled_env_hides_ids_but_keeps_the_statistics():
    plain = gym.make("NoisyS5-v0", alphabet="generators", m=4)
    copy = gym.make("NoisyS5-v0", alphabet="generators", m=4, relabel_seed=11)
    assert copy.unwrapped.relabel_seed == 11
    assert (plain.unwrapped.task.automaton.table != copy.unwrapped.task.automaton.table).any()
    assert plain.observation_space == copy.observation_space


@pytest.mark.parametrize("kwargs,match", [
    ({"automaton": "s6"}, "Did you mean `s5`"),
    ({"automaton": "s5", "n": 7}, "n=120"),
    ({"n": 0}, "`n` must be an integer"),
    ({"kind": "perm"}, "Did you mean `permutation`"),
    ({"automaton_seed": "secret"}, "`automaton_seed` must be a non-negative integer"),
    ({"eta": 1.5}, r"`eta` must be in \[0, 1\], got 1.5"),
    ({"law": "absorbng"}, "Did you mean `absorbing`"),
    ({"m": 0}, "`m`"),
    ({"reward": "finl"}, "Did you mean `final`"),
    ({"p": 7}, "has no keyword argument `p`; valid: automaton, n, k, m"),
])
def test_bad_kwargs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym.make("NoisyAutomaton-v0", **kwargs)


def test_reset_options_are_refused_not_ignored():
    env = gym.make("NoisyS5-v0", m=3)
    env.reset(seed=0, options={})
    env.reset(seed=0, options=None)
    with pytest.raises(ValueError, match="unknown reset option.*'foo'.*takes none"):
        env.reset(options={"foo": 1})
    with pytest.raises(ValueError, match="unknown reset option"):
        gym.make("NoisyModAdd-v0", m=3).reset(options={"reset_mask": np.ones(1, bool)})


def test_prompts_are_uniform_over_the_alphabet():
    env = NoisyAutomatonEnv(automaton="random", n=3, k=11, m=31)
    env.reset(seed=0)
    symbols = np.concatenate([env.reset()[0][:31] for _ in range(200)])
    assert stats.chisquare(np.bincount(symbols, minlength=11)).pvalue > 1e-4


def test_docstring_documents_every_info_key_and_argument():
    doc = NoisyAutomatonEnv.__doc__
    for heading in ("Description", "Action Space", "Observation Space", "Starting State", "Rewards",
                    "Episode End", "Information", "Arguments", "Version History"):
        assert f"## {heading}" in doc, heading
    args = set(noisy_expert_gym.FAMILIES["automaton"].defaults) | {"reward", "render_mode", "problem"}
    for key in {"step", "clean_so_far"} | END_KEYS | args:
        assert f"``{key}``" in doc, key


# ----------------------------------------------------------------------------- rendering
def _read_cell(img, row, col, num_digits, scale=3):
    """The digits drawn in one cell of a render_rgb frame (inverse of its layout)."""
    gutter = int(num_digits > 1)
    cell_w, cell_h = (4 * num_digits + 1 + 2 * gutter) * scale, 7 * scale
    y0, x0 = scale + row * (cell_h + scale) + scale, scale + col * cell_w + (1 + gutter) * scale
    text = ""
    for j in range(num_digits):
        block = img[y0 : y0 + 5 * scale : scale, x0 + j * 4 * scale : x0 + j * 4 * scale + 3 * scale : scale]
        ink = (block == 20).all(-1)
        text += next((ch for ch, g in _GLYPHS.items() if (g == ink).all()), "?")
    return text.strip()


def test_rgb_frames_show_multi_digit_state_ids():
    env = gym.make("NoisyS5-v0", m=4, render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    ref = RefAutomaton.of(u.task.automaton)
    xs, _ = ref_auto_split(ref, obs, 4)
    s = ref_run(ref, xs)
    written = [s[0], (s[1] + 1) % 120, 119 if s[2] != 119 else 118]  # a 3-digit wrong id
    for y in written:
        env.step(y)
    img = env.render()
    digits = len(str(u.task.pad_token))
    assert digits == 3
    assert [_read_cell(img, 0, i, digits) for i in range(4)] == [str(x) for x in xs]
    assert _read_cell(img, 0, 4, digits) == "="
    assert [_read_cell(img, 1, i + 1, digits) for i in range(3)] == [str(y) for y in written]
    green_px = (img == np.array(GREEN, np.uint8)).all(-1)
    red_px = (img == np.array(RED, np.uint8)).all(-1)
    assert green_px.any() and red_px.any()
    # Neighbouring ids are apart: every cell has a column of its own colour left and right of its text.
    row0 = img[3 * 3 + 3 * 3, :, :]  # a pixel row through the top line's glyphs
    for col in range(4):
        x0 = 3 + col * (4 * digits + 3) * 3
        assert (row0[x0 : x0 + 6] != 20).all() and (row0[x0 + (4 * digits + 1) * 3 : x0 + (4 * digits + 2) * 3] != 20).all()
    text = re.sub(r"\x1b\[[0-9;]*m", "", _ansi(written, seed=3))
    assert text.split("\n")[1].split()[:3] == [str(written[0]), f"{written[1]}!", f"{written[2]}!"]


def _ansi(written, seed):
    env = gym.make("NoisyS5-v0", m=4, render_mode="ansi")
    env.reset(seed=seed)
    for y in written:
        env.step(y)
    return env.render()
