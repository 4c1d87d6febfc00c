"""The per-query logit noise: off changes nothing; on, each query reads its own perturbed row (support kept,
reproducible from the seed, every law x access mode reading the same row), and the closed forms of
theory_logit_noise against Monte Carlo with stated tolerances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisy_expert_gym import make_problem
from noisy_expert_gym.logit_noise import LogitNoise
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks import ModAddTask
from noisy_expert_gym.theory_logit_noise import (
    argmax_distribution,
    expected_row_second_order,
    expected_row_two_tokens,
    prob_argmax_kept,
)
from noisy_expert_gym.topk import topk_of
from noisy_expert_gym.utils import sample_categorical
from tests.noisy_expert_gym import CORRUPTION_LAW_NAMES, LAW_NAMES

ALL_LAWS = LAW_NAMES + CORRUPTION_LAW_NAMES


def _law_kw(law):
    return {"law": law, "eta": 0.6 if law == "biased" else 0.3,
            **({"kappa": 0.5, "corruption_seed": 4} if law in CORRUPTION_LAW_NAMES else {})}


def _perturbed(row, sigma, dist, n, seed=0):
    """n independent perturbations of one row, (n, A) float64."""
    return LogitNoise(sigma, dist).perturb(np.tile(np.asarray(row, np.float64), (n, 1)), np.random.default_rng(seed))


def test_validation():
    for bad in (-0.1, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="`logit_noise`"):
            LogitNoise(bad)
    with pytest.raises(ValueError, match="Did you mean `gumbel`"):
        LogitNoise(0.5, "gumble")
    with pytest.raises(ValueError, match="has no effect with `logit_noise=0`"):
        make_problem("NoisyModAdd-v0", logit_noise_dist="gumbel")
    with pytest.raises(ValueError, match="the clean expert pi\\* has no logit noise"):
        Expert(ModAddTask(3, 2), clean=True, logit_noise=0.5)


@pytest.mark.parametrize("law", ALL_LAWS)
def test_off_draws_nothing_and_changes_nothing(law):
    task = ModAddTask(5, 6)
    prompts = task.sample_prompts(np.random.default_rng(1), 8)
    outs = []
    for kw in ({}, {"logit_noise": 0.0}):
        ex = Expert(task, **_law_kw(law), rng=np.random.default_rng(2), **kw)
        chain = ex.rollout(prompts)
        outs.append((chain, ex.probs_along(prompts, chain), ex.sample_along(prompts, chain, 3), ex.rng.random()))
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("law", ALL_LAWS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_each_query_reads_its_own_row_on_the_laws_support(law, backend):
    task = ModAddTask(5, 6)
    ex = Expert(task, **_law_kw(law), logit_noise=0.7, rng=np.random.default_rng(0))
    prompts = task.sample_prompts(np.random.default_rng(1), 4)
    chain = ex.rollout(prompts)
    if backend == "torch":
        prompts, chain = torch.as_tensor(prompts), torch.as_tensor(chain)
    law_rows = np.asarray(ex._probs_along(prompts, chain))
    a, b = np.asarray(ex.probs_along(prompts, chain)), np.asarray(ex.probs_along(prompts, chain))
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-6)
    assert ((a > 0) == (law_rows > 0)).all()  # no mass created off the law's support, none lost on it
    several = (law_rows > 0).sum(-1) > 1
    assert several.any() and (np.abs(a - b).max(-1)[several] > 1e-6).all()  # identical queries disagree
    assert (np.abs(a - b).max(-1)[~several] == 0).all()  # a one-hot row stays one-hot


@pytest.mark.parametrize("law", ALL_LAWS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dist", ["gaussian", "gumbel"])
def test_every_access_mode_reads_the_same_perturbed_row_from_the_same_seed(law, backend, dist):
    """full: the row; sample: a draw from it (the noise first, then the uniform); topk: its top k."""
    task = ModAddTask(5, 6)
    prompts = task.sample_prompts(np.random.default_rng(1), 16)
    chain = Expert(task, **_law_kw(law), rng=np.random.default_rng(0)).rollout(prompts)
    if backend == "torch":
        prompts, chain = torch.as_tensor(prompts), torch.as_tensor(chain)

    def gen():
        return torch.Generator().manual_seed(5) if backend == "torch" else np.random.default_rng(5)

    kw = {**_law_kw(law), "logit_noise": 0.8, "logit_noise_dist": dist}
    full = Expert(task, **kw)
    g = gen()
    rows = full.probs_along(prompts, chain, generator=g)
    labels = sample_categorical(rows, g)
    g = gen()
    assert (np.asarray(full.sample_along(prompts, chain, 1, generator=g)[..., 0]) == np.asarray(labels)).all()
    g = gen()
    sample_only = Expert(task, **kw, access="sample")
    assert (np.asarray(sample_only.sample_along(prompts, chain, 1, generator=g)[..., 0]) == np.asarray(labels)).all()
    topk = Expert(task, **kw, access="topk", top_k=3).topk_along(prompts, chain, generator=gen())
    np.testing.assert_array_equal(np.asarray(topk.ids), np.asarray(topk_of(rows, 3).ids))
    # reproducible: the same seed answers the same; k samples are k queries from k rows
    ks = Expert(task, **kw).sample_along(prompts, chain, 50, generator=gen())
    ks2 = Expert(task, **kw).sample_along(prompts, chain, 50, generator=gen())
    assert (np.asarray(ks) == np.asarray(ks2)).all()


def test_problem_runs_are_reproducible_from_the_seed():
    a, b = (make_problem("NoisyModAdd-v0", m=5, eta=0.3, logit_noise=1.0).with_rng(np.random.default_rng(9))
            for _ in range(2))
    prompts = a.task.sample_prompts(np.random.default_rng(0), 32)
    np.testing.assert_array_equal(a.expert.rollout(prompts), b.expert.rollout(prompts))


# ----- closed forms against Monte Carlo ----------------------------------------------------------
N_MC = 200_000
ROWS = [np.array([0.7, 0.1, 0.1, 0.1]), np.array([0.5, 0.3, 0.15, 0.05, 0.0]), np.array([0.4, 0.6])]


@pytest.mark.parametrize("row", ROWS, ids=["mixture-like", "skewed", "binary"])
@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_gumbel_argmax_is_the_softmax_at_temperature_sigma(row, sigma):
    draws = _perturbed(row, sigma, "gumbel", N_MC, seed=1).argmax(-1)
    freq = np.bincount(draws, minlength=len(row)) / N_MC
    want = argmax_distribution(row, sigma)
    assert (np.abs(freq - want) <= 5 * np.sqrt(want * (1 - want) / N_MC)).all(), (freq, want)  # 5 standard errors
    assert prob_argmax_kept(row, 0, sigma, "gumbel") == pytest.approx(want[0])


@pytest.mark.parametrize("row", ROWS, ids=["mixture-like", "skewed", "binary"])
@pytest.mark.parametrize("sigma", [0.5, 1.5, 4.0])
def test_gaussian_probability_that_the_clean_token_stays_the_argmax(row, sigma):
    clean = int(np.argmax(row))
    kept = (_perturbed(row, sigma, "gaussian", N_MC, seed=2).argmax(-1) == clean).mean()
    want = prob_argmax_kept(row, clean, sigma, "gaussian")
    assert abs(kept - want) < 5 * np.sqrt(want * (1 - want) / N_MC), (kept, want)
    assert prob_argmax_kept(row, clean, 0.0) == 1.0 and want < 1.0


def test_the_expert_keeps_its_clean_token_on_top_as_the_closed_form_says():
    """Through the oracle: the top-1 of a mixture row under Gaussian logit noise (the nail-mode argmax label)."""
    task, eta, sigma, n = ModAddTask(7, 1), 0.3, 1.0, 40_000
    ex = Expert(task, law="mixture", eta=eta, logit_noise=sigma, rng=np.random.default_rng(4))
    prompts = task.sample_prompts(np.random.default_rng(0), n)
    obs = task.observe(prompts, prompts[:, :0])
    kept = (ex.topk(obs, 1).ids[:, 0] == task.clean_actions(obs)).mean()
    row = np.full(7, eta / 7)
    row[0] += 1 - eta
    want = prob_argmax_kept(row, 0, sigma)
    assert abs(kept - want) < 5 * np.sqrt(want * (1 - want) / n), (kept, want)


@pytest.mark.parametrize("dist", ["gaussian", "gumbel"])
@pytest.mark.parametrize("p1,sigma", [(0.8, 1.0), (0.6, 2.0), (0.95, 0.5)])
def test_expected_row_of_a_two_token_row(dist, p1, sigma):
    r = _perturbed([p1, 1 - p1], sigma, dist, N_MC, seed=3)[:, 0]
    want = expected_row_two_tokens(p1, sigma, dist)
    assert abs(r.mean() - want) < 5 * r.std() / np.sqrt(N_MC), (r.mean(), want)
    assert want < p1  # the noise flattens the row


def test_expected_row_to_second_order_for_gaussian_noise():
    """Tolerance 1e-3: the O(sigma^4) remainder at sigma = 0.3 (about 4e-4 here) plus 5 Monte Carlo standard
    errors (about 4e-4 at 10^6 draws); the second-order correction itself is ~8x larger, so the test sees it."""
    row, sigma = np.array([0.55, 0.25, 0.15, 0.05]), 0.3
    r = _perturbed(row, sigma, "gaussian", 1_000_000, seed=4)
    want = expected_row_second_order(row, sigma)
    np.testing.assert_allclose(r.mean(0), want, atol=1e-3)
    assert np.abs(want - row).max() > 7e-3
    assert expected_row_two_tokens(0.8, 0.15) == pytest.approx(expected_row_second_order([0.8, 0.2], 0.15)[0],
                                                                abs=2e-4)
