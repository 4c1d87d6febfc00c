"""The pure batched ModAdd core (numpy and torch) against the pure-Python reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_expert_gym.tasks.modadd import ModAddTask, modadd_step
from tests.noisy_expert_gym import (
    make_obs,
    random_prefix,
    ref_clean_next,
    ref_has_error,
    ref_metrics,
    ref_sums,
)

SETTINGS = settings(max_examples=25, deadline=None)


def _prefix_batch(p: int, m: int, n: int, seed: int):
    rnd = random.Random(seed)
    pairs = [random_prefix(rnd, p, m) for _ in range(n)]
    obs = np.array([make_obs(xs, ys, p, m) for xs, ys in pairs], dtype=np.int64)
    return pairs, obs


def _chain_batch(p: int, m: int, n: int, seed: int):
    """Complete chains of every kind (prefix of length m)."""
    rnd = random.Random(seed)
    pairs = [random_prefix(rnd, p, m, length=m) for _ in range(n)]
    prompts = np.array([xs + [p] for xs, _ in pairs], dtype=np.int64)
    chain = np.array([ys for _, ys in pairs], dtype=np.int64)
    return pairs, prompts, chain


def test_sizes_and_tokens():
    task = ModAddTask(p=7, m=31)
    assert (task.num_actions, task.sep_token, task.pad_token, task.vocab_size) == (7, 7, 8, 9)
    assert (task.prompt_len, task.horizon, task.obs_len) == (32, 31, 63)
    assert task.answer_mask.tolist() == [True] * 7


@pytest.mark.parametrize("bad", [{"p": 1}, {"p": 0}, {"p": 2.5}, {"m": 0}, {"m": -3}, {"m": 1.5}])
def test_bad_sizes_raise(bad):
    with pytest.raises(ValueError, match="`p`|`m`"):
        ModAddTask(**{"p": 7, "m": 5, **bad})


@given(p=st.integers(2, 13), m=st.integers(1, 12), seed=st.integers(0, 2**31))
@SETTINGS
def test_prefix_functions_match_reference(p, m, seed):
    task = ModAddTask(p=p, m=m)
    pairs, obs = _prefix_batch(p, m, 24, seed)
    assert task.step_index(obs).tolist() == [len(ys) for _, ys in pairs]
    clean = [ref_clean_next(xs, ys, p) for xs, ys in pairs]
    assert task.clean_actions(obs).tolist() == clean
    assert task.slip_actions(obs).tolist() == [(c + 1) % p for c in clean]
    assert task.has_error(obs).tolist() == [ref_has_error(xs, ys, p) for xs, ys in pairs]
    assert task.true_sums(obs).tolist() == [ref_sums(xs, p) for xs, _ in pairs]
    task.validate_obs(obs)  # well-formed prefixes pass


@given(p=st.integers(2, 13), m=st.integers(1, 12), seed=st.integers(0, 2**31))
@SETTINGS
def test_along_functions_match_reference(p, m, seed):
    task = ModAddTask(p=p, m=m)
    pairs, prompts, chain = _chain_batch(p, m, 16, seed)
    clean_along = task.clean_along(prompts, chain)
    error_along = task.error_along(prompts, chain)
    assert clean_along.shape == error_along.shape == (16, m)
    for n, (xs, ys) in enumerate(pairs):
        assert clean_along[n].tolist() == [ref_clean_next(xs, ys[:t], p) for t in range(m)]
        assert error_along[n].tolist() == [ref_has_error(xs, ys[:t], p) for t in range(m)]
    assert (task.slip_along(prompts, chain) == (clean_along + 1) % p).all()
    metrics = task.metrics(prompts, chain)
    for n, (xs, ys) in enumerate(pairs):
        want = ref_metrics(xs, ys, p)
        assert {k: metrics[k][n].item() for k in want} == want


def test_observe_layout():
    task = ModAddTask(p=5, m=4)
    prompts = np.array([[1, 2, 3, 4, 5], [0, 0, 0, 0, 5]])
    obs = task.observe(prompts, np.array([[1, 3], [0, 4]]))
    assert obs.dtype == np.int64
    assert obs.tolist() == [[1, 2, 3, 4, 5, 1, 3, 6, 6], [0, 0, 0, 0, 5, 0, 4, 6, 6]]
    assert task.observe(prompts, np.empty((2, 0), np.int64))[:, 5:].tolist() == [[6] * 4] * 2


def test_sample_prompts_numpy_and_torch():
    task = ModAddTask(p=7, m=9)
    a = task.sample_prompts(np.random.default_rng(3), 500)
    b = task.sample_prompts(np.random.default_rng(3), 500)
    assert a.shape == (500, 10) and a.dtype == np.int64 and (a == b).all()
    assert (a[:, -1] == 7).all() and a[:, :-1].min() == 0 and a[:, :-1].max() == 6
    g = torch.Generator().manual_seed(0)
    t = task.sample_prompts(g, 500)
    assert t.shape == (500, 10) and t.dtype == torch.long
    assert (t[:, -1] == 7).all() and int(t[:, :-1].min()) == 0 and int(t[:, :-1].max()) == 6


@given(p=st.integers(2, 13), m=st.integers(1, 12), seed=st.integers(0, 2**31))
@SETTINGS
def test_numpy_and_torch_agree(p, m, seed):
    task = ModAddTask(p=p, m=m)
    _, obs = _prefix_batch(p, m, 16, seed)
    tobs = torch.as_tensor(obs)
    fns = (task.step_index, task.clean_actions, task.has_error, task.slip_actions, task.true_sums)
    for fn in fns:
        out = fn(tobs)
        assert isinstance(out, torch.Tensor), fn.__name__
        assert out.tolist() == fn(obs).tolist(), fn.__name__
    _, prompts, chain = _chain_batch(p, m, 16, seed)
    tp, tc = torch.as_tensor(prompts), torch.as_tensor(chain)
    for fn in (task.clean_along, task.error_along, task.slip_along):
        out = fn(tp, tc)
        assert isinstance(out, torch.Tensor), fn.__name__
        assert out.tolist() == fn(prompts, chain).tolist(), fn.__name__
    mt, mn = task.metrics(tp, tc), task.metrics(prompts, chain)
    assert {k: v.tolist() for k, v in mt.items()} == {k: v.tolist() for k, v in mn.items()}
    for t in range(m + 1):
        assert task.observe(tp, tc[:, :t]).tolist() == task.observe(prompts, chain[:, :t]).tolist()


@given(p=st.integers(2, 13), m=st.integers(1, 12), seed=st.integers(0, 2**31),
       reward=st.sampled_from(["final", "full", "dense"]))
@SETTINGS
def test_modadd_step_matches_reference(p, m, seed, reward):
    task = ModAddTask(p=p, m=m)
    pairs, obs = _prefix_batch(p, m, 16, seed)
    rnd = random.Random(seed + 1)
    actions = np.array([rnd.randrange(p) for _ in pairs], dtype=np.int64)
    before = obs.copy()
    new, rew, term, info = modadd_step(task, obs, actions, reward)
    assert (obs == before).all(), "modadd_step must not write into its input"
    for n, (xs, ys) in enumerate(pairs):
        a = int(actions[n])
        ys2 = ys + [a]
        assert new[n].tolist() == make_obs(xs, ys2, p, m)
        done = len(ys2) == m
        assert bool(term[n]) == done
        s = ref_sums(xs, p)
        if reward == "final":
            want = 1.0 if done and ys2[-1] == s[-1] else 0.0
        elif reward == "full":
            want = 1.0 if done and ys2 == s else 0.0
        else:
            want = (a == ref_clean_next(xs, ys, p)) / m
        assert rew[n] == pytest.approx(want, abs=1e-12)
        assert int(info["step"][n]) == len(ys2)
        assert bool(info["clean_so_far"][n]) == (ys2 == s[: len(ys2)])


def test_validate_obs_errors():
    task = ModAddTask(p=5, m=3)
    good = np.array([make_obs([1, 2, 3], [1], 5, 3)])
    task.validate_obs(good)
    with pytest.raises(ValueError, match=r"shape \(N, 7\)"):
        task.validate_obs(good[:, :-1])
    with pytest.raises(ValueError, match=r"shape"):
        task.validate_obs(good[0])
    for bad_tok in (-1, 7, 100):
        bad = good.copy()
        bad[0, 4] = bad_tok
        with pytest.raises(ValueError, match=r"\[0, 6\]"):
            task.validate_obs(bad)
    bad = good.copy()
    bad[0, 0] = 5  # an operand equal to the separator
    with pytest.raises(ValueError, match="operands"):
        task.validate_obs(bad)
    bad = good.copy()
    bad[0, 3] = 2  # separator missing
    with pytest.raises(ValueError, match="separator"):
        task.validate_obs(bad)
    bad = np.array([make_obs([1, 2, 3], [], 5, 3)])
    bad[0, 5] = 1  # a token after a pad
    with pytest.raises(ValueError, match="followed by padding"):
        task.validate_obs(bad)
    bad = np.array([make_obs([1, 2, 3], [1], 5, 3)])
    bad[0, 5] = 5  # separator inside the chain
    with pytest.raises(ValueError, match="residues"):
        task.validate_obs(bad)
