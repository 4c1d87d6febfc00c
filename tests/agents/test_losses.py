"""Tests of agents.losses against closed forms and independent numpy/scipy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.special import log_softmax as np_log_softmax
from scipy.special import softmax as np_softmax
from scipy.stats import entropy

from agents import losses as L

V = 6


def _rand(seed: int, n: int = 16, v: int = V) -> tuple[np.ndarray, np.ndarray]:
    """Random logits (n, v) and strictly positive teacher rows (n, v), float64."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, v))
    p = rng.dirichlet(np.full(v, 0.7), size=n)
    return logits, p


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def _np_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    # scipy.stats.entropy(p, q) = sum p log(p / q), with 0 log 0 = 0.
    return np.array([entropy(pi, qi) for pi, qi in zip(p, q)])


# --------------------------------------------------------------------------- exact KLs


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_forward_kl_matches_scipy(temperature: float) -> None:
    logits, p = _rand(0)
    q = np_softmax(logits / temperature, axis=-1)
    got = L.forward_kl(_t(logits), _t(p), temperature).numpy()
    np.testing.assert_allclose(got, _np_kl(p, q), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_reverse_kl_matches_scipy(temperature: float) -> None:
    logits, p = _rand(1)
    q = np_softmax(logits / temperature, axis=-1)
    got = L.reverse_kl(_t(logits), _t(p), temperature).numpy()
    np.testing.assert_allclose(got, _np_kl(q, p), rtol=1e-10, atol=1e-12)


def test_forward_kl_one_hot_teacher_is_clean_nll() -> None:
    logits, _ = _rand(2)
    clean = np.arange(len(logits)) % V
    p = np.eye(V)[clean]
    want = -np_log_softmax(logits, axis=-1)[np.arange(len(logits)), clean]
    got = L.forward_kl(_t(logits), _t(p)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isfinite(got).all()


def test_forward_kl_teacher_with_zeros_uses_0log0() -> None:
    logits, p = _rand(3)
    p[:, :2] = 0.0
    p /= p.sum(-1, keepdims=True)
    q = np_softmax(logits, axis=-1)
    got = L.forward_kl(_t(logits), _t(p)).numpy()
    np.testing.assert_allclose(got, _np_kl(p, q), rtol=1e-10)


def test_reverse_kl_one_hot_teacher_clamps_log_p() -> None:
    logits, _ = _rand(4)
    clean = np.arange(len(logits)) % V
    p = np.eye(V)[clean]
    min_prob = 1e-8
    q = np_softmax(logits, axis=-1)
    # Hand form: sum_a Q(a) (log Q(a) - log max(P(a), min_prob)).
    want = (q * (np.log(q) - np.log(np.maximum(p, min_prob)))).sum(-1)
    got = L.reverse_kl(_t(logits), _t(p), min_prob=min_prob).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.isfinite(got).all()
    # The clamp is documented as a finite stand-in for +inf: it grows as min_prob shrinks.
    assert (L.reverse_kl(_t(logits), _t(p), min_prob=1e-12).numpy() > got).all()


def test_kl_zero_iff_equal() -> None:
    logits, p = _rand(5)
    q = torch.softmax(_t(logits), -1)
    for kl in (L.forward_kl, L.reverse_kl):
        np.testing.assert_allclose(kl(_t(logits), q).numpy(), 0.0, atol=1e-12)
        assert (kl(_t(logits), _t(p)) > 1e-6).all()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    v=st.integers(2, 9),
    temperature=st.floats(0.25, 4.0),
    beta=st.floats(0.0, 1.0),
)
def test_divergences_nonnegative_and_match_numpy(
    seed: int, v: int, temperature: float, beta: float
) -> None:
    logits, p = _rand(seed, n=4, v=v)
    p = np.maximum(p, 1e-6)
    p /= p.sum(-1, keepdims=True)
    q = np_softmax(logits / temperature, axis=-1)
    fwd = L.forward_kl(_t(logits), _t(p), temperature).numpy()
    rev = L.reverse_kl(_t(logits), _t(p), temperature).numpy()
    jsd = L.generalized_jsd(_t(logits), _t(p), beta, temperature).numpy()
    np.testing.assert_allclose(fwd, _np_kl(p, q), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(rev, _np_kl(q, p), rtol=1e-8, atol=1e-10)
    m = beta * p + (1 - beta) * q
    # TRL's convention special-cases the endpoints (the interior formula is 0 there).
    want = {0.0: _np_kl(p, q), 1.0: _np_kl(q, p)}.get(
        beta, beta * _np_kl(p, m) + (1 - beta) * _np_kl(q, m)
    )
    np.testing.assert_allclose(jsd, want, rtol=1e-8, atol=1e-10)
    assert (fwd >= -1e-12).all() and (rev >= -1e-12).all() and (jsd >= -1e-12).all()


# --------------------------------------------------------------------------- generalized JSD


def test_gjsd_endpoints_are_forward_and_reverse_kl() -> None:
    logits, p = _rand(6)
    q = np_softmax(logits, axis=-1)
    np.testing.assert_allclose(
        L.generalized_jsd(_t(logits), _t(p), 0.0).numpy(), _np_kl(p, q), rtol=1e-10
    )
    np.testing.assert_allclose(
        L.generalized_jsd(_t(logits), _t(p), 1.0).numpy(), _np_kl(q, p), rtol=1e-10
    )


def test_gjsd_half_is_classic_jsd() -> None:
    logits, p = _rand(7)
    q = np_softmax(logits, axis=-1)
    # scipy's jensenshannon is the square root of JSD (natural log by default).
    want = np.array([jensenshannon(pi, qi) ** 2 for pi, qi in zip(p, q)])
    got = L.generalized_jsd(_t(logits), _t(p), 0.5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert (got <= math.log(2) + 1e-12).all()  # classic JSD is bounded by log 2


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.9])
def test_gjsd_interior_matches_numpy_formula_with_zero_teacher_probs(beta: float) -> None:
    logits, p = _rand(8)
    p[:, 0] = 0.0  # exact zeros: the log-space mixture must still be finite
    p /= p.sum(-1, keepdims=True)
    q = np_softmax(logits, axis=-1)
    m = beta * p + (1 - beta) * q
    want = beta * _np_kl(p, m) + (1 - beta) * _np_kl(q, m)
    got = L.generalized_jsd(_t(logits), _t(p), beta).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_gjsd_interior_scales_like_its_endpoints() -> None:
    # Documented discontinuity: JSD_beta / beta -> KL(P||Q) and JSD_beta / (1-beta) -> KL(Q||P).
    logits, p = _rand(9)
    q = np_softmax(logits, axis=-1)
    eps = 1e-6
    np.testing.assert_allclose(
        L.generalized_jsd(_t(logits), _t(p), eps).numpy() / eps, _np_kl(p, q), rtol=1e-4
    )
    np.testing.assert_allclose(
        L.generalized_jsd(_t(logits), _t(p), 1 - eps).numpy() / eps, _np_kl(q, p), rtol=1e-4
    )


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan")])
def test_gjsd_bad_beta_raises(beta: float) -> None:
    logits, p = _rand(10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.generalized_jsd(_t(logits), _t(p), beta)


# --------------------------------------------------------------------------- temperature, shapes


@pytest.mark.parametrize("temperature", [0.3, 1.7])
def test_temperature_is_division_of_logits(temperature: float) -> None:
    logits, p = _rand(11)
    x, scaled, tp = _t(logits), _t(logits / temperature), _t(p)
    a = torch.arange(len(logits)) % V
    pairs = [
        (L.forward_kl(x, tp, temperature), L.forward_kl(scaled, tp)),
        (L.reverse_kl(x, tp, temperature), L.reverse_kl(scaled, tp)),
        (L.generalized_jsd(x, tp, 0.4, temperature), L.generalized_jsd(scaled, tp, 0.4)),
        (L.mc_forward(x, a, temperature), L.mc_forward(scaled, a)),
    ]
    for got, want in pairs:
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_bad_temperature_raises(temperature: float) -> None:
    logits, p = _rand(12)
    x, tp = _t(logits), _t(p)
    a = torch.zeros(len(logits), dtype=torch.long)
    calls = [
        lambda: L.forward_kl(x, tp, temperature),
        lambda: L.reverse_kl(x, tp, temperature),
        lambda: L.generalized_jsd(x, tp, 0.5, temperature),
        lambda: L.mc_forward(x, a, temperature),
        lambda: L.score_function_reverse_kl(x, a, tp.log(), tp[:, 0].log(), temperature),
        lambda: L.sample_actions(x, temperature=temperature),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="temperature"):
            call()


@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (2, 3, 4)])
def test_shapes_per_position(lead: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*lead, V, generator=g)
    p = torch.softmax(torch.randn(*lead, V, generator=g), -1)
    a, log_q = L.sample_actions(logits, generator=g)
    assert a.shape == lead and a.dtype == torch.long and log_q.shape == lead
    outs = [
        L.forward_kl(logits, p),
        L.reverse_kl(logits, p),
        L.generalized_jsd(logits, p, 0.3),
        L.mc_forward(logits, a),
        L.cross_entropy(logits, a),
        L.score_function_reverse_kl(logits, a, p.log(), log_q),
        L.score_function_reverse_kl(logits, a, p.log().gather(-1, a[..., None])[..., 0], log_q),
    ]
    for out in outs:
        assert out.shape == lead


