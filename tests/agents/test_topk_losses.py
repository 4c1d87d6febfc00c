"""The top-k forward-KL estimators against closed forms: hand-computed values, the k -> |A| limit (equality
with the full forward KL), k = 1 on a one-hot teacher, the tail variant's bound, TRL's formula, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents import losses as L
from noisy_expert_gym.topk import topk_of

P = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
Z = torch.tensor([1.0, 0.0, 0.5, -1.0], dtype=torch.float64)  # student logits


def _q() -> torch.Tensor:
    return torch.softmax(Z, -1)


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)


def test_renormalised_top2_by_hand():
    """k = 2 of P: ids (0, 1); P_k = (5/8, 3/8), Q_k = Q[0,1] / (Q0 + Q1)."""
    t = topk_of(P, 2)
    assert t.ids.tolist() == [0, 1]
    q = _q().tolist()
    want = _kl([0.5 / 0.8, 0.3 / 0.8], [q[0] / (q[0] + q[1]), q[1] / (q[0] + q[1])])
    assert L.topk_forward_kl(Z, t.ids, t.logprobs).item() == pytest.approx(want, abs=1e-12)


def test_tail_top2_by_hand():
    """k = 2 plus the bucket: teacher (0.5, 0.3, 0.2), student (Q0, Q1, Q2 + Q3)."""
    t = topk_of(P, 2)
    q = _q().tolist()
    want = _kl([0.5, 0.3, 0.2], [q[0], q[1], q[2] + q[3]])
    assert L.topk_tail_forward_kl(Z, t.ids, t.logprobs).item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("loss", [L.topk_forward_kl, L.topk_tail_forward_kl])
def test_k_equal_to_the_vocabulary_is_the_full_forward_kl(loss):
    """k -> |A|: both equal forward_kl, for a teacher with full support and one with zeros."""
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 6, dtype=torch.float64)
    for teacher in (torch.softmax(torch.randn(5, 3, 6, dtype=torch.float64), -1),
                    torch.tensor([0.7, 0.3, 0, 0, 0, 0], dtype=torch.float64).expand(5, 3, 6)):
        t = topk_of(teacher, 6)
        torch.testing.assert_close(loss(logits, t.ids, t.logprobs), L.forward_kl(logits, teacher))


def test_tail_variant_equals_the_full_kl_once_the_head_holds_the_teachers_support():
    teacher = torch.tensor([0.0, 0.6, 0.0, 0.4, 0.0], dtype=torch.float64)
    logits = torch.randn(5, dtype=torch.float64)
    for k in (2, 3, 4):
        t = topk_of(teacher, k)
        assert L.topk_tail_forward_kl(logits, t.ids, t.logprobs).item() == pytest.approx(
            L.forward_kl(logits, teacher).item(), abs=1e-12)


def test_k1_on_a_one_hot_teacher():
    """The renormalised top-1 is 0 whatever the student (no signal); the tail variant is -log Q(clean)."""
    teacher = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    t = topk_of(teacher, 1)
    assert L.topk_forward_kl(Z, t.ids, t.logprobs).item() == 0.0
    assert L.topk_tail_forward_kl(Z, t.ids, t.logprobs).item() == pytest.approx(-math.log(_q()[2].item()))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_tail_variant_is_a_lower_bound_of_the_full_kl(k):
    """Coarsening to k + 1 events cannot increase a KL (data processing)."""
    torch.manual_seed(k)
    logits = torch.randn(200, 7, dtype=torch.float64)
    teacher = torch.softmax(2 * torch.randn(200, 7, dtype=torch.float64), -1)
    t = topk_of(teacher, k)
    assert (L.topk_tail_forward_kl(logits, t.ids, t.logprobs) <= L.forward_kl(logits, teacher) + 1e-12).all()


@pytest.mark.parametrize("add_tail", [False, True])
def test_matches_trls_server_distillation_formula(add_tail):
    """TRL v1.16.0 ServerDistillationTrainer._compute_server_forward_kl_loss, restated: gather the student's
    log-probs at the teacher's ids; either subtract each side's logsumexp or append log(1 - sum exp) to each;
    then sum p_t (log p_t - log p_s)."""
    torch.manual_seed(3)
    logits = torch.randn(4, 9, 11, dtype=torch.float64)
    teacher = torch.softmax(1.5 * torch.randn(4, 9, 11, dtype=torch.float64), -1)
    t = topk_of(teacher, 4)
    s = torch.log_softmax(logits, -1).gather(-1, t.ids)
    lt = t.logprobs
    if add_tail:
        def tail(x):
            return torch.cat([x, torch.log(-torch.expm1(torch.logsumexp(x, -1, keepdim=True)))], -1)
        s, lt = tail(s), tail(lt)
        ours = L.topk_tail_forward_kl(logits, t.ids, t.logprobs)
    else:
        s, lt = s - torch.logsumexp(s, -1, keepdim=True), lt - torch.logsumexp(lt, -1, keepdim=True)
        ours = L.topk_forward_kl(logits, t.ids, t.logprobs)
    trl = (lt.exp() * (lt - s)).sum(-1)
    torch.testing.assert_close(ours, trl)


@pytest.mark.parametrize("loss", [L.topk_forward_kl, L.topk_tail_forward_kl])
def test_gradients_are_finite_with_zeros_and_a_full_head(loss):
    logits = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor([[1.0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [0.2, 0.2, 0.2, 0.2, 0.2]],
                           dtype=torch.float64)
    for k in (1, 3, 5):
        t = topk_of(teacher, k)
        v = loss(logits, t.ids, t.logprobs)
        (g,) = torch.autograd.grad(v.sum(), logits)
        assert torch.isfinite(v).all() and torch.isfinite(g).all()


def test_gradient_of_the_renormalised_loss_matches_the_closed_form():
    """d/dz KL(P_k || Q_k) = Q_k - P_k on the k ids (softmax over them), 0 elsewhere."""
    logits = Z.clone().requires_grad_(True)
    t = topk_of(P, 3)
    (g,) = torch.autograd.grad(L.topk_forward_kl(logits, t.ids, t.logprobs), logits)
    ids = t.ids.tolist()
    qk = torch.softmax(Z[ids], -1)
    pk = P[ids] / P[ids].sum()
    want = torch.zeros(4, dtype=torch.float64)
    want[ids] = qk - pk
    torch.testing.assert_close(g, want)


def test_numpy_built_topk_feeds_the_losses():
    t = topk_of(np.array([0.1, 0.6, 0.3]), 2)
    v = L.topk_tail_forward_kl(torch.zeros(3, dtype=torch.float64), torch.as_tensor(t.ids), torch.as_tensor(t.logprobs))
    assert v.item() == pytest.approx(_kl([0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]))
