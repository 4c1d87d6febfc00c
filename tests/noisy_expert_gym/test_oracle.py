"""The expert oracle: closed forms of docs/design.md §2, query counting, sampling statistics, bad input."""

from __future__ import annotations

import math
import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks import ModAddTask
from tests.noisy_expert_gym import LAW_NAMES, make_obs, random_prefix, ref_clean_next, ref_probs

#: Significance level of every statistical test in this file: a correct
#: implementation fails one with probability <= ALPHA (seeds are fixed, so a
#: run is deterministic; ALPHA bounds the chance that the fixed seed is unlucky).
ALPHA = 1e-4


def _batch(p, m, n, seed, kind=None):
    rnd = random.Random(seed)
    pairs = [random_prefix(rnd, p, m, kind) for _ in range(n)]
    return pairs, np.array([make_obs(xs, ys, p, m) for xs, ys in pairs], dtype=np.int64)


def _ref(law, eta, p, pairs):
    return np.array([ref_probs(law, eta, p, xs, ys) for xs, ys in pairs])


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("p,m,eta",
                         [(7, 31, 0.2), (2, 5, 0.6), (11, 8, 0.05), (5, 6, 0.0), (3, 4, 1.0)])
@pytest.mark.parametrize("kind", ["clean", "slip", "corrupt", "random"])
def test_probs_equal_closed_forms(law, p, m, eta, kind):
    pairs, obs = _batch(p, m, 40, seed=f"{law}-{p}-{m}-{kind}", kind=kind)
    expert = Expert(ModAddTask(p, m), law=law, eta=eta)
    want = _ref(law, eta, p, pairs)
    got = expert.probs(obs)
    assert got.shape == (40, p)
    np.testing.assert_allclose(got, want, atol=1e-12)
    got_t = expert.probs(torch.as_tensor(obs))
    assert isinstance(got_t, torch.Tensor) and got_t.shape == (40, p)
    np.testing.assert_allclose(got_t.double().numpy(), want, atol=1e-6)


@given(p=st.integers(2, 13), m=st.integers(1, 12), eta=st.floats(0, 1),
       law=st.sampled_from(LAW_NAMES), seed=st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_probs_property(p, m, eta, law, seed):
    pairs, obs = _batch(p, m, 12, seed)
    expert = Expert(ModAddTask(p, m), law=law, eta=eta)
    got = expert.probs(obs)
    np.testing.assert_allclose(got, _ref(law, eta, p, pairs), atol=1e-12)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-12)
    assert (got >= 0).all()


def test_clean_expert_is_one_hot():
    pairs, obs = _batch(7, 9, 60, seed=5)
    env = gym.make("NoisyModAdd-v0", m=9)
    for clean in (env.unwrapped.clean_expert, Expert(ModAddTask(7, 9), clean=True)):
        got = clean.probs(obs)
        want = np.zeros((60, 7))
        want[np.arange(60), [ref_clean_next(xs, ys, 7) for xs, ys in pairs]] = 1.0
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(clean.probs(torch.as_tensor(obs)).numpy(), want)
        assert (clean.sample(obs) == want.argmax(1)).all()


@pytest.mark.parametrize("law,eta", [("absorbing", 0.3), ("mixture", 0.3), ("biased", 0.6),
                                     ("absorbing", 0.0), ("clean", None)])
def test_log_prob_consistent_with_probs(law, eta):
    p, m = 5, 6
    pairs, obs = _batch(p, m, 30, seed=11)
    task = ModAddTask(p, m)
    expert = Expert(task, clean=True) if law == "clean" else Expert(task, law=law, eta=eta)
    want = _ref(law, eta or 0.0, p, pairs)
    saw_zero = False
    for a in range(p):
        actions = np.full(30, a)
        lp = expert.log_prob(obs, actions)
        lp_t = expert.log_prob(torch.as_tensor(obs), torch.as_tensor(actions)).double().numpy()
        with np.errstate(divide="ignore"):
            ref = np.log(want[:, a])
        zero = want[:, a] == 0
        saw_zero |= bool(zero.any())
        assert (lp[zero] == -np.inf).all() and (lp_t[zero] == -np.inf).all()
        np.testing.assert_allclose(lp[~zero], ref[~zero], atol=1e-12)
        np.testing.assert_allclose(lp_t[~zero], ref[~zero], atol=1e-5)
    if law in ("clean", "biased") or eta == 0.0:
        assert saw_zero  # the -inf / probability-0 case was exercised
    # one observation -> a scalar
    lp1 = expert.log_prob(obs[0], 2)
    assert np.ndim(lp1) == 0
    assert lp1 == (np.log(want[0, 2]) if want[0, 2] > 0 else -np.inf)