def test_bf16_logits_are_upcast() -> None:
    logits, p = _rand(13)
    x = _t(logits).to(torch.bfloat16)
    out = L.forward_kl(x, _t(p).float())
    assert out.dtype == torch.float32
    want = _np_kl(p, np_softmax(x.double().numpy(), axis=-1))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- Monte-Carlo losses


def test_mc_forward_expectation_is_cross_entropy() -> None:
    # E_{a~P}[-log Q(a)] = KL(P||Q) + H(P). N = 100k draws per row; tolerance = 5
    # standard errors of the sample mean (computed from the closed-form variance).
    logits, p = _rand(14, n=4)
    q = np_softmax(logits, axis=-1)
    n = 100_000
    rng = np.random.default_rng(15)
    draws = np.stack([rng.choice(V, size=n, p=pi) for pi in p], axis=1)  # (n, rows)
    x = _t(logits).expand(n, -1, -1)  # (n, rows, V)
    got = L.mc_forward(x, torch.from_numpy(draws)).mean(0).numpy()
    nll = -np.log(q)
    want = _np_kl(p, q) + np.array([entropy(pi) for pi in p])
    se = np.sqrt((p * nll**2).sum(-1) - want**2) / math.sqrt(n)
    assert (np.abs(got - want) < 5 * se).all(), (got, want, se)
    assert L.cross_entropy is L.mc_forward


