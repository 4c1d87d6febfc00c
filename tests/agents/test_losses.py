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
from scipy.special import rel_entr
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


# --------------------------------------------------------------------------- masked students (-inf logits)

NEG_INF = float("-inf")


def test_forward_kl_masked_token_with_teacher_zero_is_the_0log0_limit() -> None:
    # Issue 10 regression: this was NaN (0 * log Q with log Q = -inf).
    x = torch.tensor([[0.0, 1.0, NEG_INF]], requires_grad=True)
    p = torch.tensor([[0.5, 0.5, 0.0]])
    got = L.forward_kl(x, p)
    # Closed form: Q = softmax([0, 1]) on the two live tokens, so
    # KL = 0.5 log(0.5 / Q0) + 0.5 log(0.5 / Q1) = log((1 + e) / 2) - 1/2.
    want = math.log((1 + math.e) / 2) - 0.5
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert got.item() == pytest.approx(0.1201, abs=1e-4)
    # The same as a very negative finite logit (the limit the -inf logit stands for).
    finite = torch.tensor([[0.0, 1.0, -1e4]], requires_grad=True)
    torch.testing.assert_close(got, L.forward_kl(finite, p))
    (g,) = torch.autograd.grad(got.sum(), x)
    (g_finite,) = torch.autograd.grad(L.forward_kl(finite, p).sum(), finite)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, g_finite)