def test_num_queries_counting():
    task = ModAddTask(7, 9)
    expert = Expert(task, law="absorbing", eta=0.2, rng=np.random.default_rng(0))
    _, obs = _batch(7, 9, 13, seed=1)
    assert expert.num_queries == 0
    expert.probs(obs)
    assert expert.num_queries == 13
    expert.sample(obs)
    expert.log_prob(obs, np.zeros(13, np.int64))
    assert expert.num_queries == 39
    expert.probs(obs[0])
    expert.sample(obs[0])
    assert expert.num_queries == 41
    expert.probs(torch.as_tensor(obs))
    assert expert.num_queries == 54
    expert.reset_queries()
    assert expert.num_queries == 0
    prompts = task.sample_prompts(np.random.default_rng(0), 5)
    chains = expert.rollout(prompts)
    assert chains.shape == (5, 9) and expert.num_queries == 5 * 9
    expert.reset_queries()
    expert.probs_along(prompts, chains)
    assert expert.num_queries == 5 * 9
    expert.rollout(torch.as_tensor(prompts), generator=torch.Generator().manual_seed(0))
    assert expert.num_queries == 2 * 5 * 9


def test_single_observation_calls():
    p, m = 7, 5
    pairs, obs = _batch(p, m, 1, seed=2, kind="slip")
    expert = Expert(ModAddTask(p, m), law="mixture", eta=0.3, rng=np.random.default_rng(0))
    pr = expert.probs(obs[0])
    assert pr.shape == (p,)
    np.testing.assert_allclose(pr, _ref("mixture", 0.3, p, pairs)[0], atol=1e-12)
    a = expert.sample(obs[0])
    assert np.ndim(a) == 0 and 0 <= int(a) < p
    prt = expert.probs(torch.as_tensor(obs[0]))
    assert tuple(prt.shape) == (p,)
    at = expert.sample(torch.as_tensor(obs[0]))
    assert at.ndim == 0 and 0 <= int(at) < p
    # a list works as well as an array
    np.testing.assert_allclose(expert.probs(obs[0].tolist()), pr)


@pytest.mark.parametrize("law", LAW_NAMES + ("clean",))
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_probs_along_equals_probs_of_prefixes(law, backend):
    p, m, n = 7, 8, 40
    rnd = random.Random(law)
    pairs = [random_prefix(rnd, p, m, length=m) for _ in range(n)]
    prompts = np.array([xs + [p] for xs, _ in pairs], dtype=np.int64)
    chain = np.array([ys for _, ys in pairs], dtype=np.int64)
    task = ModAddTask(p, m)
    expert = Expert(task, clean=True) if law == "clean" else Expert(task, law=law, eta=0.25)
    if backend == "torch":
        prompts, chain = torch.as_tensor(prompts), torch.as_tensor(chain)
    along = expert.probs_along(prompts, chain)
    assert tuple(along.shape) == (n, m, p)
    for t in range(m):
        single = expert.probs(task.observe(prompts, chain[:, :t]))
        assert type(single) is type(along)
        np.testing.assert_allclose(np.asarray(along[:, t]), np.asarray(single), atol=1e-12)
        want = np.array([ref_probs(law, 0.25, p, xs, ys[:t]) for xs, ys in pairs])
        np.testing.assert_allclose(np.asarray(along[:, t], dtype=np.float64), want, atol=1e-6)


def test_absorbing_detects_errors_on_student_prefixes():
    # A slip the clean expert then carried forward: only the comparison with the
    # true sums reveals it (the later tokens all agree with the clean expert).
    p, m = 7, 6
    xs = [3, 1, 4, 1, 5, 2]
    ys = [3, 5, 2, 3]  # true sums 3, 4, 1, 2: y_2 = 5 is a slip, then carried forward
    expert = Expert(ModAddTask(p, m), law="absorbing", eta=0.2)
    np.testing.assert_allclose(expert.probs(np.array(make_obs(xs, ys, p, m))), [1 / 7] * 7)
    obs = np.array(make_obs(xs, ys, p, m))
    mixture = Expert(ModAddTask(p, m), law="mixture", eta=0.2).probs(obs)
    assert mixture.argmax() == (3 + 5) % 7 and mixture.max() == pytest.approx(0.8 + 0.2 / 7)


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sample_noise_rates_match_eta(law, backend):
    """Binomial tests at ALPHA: rate of the clean token on clean prefixes, and after an error."""
    p, m, eta, n = 5, 6, 0.3, 6000
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, rng=np.random.default_rng(123))
    for kind in ("clean", "slip"):
        pairs, obs = _batch(p, m, n, seed=7, kind=kind)
        if kind == "slip":  # length >= 1 so the prefix really holds an error
            keep = [i for i, (_, ys) in enumerate(pairs) if ys]
            pairs, obs = [pairs[i] for i in keep], obs[keep]
        clean = np.array([ref_clean_next(xs, ys, p) for xs, ys in pairs])
        if backend == "torch":
            gen = torch.Generator().manual_seed(1)
            a = expert.sample(torch.as_tensor(obs), generator=gen).numpy()
        else:
            a = expert.sample(obs)
        assert a.shape == (len(pairs),) and a.min() >= 0 and a.max() < p
        uniform_after_error = law == "absorbing" and kind == "slip"
        if uniform_after_error:
            want_clean = 1 / p
        else:
            want_clean = 1 - eta if law == "biased" else 1 - eta + eta / p
        k = int((a == clean).sum())
        assert stats.binomtest(k, len(a), want_clean).pvalue > ALPHA, (kind, k / len(a), want_clean)
        if law == "biased":  # every other draw is the off-by-one slip
            assert ((a == clean) | (a == (clean + 1) % p)).all()
        else:  # the noise is uniform over the residues: chi-square on the offsets a - clean
            want = np.full(p, (1 - want_clean) / (p - 1))
            want[0] = want_clean
            counts = np.bincount((a - clean) % p, minlength=p)
            assert stats.chisquare(counts, want * len(a)).pvalue > ALPHA, counts


