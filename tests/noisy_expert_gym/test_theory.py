"""Closed forms of noisy-expert rollouts: brute force and Monte Carlo against theory.py."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym import theory
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks import ModAddTask
from tests.noisy_expert_gym import LAW_NAMES, enumerate_rollouts, ref_metrics, z_bound

#: Significance level of the Monte-Carlo tests (binomial tests and z-bounds).
ALPHA = 1e-4


def test_design_example_absorbing_p7_m31_eta02():
    # DESIGN §2: "only about (0.8 + 0.2/7)^31 ~ 0.3% of expert trajectories are fully clean".
    got = theory.prob_fully_clean("absorbing", 0.2, 7, 31)
    assert got == pytest.approx((0.8 + 0.2 / 7) ** 31, rel=1e-12)
    assert 0.0025 < got < 0.0035


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("p,m", [(2, 1), (2, 6), (3, 4), (5, 3), (4, 4)])
@pytest.mark.parametrize("eta", [0.0, 0.2, 0.6, 1.0])
def test_closed_forms_equal_brute_force(law, p, m, eta):
    """Enumerate all p^m chains with their probabilities (slow pure-Python reference)."""
    xs = [random.Random(f"{p}{m}").randrange(p) for _ in range(m)]
    full = final = prefix = total = 0.0
    for ys, prob in enumerate_rollouts(law, eta, p, xs):
        met = ref_metrics(xs, ys, p)
        total += prob
        full += prob * met["full_exact"]
        final += prob * met["final_exact"]
        prefix += prob * met["correct_prefix_len"]
    assert total == pytest.approx(1.0, abs=1e-12)
    assert theory.prob_fully_clean(law, eta, p, m) == pytest.approx(full, abs=1e-12)
    assert theory.prob_final_correct(law, eta, p, m) == pytest.approx(final, abs=1e-12)
    assert theory.expected_correct_prefix(law, eta, p, m) == pytest.approx(prefix, abs=1e-12)


def test_final_correct_limits():
    # eta = 0: always right; absorbing/mixture at eta = 1 are uniform: 1/p.
    for law in LAW_NAMES:
        assert theory.prob_final_correct(law, 0.0, 7, 31) == pytest.approx(1.0)
    assert theory.prob_final_correct("mixture", 1.0, 7, 31) == pytest.approx(1 / 7)
    assert theory.prob_final_correct("absorbing", 1.0, 7, 31) == pytest.approx(1 / 7)
    # biased at eta = 1 adds exactly m slips of +1: right iff p divides m.
    assert theory.prob_final_correct("biased", 1.0, 7, 14) == pytest.approx(1.0)
    assert theory.prob_final_correct("biased", 1.0, 7, 13) == pytest.approx(0.0)


@pytest.mark.parametrize("bad", [{"law": "absorbin"}, {"eta": 1.2}])
def test_theory_rejects_bad_input(bad):
    kw = {"law": "absorbing", "eta": 0.1, **bad}
    with pytest.raises(ValueError):
        theory.prob_final_correct(kw["law"], kw["eta"], 7, 5)
    with pytest.raises(ValueError):
        theory.prob_fully_clean(kw["law"], kw["eta"], 7, 5)


def _check_mc(law, eta, p, m, full, final, prefix):
    """Binomial tests (fractions) and a z-bound (mean prefix) at ALPHA against theory."""
    n = len(full)
    k_full = int(np.sum(full))
    k_final = int(np.sum(final))
    p_full = theory.prob_fully_clean(law, eta, p, m)
    p_final = theory.prob_final_correct(law, eta, p, m)
    assert stats.binomtest(k_full, n, p_full).pvalue > ALPHA, (k_full / n, p_full)
    assert stats.binomtest(k_final, n, p_final).pvalue > ALPHA, (k_final / n, p_final)
    ok, msg = z_bound([float(v) for v in prefix], theory.expected_correct_prefix(law, eta, p, m))
    assert ok, msg


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_expert_rollouts_match_theory(law, backend):
    p, m, eta, n = 5, 8, 0.15 if law != "biased" else 0.6, 4000
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, rng=np.random.default_rng(2024))
    prompts = task.sample_prompts(np.random.default_rng(7), n)
    if backend == "torch":
        gen = torch.Generator().manual_seed(3)
        chains = expert.rollout(torch.as_tensor(prompts), generator=gen)
        chains = chains.numpy()
    else:
        chains = expert.rollout(prompts)
    assert chains.shape == (n, m) and chains.min() >= 0 and chains.max() < p
    sums = np.cumsum(prompts[:, :m], axis=1) % p  # independent of the core
    ok = chains == sums
    prefix = np.where(ok.all(1), m, (~ok).argmax(1))
    _check_mc(law, eta, p, m, ok.all(1), ok[:, -1], prefix)
    # spot-check the env's metric definitions on these rollouts
    for i in range(20):
        met = ref_metrics(prompts[i, :m].tolist(), chains[i].tolist(), p)
        assert met["correct_prefix_len"] == prefix[i] and met["full_exact"] == ok[i].all()


@pytest.mark.parametrize("law", LAW_NAMES)
def test_env_episodes_driven_by_expert_match_theory(law):
    """Episodes of the single env, actions sampled from its noisy expert, end metrics vs theory."""
    p, m, eta, n = 7, 4, 0.2 if law != "biased" else 0.6, 300
    env = gym.make("NoisyModAdd-v0", p=p, m=m, eta=eta, law=law)
    expert = env.unwrapped.expert
    full, final, prefix = [], [], []
    obs, _ = env.reset(seed=99)
    for _ in range(n):
        done = False
        while not done:
            obs, _, done, _, info = env.step(expert.sample(obs))
        full.append(info["full_exact"])
        final.append(info["final_exact"])
        prefix.append(info["correct_prefix_len"])
        obs, _ = env.reset()
    _check_mc(law, eta, p, m, full, final, prefix)


@pytest.mark.parametrize("law", LAW_NAMES)
def test_vector_env_episodes_driven_by_expert_match_theory(law):
    p, m, eta, n = 7, 31, 0.2 if law != "biased" else 0.3, 4000
    env = gym.make_vec("NoisyModAdd-v0", num_envs=n, p=p, m=m, eta=eta, law=law)
    obs, _ = env.reset(seed=5)
    for _ in range(m):
        obs, _, term, _, info = env.step(env.unwrapped.expert.sample(obs))
    assert term.all() and info["_full_exact"].all()
    _check_mc(law, eta, p, m, info["full_exact"], info["final_exact"], info["correct_prefix_len"])