@pytest.mark.parametrize(
    "loss",
    [
        lambda x, p: L.forward_kl(x, p),
        lambda x, p: L.reverse_kl(x, p),
        lambda x, p: L.generalized_jsd(x, p, 0.0),
        lambda x, p: L.generalized_jsd(x, p, 0.5),
        lambda x, p: L.generalized_jsd(x, p, 1.0),
        lambda x, p: L.mc_forward(x, torch.tensor([1])),
    ],
    ids=["forward_kl", "reverse_kl", "gjsd_0", "gjsd_half", "gjsd_1", "mc_forward"],
)
def test_every_exact_loss_on_the_issue_input_is_finite_and_the_limit(loss) -> None:
    p = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 1.0, NEG_INF]], dtype=torch.float64, requires_grad=True)
    finite = torch.tensor([[0.0, 1.0, -1e4]], dtype=torch.float64, requires_grad=True)
    got, want = loss(x, p), loss(finite, p)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(got.sum(), x)
    (g_want,) = torch.autograd.grad(want.sum(), finite)
    torch.testing.assert_close(g, g_want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_forward_losses_off_the_student_support_are_plus_inf_with_finite_gradient(
    temperature: float,
) -> None:
    # Documented choice: teacher mass (or a sampled expert token) on a token the
    # student masks makes the forward KL / NLL genuinely +inf; never NaN, and the
    # gradient is the usual finite (Q - P) / temperature.
    x = torch.tensor([[0.0, 1.0, NEG_INF]], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([[0.4, 0.4, 0.2]], dtype=torch.float64)
    q = torch.softmax(x.detach() / temperature, -1)
    for loss, target in (
        (L.forward_kl(x, p, temperature), p),
        (L.mc_forward(x, torch.tensor([2]), temperature), torch.eye(3, dtype=torch.float64)[[2]]),
    ):
        assert loss.item() == math.inf
        (g,) = torch.autograd.grad(loss.sum(), x)
        torch.testing.assert_close(g, (q - target) / temperature, rtol=1e-12, atol=1e-12)
    # The interior JSD and the floored reverse KL stay finite there.
    for loss in (L.reverse_kl(x, p, temperature), L.generalized_jsd(x, p, 0.5, temperature)):
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert torch.isfinite(loss).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gjsd_endpoints_are_forward_and_reverse_kl_on_masked_inputs(dtype: torch.dtype) -> None:
    logits, p = _rand(25)
    mask = np.random.default_rng(26).random(logits.shape) < 0.4
    mask[:, 0] = False  # one live token per row at least
    p[mask] = 0.0  # teacher support inside the student's: forward KL finite too
    p /= p.sum(-1, keepdims=True)
    x = torch.tensor(np.where(mask, -np.inf, logits), dtype=dtype)
    tp = _t(p)
    for beta, kl in ((0.0, L.forward_kl), (1.0, L.reverse_kl)):
        got = L.generalized_jsd(x, tp, beta)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, kl(x, tp), rtol=0, atol=0)


_TOL = {
    torch.float64: {"rtol": 1e-9, "atol": 1e-12},
    torch.float32: {"rtol": 1e-4, "atol": 2e-5},
    # bf16 logits are upcast to float32; the reference uses the bf16-rounded logits.
    torch.bfloat16: {"rtol": 1e-4, "atol": 2e-5},
}
_GRAD_TOL = {
    torch.float64: {"rtol": 1e-9, "atol": 1e-12},
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
    torch.bfloat16: {"rtol": 1e-2, "atol": 1e-2},  # the gradient is rounded to bf16
}
_TEACHERS = ["one_hot", "one_hot_anywhere", "zero_on_masked", "general"]


def _masked_case(
    seed: int, n: int, v: int, mask_rate: float, teacher: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (n, v), a -inf mask with one live token per row at least, a teacher (n, v)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, v))
    mask = rng.random((n, v)) < mask_rate
    mask[np.arange(n), rng.integers(v, size=n)] = False
    live = [np.flatnonzero(~m) for m in mask]
    if teacher == "one_hot":  # on a live token
        p = np.eye(v)[[rng.choice(lv) for lv in live]]
    elif teacher == "one_hot_anywhere":  # possibly on a masked token
        p = np.eye(v)[rng.integers(v, size=n)]
    else:
        p = rng.dirichlet(np.full(v, 0.7), size=n)
        if teacher == "zero_on_masked":
            # Zeros on every masked token and on some live ones (where Q > 0).
            p[mask | (rng.random((n, v)) < 0.3)] = 0.0
            keep = [rng.choice(lv) for lv in live]
            p[np.arange(n), keep] += 0.1
        p /= p.sum(-1, keepdims=True)
    return logits, mask, p


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 4),
    v=st.integers(2, 8),
    mask_rate=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    teacher=st.sampled_from(_TEACHERS),
    beta=st.one_of(
        st.sampled_from([0.0, 0.5, 1.0, 1e-12, 1.0 - 1e-12]), st.floats(1e-4, 1.0 - 1e-4)
    ),
    temperature=st.sampled_from([1.0, 0.5, 2.0]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_every_loss_finite_with_masked_logits_and_matches_float64_limit(
    seed: int,
    n: int,
    v: int,
    mask_rate: float,
    teacher: str,
    beta: float,
    temperature: float,
    dtype: torch.dtype,
) -> None:
    logits, mask, p = _masked_case(seed, n, v, mask_rate, teacher)
    x = torch.tensor(np.where(mask, -np.inf, logits), dtype=dtype)
    # Independent float64 reference: the logits as the loss sees them (bf16-rounded),
    # -inf replaced by a very negative finite logit, numpy/scipy formulas.
    ref_logits = np.where(mask, -1e4, x.double().numpy())
    log_q = np_log_softmax(ref_logits / temperature, axis=-1)
    q = np.exp(log_q)  # exactly 0 on masked tokens
    supported = ~((p > 0) & mask).any(-1)  # teacher support inside the student's, per row
    min_prob = 1e-8
    fwd = rel_entr(p, q).sum(-1)  # +inf exactly where unsupported
    rev = rel_entr(q, np.maximum(p, min_prob)).sum(-1)
    if beta in (0.0, 1.0):  # TRL's endpoints
        jsd = fwd if beta == 0.0 else rev
    else:
        m = beta * p + (1 - beta) * q
        jsd = beta * rel_entr(p, m).sum(-1) + (1 - beta) * rel_entr(q, m).sum(-1)
    rng = np.random.default_rng(seed + 1)
    a_expert = torch.tensor([rng.choice(np.flatnonzero(~row)) for row in mask])  # live tokens
    tp, log_tp = _t(p), torch.log(_t(p))  # log_tp is -inf on teacher zeros

    a_sf, log_q_sf = L.sample_actions(x, torch.Generator().manual_seed(seed), temperature)
    rows = np.arange(n)
    assert not mask[rows, a_sf.numpy()].any()  # never samples a masked token
    np.testing.assert_allclose(log_q_sf.double().numpy(), log_q[rows, a_sf.numpy()], **_TOL[dtype])
    mc = -log_q[rows, a_expert.numpy()]
    sf = np.log(q[rows, a_sf.numpy()] / np.maximum(p[rows, a_sf.numpy()], min_prob))  # w = 1

    def losses(z: torch.Tensor) -> dict[str, torch.Tensor]:
        # z: (6, n, v), one copy of the logits per loss, so that one backward of the
        # sum gives every loss's own gradient. Same tokens for both calls; the
        # sampling log-probs in z's own precision (w = 1 in value).
        _, log_q_z = L.sample_actions(z[5], torch.Generator().manual_seed(seed), temperature)
        return {
            "forward_kl": L.forward_kl(z[0], tp, temperature),
            "reverse_kl": L.reverse_kl(z[1], tp, temperature, min_prob),
            "generalized_jsd": L.generalized_jsd(z[2], tp, beta, temperature, min_prob),
            "mc_forward": L.mc_forward(z[3], a_expert, temperature),
            "cross_entropy": L.cross_entropy(z[4], a_expert, temperature),
            "score_function_reverse_kl": L.score_function_reverse_kl(
                z[5], a_sf, log_tp, log_q_z, temperature, min_prob
            ),
        }

    want = {
        "forward_kl": fwd,
        "reverse_kl": rev,
        "generalized_jsd": jsd,
        "mc_forward": mc,
        "cross_entropy": mc,
        "score_function_reverse_kl": sf,
    }
    leaf = x.expand(6, n, v).clone().requires_grad_(True)
    ref_leaf = torch.tensor(ref_logits).expand(6, n, v).clone().requires_grad_(True)
    got, ref = losses(leaf), losses(ref_leaf)
    # d(sum)/d(value) = 1 even where a value is +inf, so the gradients stay per loss.
    (grads,) = torch.autograd.grad(sum(val.sum() for val in got.values()), leaf)
    (ref_grads,) = torch.autograd.grad(sum(val.sum() for val in ref.values()), ref_leaf)
    for k, (name, val) in enumerate(got.items()):
        # Finite, except forward KL (and gJSD at beta = 0) on unsupported rows: +inf.
        may_be_inf = name == "forward_kl" or (name == "generalized_jsd" and beta == 0.0)
        finite = supported if may_be_inf else np.ones(n, bool)
        vals = val.detach().double().numpy()
        assert not np.isnan(vals).any(), name
        assert (np.isfinite(vals) == finite).all(), (name, vals, finite)
        assert (vals[~finite] == np.inf).all(), name
        np.testing.assert_allclose(vals, want[name], **_TOL[dtype], err_msg=name)
        assert torch.isfinite(grads[k]).all(), name
        # The -inf logit behaves as its finite limit in the gradient too (0 on masked
        # tokens unless the teacher has mass there).
        torch.testing.assert_close(grads[k].double(), ref_grads[k], **_GRAD_TOL[dtype], msg=name)