def test_sample_actions_distribution_and_log_q() -> None:
    logits, _ = _rand(16, n=3)
    temperature = 0.7
    q = np_softmax(logits / temperature, axis=-1)
    n = 40_000
    x = _t(logits).expand(n, -1, -1)  # (n, 3, V)
    a, log_q = L.sample_actions(x, torch.Generator().manual_seed(0), temperature)
    a2, _ = L.sample_actions(x, torch.Generator().manual_seed(0), temperature)
    assert torch.equal(a, a2)  # reproducible with a seeded generator
    assert not log_q.requires_grad
    np.testing.assert_allclose(log_q.numpy(), np.log(q)[np.arange(3), a.numpy()], rtol=1e-12)
    freq = np.stack([np.bincount(a[:, r].numpy(), minlength=V) / n for r in range(3)])
    # Binomial standard error <= 0.5 / sqrt(n) = 0.0025; 5 sigma.
    np.testing.assert_allclose(freq, q, atol=0.0125)


def _sf_grad_stats(
    logits: np.ndarray, p: np.ndarray, reps: int, per_rep: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the score-function gradient w.r.t. logits.

    ``reps`` independent replicate estimates, each averaging ``per_rep`` draws
    a' ~ Q_theta (q = Q_theta, detached, as in OPD-R / NAIL-R).
    """
    # One leaf copy per replicate, so a single backward of the sum of replicate
    # means yields every replicate's gradient at once.
    leaf = _t(logits).expand(reps, -1, -1).clone().requires_grad_(True)  # (reps, rows, V)
    x = leaf.unsqueeze(1).expand(-1, per_rep, -1, -1)  # (reps, per_rep, rows, V)
    a, log_q = L.sample_actions(x, torch.Generator().manual_seed(seed))
    log_p = _t(p).log().expand_as(x)  # full teacher rows, gathered at a' by the loss
    val = L.score_function_reverse_kl(x, a, log_p, log_q)  # (reps, per_rep, rows)
    val.mean(1).sum().backward()
    grads = leaf.grad.numpy()  # (reps, rows, V)
    return grads.mean(0), grads.std(0, ddof=1) / math.sqrt(reps)


def test_score_function_gradient_matches_exact_reverse_kl_gradient() -> None:
    # float64, seeded; 16 replicates x 8k draws = 128k draws per row. Tolerance:
    # 6 x the largest standard error (estimated across replicates; the pooled max is
    # used because per-entry estimates from 16 replicates are themselves noisy for
    # rare tokens) + 1e-4. The error shrinks as 1/sqrt(draws): no bias.
    logits, p = _rand(17, n=3)
    leaf = _t(logits).requires_grad_(True)
    (exact,) = torch.autograd.grad(L.reverse_kl(leaf, _t(p)).sum(), leaf)
    mean, se = _sf_grad_stats(logits, p, reps=16, per_rep=8_000, seed=18)
    assert se.max() < 0.02  # the test has power: errors well below the gradient scale
    assert np.abs(exact.numpy()).max() > 0.1
    np.testing.assert_array_less(np.abs(mean - exact.numpy()), 6 * se.max() + 1e-4)


def test_score_function_gradient_with_one_hot_teacher_matches_clamped_reverse_kl() -> None:
    # A clean expert: log P = -inf off the clean token; both sides floor it at log(1e-8).
    logits, _ = _rand(19, n=2)
    p = np.eye(V)[[0, 3]]
    leaf = _t(logits).requires_grad_(True)
    (exact,) = torch.autograd.grad(L.reverse_kl(leaf, _t(p)).sum(), leaf)
    mean, se = _sf_grad_stats(logits, p, reps=16, per_rep=32_000, seed=20)
    assert np.isfinite(mean).all()
    np.testing.assert_array_less(np.abs(mean - exact.numpy()), 6 * se.max() + 1e-4)


def test_score_function_value_is_an_estimate_not_the_kl() -> None:
    # Per position the value is -(log P(a') - log Q(a')) (w = 1 in value): it differs
    # from the exact KL, only its mean over a' ~ Q does not (beyond MC error).
    logits, p = _rand(21, n=3)
    q = np_softmax(logits, axis=-1)
    n = 50_000
    x = _t(logits).expand(n, -1, -1)
    a, log_q = L.sample_actions(x, torch.Generator().manual_seed(22))
    val = L.score_function_reverse_kl(x, a, _t(p).log().expand_as(x), log_q).numpy()  # (n, 3)
    exact = _np_kl(q, p)
    assert np.abs(val - exact).max() > 0.1
    np.testing.assert_allclose(
        val, np.log(q / p)[np.arange(3), a.numpy()], rtol=1e-10
    )  # the closed-form single-sample value
    se = val.std(0) / math.sqrt(n)
    np.testing.assert_array_less(np.abs(val.mean(0) - exact), 5 * se)


def test_score_function_detaches_teacher_and_sample_log_probs() -> None:
    logits, p = _rand(23, n=4)
    x = _t(logits).requires_grad_(True)
    a, log_q = L.sample_actions(x, torch.Generator().manual_seed(0))
    log_p = _t(p).log().requires_grad_(True)
    log_q = log_q.clone().requires_grad_(True)
    L.score_function_reverse_kl(x, a, log_p, log_q).sum().backward()
    assert x.grad is not None and log_p.grad is None and log_q.grad is None


def test_greedy_token_gives_a_biased_gradient() -> None:
    # Why NAIL-R needs a fresh a' ~ Q: plugging the greedy token (not a sample of q)
    # into the estimator does not give grad KL(Q||P) in general.
    logits, p = _rand(24, n=3)
    leaf = _t(logits).requires_grad_(True)
    (exact,) = torch.autograd.grad(L.reverse_kl(leaf, _t(p)).sum(), leaf)
    greedy = leaf.argmax(-1)
    log_q = torch.log_softmax(leaf, -1).gather(-1, greedy[:, None])[:, 0].detach()
    (biased,) = torch.autograd.grad(
        L.score_function_reverse_kl(leaf, greedy, _t(p).log(), log_q).sum(), leaf
    )
    assert (biased - exact).abs().max() > 0.05


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_gradients_finite_with_one_hot_teacher(beta: float) -> None:
    # A clean expert (eta = 0) is one-hot: log P = -inf off the clean token.
    x = torch.randn(5, V, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    p = torch.eye(V, dtype=torch.float64)[:5]
    for loss in (L.forward_kl(x, p), L.reverse_kl(x, p), L.generalized_jsd(x, p, beta)):
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert torch.isfinite(loss).all() and torch.isfinite(g).all()