def test_sample_uses_the_env_rng():
    env = gym.make("NoisyModAdd-v0", m=9, eta=0.5)
    obs, _ = env.reset(seed=4)
    batch = np.repeat(obs[None], 200, axis=0)
    a = env.unwrapped.expert.sample(batch)
    env.reset(seed=4)
    b = env.unwrapped.expert.sample(batch)
    assert (a == b).all()
    env.reset(seed=5)
    assert not (env.unwrapped.expert.sample(batch) == a).all()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_bad_observations_raise(backend):
    p, m = 7, 5
    expert = Expert(ModAddTask(p, m), law="absorbing", eta=0.1)
    good = np.array([make_obs([1, 2, 3, 4, 5], [1, 3], p, m)], dtype=np.int64)
    conv = torch.as_tensor if backend == "torch" else (lambda x: x)
    expert.probs(conv(good))
    for bad in (good[:, :-1], np.concatenate([good, good], 1), good[None], good[0, :4]):
        with pytest.raises(ValueError, match="shape"):
            expert.probs(conv(bad))
    if backend == "numpy":  # the torch path checks shapes only (no device sync per query)
        for tok in (-1, p + 2, 99):
            bad = good.copy()
            bad[0, m + 2] = tok
            with pytest.raises(ValueError, match="tokens"):
                expert.probs(bad)
        bad = good.copy()
        bad[0, 0] = p  # operand out of range
        with pytest.raises(ValueError, match="operands"):
            expert.sample(bad)
        with pytest.raises(ValueError, match="integer"):
            expert.probs(good.astype(np.float64))
    full = np.array([make_obs([1, 2, 3, 4, 5], [1, 3, 6, 3, 1], p, m)], dtype=np.int64)
    with pytest.raises(ValueError, match="complete chain"):
        expert.probs(conv(full))


def test_bad_actions_to_log_prob_raise():
    p, m = 7, 5
    expert = Expert(ModAddTask(p, m), law="absorbing", eta=0.1)
    obs = np.array([make_obs([1, 2, 3, 4, 5], [1], p, m)] * 3, dtype=np.int64)
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        expert.log_prob(obs, np.array([0, 7, 1]))
    with pytest.raises(ValueError, match=r"\[0, 6\]"):
        expert.log_prob(obs, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="3 observations"):
        expert.log_prob(obs, np.array([0, 1]))


def test_bad_chains_to_probs_along_raise():
    p, m = 7, 5
    task = ModAddTask(p, m)
    expert = Expert(task, law="absorbing", eta=0.1)
    prompts = task.sample_prompts(np.random.default_rng(0), 4)
    chain = task.true_sums(prompts)
    expert.probs_along(prompts, chain)
    with pytest.raises(ValueError):
        expert.probs_along(prompts, chain[:, :-1])
    with pytest.raises(ValueError):
        expert.probs_along(prompts[:1], chain)  # must not broadcast one prompt over 4 chains
    for tok in (-1, p, p + 1):
        bad = chain.copy()
        bad[1, 2] = tok
        with pytest.raises(ValueError):
            expert.probs_along(prompts, bad)
    bad = prompts.copy()
    bad[0, 0] = p
    with pytest.raises(ValueError):
        expert.probs_along(bad, chain)
    with pytest.raises(ValueError):
        expert.probs_along(torch.as_tensor(prompts), torch.as_tensor(chain[:, :-1]))
    with pytest.raises(ValueError):
        expert.rollout(prompts[:, :-1])


@pytest.mark.parametrize("kwargs,match", [
    ({"law": "absorbing", "eta": 1.5}, r"\[0, 1\]"),
    ({"law": "absorbing", "eta": -0.01}, r"\[0, 1\]"),
    ({"law": "absorbing", "eta": math.nan}, r"\[0, 1\]"),
    ({"law": "mixtur", "eta": 0.1}, "Did you mean `mixture`"),
    ({"law": "temperature", "eta": 0.1}, "absorbing"),
])
def test_bad_law_or_eta_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Expert(ModAddTask(7, 5), **kwargs)
