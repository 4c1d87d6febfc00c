"""Per-position imitation losses: pure functions of tensors.

Every loss takes student logits of shape ``(..., V)`` and returns one value
per position, shape ``(...)``: no hidden reduction, so trainers choose how to
mask and average (per token, per chain, per batch). ``P`` is always the
(noisy) teacher / expert distribution and ``Q`` the student's,
``Q = softmax(student_logits / temperature)``.

Which loss each algorithm uses (docs/design.md §4):

* LogLossBC, DAgger, OPD-F / NAIL-F (Monte Carlo): :func:`mc_forward` on a
  sampled expert token.
* OPD-F / NAIL-F (exact): :func:`forward_kl` with the full expert row.
* OPD-R / NAIL-R: :func:`score_function_reverse_kl`; exact reference:
  :func:`reverse_kl`.
* GKD: :func:`generalized_jsd`.
* OPD-F / NAIL-F / NAIL-Mixed on a top-k teacher (``estimator="topk"`` / ``"topk-tail"``):
  :func:`topk_forward_kl` (forward KL on the renormalised top-k) and
  :func:`topk_tail_forward_kl` (the top-k plus one tail bucket), the estimators
  distillation trainers use on a teacher served with ``logprobs=k``.

The expert's rows come dense, ``(..., V)`` probabilities, or structured, a
:class:`~noisy_expert_gym.noise.MixtureRows` ``(1 - w) delta(clean) + w U`` per
position (:mod:`agents.expert_rows`): :func:`forward_kl_rows` and
:func:`reverse_kl_rows` take either and equal :func:`forward_kl` and
:func:`reverse_kl` on the dense rows, in value and gradient, without building them.

Half-precision logits (e.g. bf16 from autocast) are upcast to float32 before
any log-softmax: the KL terms are differences of nearly equal logs and bf16's
8-bit mantissa would swamp them. float64 inputs stay float64 (tests).

Masked tokens: a student may put ``-inf`` on tokens it rules out (at least one
finite logit per row), so ``Q = 0`` and ``log Q = -inf`` there. Every term
``x log(x / y)`` with ``x = 0`` is then its limit 0, in value *and* gradient
(never ``0 * -inf = nan``). Only a teacher (or a sampled expert token) on a
token the student rules out gives an infinite loss, and only for the forward
direction (:func:`forward_kl`, :func:`mc_forward`): it is ``+inf``, never NaN,
with a finite gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from noisy_expert_gym.noise import MixtureRows

__all__ = [
    "cross_entropy",
    "forward_kl",
    "forward_kl_rows",
    "generalized_jsd",
    "mc_forward",
    "reverse_kl",
    "reverse_kl_rows",
    "sample_actions",
    "score_function_reverse_kl",
    "topk_forward_kl",
    "topk_tail_forward_kl",
]


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:  # also rejects NaN
        raise ValueError(
            f"`temperature` must be > 0, got {temperature}; use temperature=1.0 for the "
            "untempered distribution (greedy decoding is a rollout setting, not a loss one)"
        )


def _check_min_prob(min_prob: float) -> None:
    if not 0.0 < min_prob < 1.0:
        raise ValueError(f"`min_prob` must be in (0, 1), got {min_prob}; the default is 1e-8")


def _upcast(x: torch.Tensor) -> torch.Tensor:
    # float32 at least; keep float64 when given (the tests compare in float64).
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _student_log_probs(student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    _check_temperature(temperature)
    return F.log_softmax(_upcast(student_logits) / temperature, dim=-1)  # (..., V)


def _zero_where(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # x with the masked entries replaced by 0. Used *inside* a product that is 0 there
    # anyway (the "double where" trick): a -inf that reached the product would give
    # 0 * -inf = nan in the value, and a where() applied only outside the product
    # would still send 0 * inf = nan back through the product's gradient.
    return torch.where(mask, 0.0, x)


def _clamped_log(probs: torch.Tensor, min_prob: float) -> torch.Tensor:
    # log P floored at log(min_prob): a clean expert is one-hot, so log P = -inf off
    # the clean token and KL(Q || P) would be infinite for any student with full
    # support. The floor turns that into a large finite penalty
    # Q(a) * (log Q(a) - log min_prob) (~18.4 nats per unit mass at 1e-8) whose
    # gradient still pushes all mass onto the teacher's support.
    return torch.log(probs.clamp_min(min_prob))


def forward_kl(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Exact forward KL(P_teacher || Q_student) at every position.

    Args:
        student_logits: ``(..., V)`` student logits; ``Q = softmax(logits / temperature)``.
        teacher_probs: ``(..., V)`` teacher probabilities (constant; rows may contain
            exact zeros or be one-hot, with the convention ``0 * log 0 = 0``).
        temperature: softmax temperature of the student, > 0.

    Returns:
        ``(...)`` tensor of KL values in nats. For a one-hot teacher this is
        ``-log Q(clean token)``, i.e. the clean cross-entropy. Tokens the student
        masks (``-inf`` logit) where the teacher has ``P = 0`` contribute exactly 0
        (the ``0 log 0 = 0`` limit). If the teacher puts ``P > 0`` on a masked token
        the KL is genuinely infinite and the value is ``+inf`` (not NaN, and not
        floored: no finite stand-in would be right); its gradient stays finite,
        ``(Q - P) / temperature`` as everywhere.
    """
    log_q = _student_log_probs(student_logits, temperature)  # (..., V)
    p = teacher_probs.detach().to(log_q.dtype)  # (..., V)
    # xlogy gives 0 * log 0 = 0 exactly (plain p * log p would give NaN); the inner
    # where does the same for 0 * log Q on masked tokens (log Q = -inf).
    return (torch.xlogy(p, p) - p * _zero_where(p == 0, log_q)).sum(-1)  # (...)


def reverse_kl(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float = 1.0,
    min_prob: float = 1e-8,
) -> torch.Tensor:
    """Exact reverse KL(Q_student || P_teacher) at every position.

    Teacher probabilities below ``min_prob`` (in particular the exact zeros of a
    clean, one-hot expert) are clamped to ``min_prob`` inside the log, so the
    value is finite: ``log P`` is replaced by ``log(max(P, min_prob))``. With a
    one-hot teacher the result is therefore
    ``sum_a Q(a) log Q(a) - Q(clean) * 0 - (1 - Q(clean)) * log(min_prob)``
    rather than ``+inf``; its gradient still moves mass onto the teacher's support.
    Tokens the student masks (``-inf`` logit, ``Q = 0``) contribute exactly
    ``0 log 0 = 0``, so the value and gradient are always finite.

    Args:
        student_logits: ``(..., V)`` student logits; ``Q = softmax(logits / temperature)``.
        teacher_probs: ``(..., V)`` teacher probabilities (constant).
        temperature: softmax temperature of the student, > 0.
        min_prob: floor applied to ``P`` inside the log, in (0, 1).

    Returns:
        ``(...)`` tensor of KL values in nats.
    """
    _check_min_prob(min_prob)
    log_q = _student_log_probs(student_logits, temperature)  # (..., V)
    log_p = _clamped_log(teacher_probs.detach().to(log_q.dtype), min_prob)  # (..., V)
    # Q log Q = 0 where Q = 0: keep log Q = -inf of masked tokens out of the product.
    log_q_safe = _zero_where(torch.isneginf(log_q), log_q)  # (..., V)
    return (log_q.exp() * (log_q_safe - log_p)).sum(-1)  # (...)


def forward_kl_rows(student_logits: torch.Tensor, rows: torch.Tensor | MixtureRows) -> torch.Tensor:
    """:func:`forward_kl` on the expert's rows, dense ``(..., V)`` or structured (:class:`MixtureRows`).

    Structured, with n = |U|: ``sum p log p - (1 - w) log Q(clean) - (w / n) sum_{a in U} log Q(a)``,
    equal to :func:`forward_kl` on the dense rows in value and gradient (the ``0 log 0 = 0``
    conventions included).
    """
    if not isinstance(rows, MixtureRows):
        return forward_kl(student_logits, rows)
    log_q = F.log_softmax(_upcast(student_logits), dim=-1)  # (B, H, V)
    w = rows.weight.to(log_q.dtype)
    n = rows.n_support
    c_in = rows.clean_in_support().to(log_q.dtype)
    lq_clean = log_q.gather(-1, rows.clean[..., None])[..., 0]  # (B, H)
    lq_support = torch.where(rows.support, log_q, 0.0).sum(-1)  # (B, H), sum over U
    # 0 * log 0 = 0: a weight of exactly 0 never multiplies a -inf (a token the student masks).
    cross = -(torch.where(w == 1, 0.0, (1.0 - w) * lq_clean) + torch.where(w == 0, 0.0, w / n * lq_support))
    p_clean = (1.0 - w) + w * c_in / n
    p_other = w / n
    neg_entropy = torch.xlogy(p_clean, p_clean) + (n - c_in) * torch.xlogy(p_other, p_other)
    return neg_entropy + cross


def reverse_kl_rows(student_logits: torch.Tensor, rows: torch.Tensor | MixtureRows,
                    min_prob: float = 1e-8) -> torch.Tensor:
    """:func:`reverse_kl` on the expert's rows, dense ``(..., V)`` or structured (:class:`MixtureRows`):
    pi~ floored at ``min_prob`` inside the log, equal to :func:`reverse_kl` on the dense rows."""
    if not isinstance(rows, MixtureRows):
        return reverse_kl(student_logits, rows, min_prob=min_prob)
    log_q = F.log_softmax(_upcast(student_logits), dim=-1)  # (B, H, V)
    q = log_q.exp()
    w = rows.weight.to(log_q.dtype)
    n = rows.n_support
    c_in = rows.clean_in_support().to(log_q.dtype)
    floor = math.log(min_prob)
    lp_clean = torch.log(((1.0 - w) + w * c_in / n).clamp_min(min_prob))
    lp_other = torch.log((w / n).clamp_min(min_prob))
    q_clean = q.gather(-1, rows.clean[..., None])[..., 0]
    q_support = torch.where(rows.support, q, 0.0).sum(-1)  # includes the clean token when it is in U
    q_rest = torch.where(rows.support, 0.0, q).sum(-1) - q_clean * (1.0 - c_in)  # off U, not the clean token
    q_log_q = (q * torch.where(torch.isneginf(log_q), 0.0, log_q)).sum(-1)
    return q_log_q - (q_clean * lp_clean + (q_support - q_clean * c_in) * lp_other + q_rest * floor)


def topk_forward_kl(
    student_logits: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Forward KL on the teacher's renormalised top-k: ``KL(P_k || Q_k)`` at every position.

    ``P_k`` is the teacher's top-k probabilities renormalised to sum to 1 and ``Q_k`` the
    student's probabilities at the same k ids, **renormalised too** (over the k ids):
    ``P_k(i) = P(a_i) / sum_j P(a_j)``, ``Q_k(i) = Q(a_i) / sum_j Q(a_j)``. This is TRL's
    ``ServerDistillationTrainer`` forward path (``beta=0``, ``loss_add_tail=False``): teacher
    and student log-probabilities gathered at the teacher's top-k ids, each minus its own
    logsumexp over them
    (https://github.com/huggingface/trl/blob/v1.16.0/trl/experimental/server_distillation/server_distillation_trainer.py,
    ``_compute_server_forward_kl_loss``); a vLLM teacher's entries are always finite (it floors
    log-probabilities at -9999), so all k ids are kept, as here (an entry of teacher probability 0
    stays in ``Q_k``'s normalisation with ``P_k = 0``). It only compares the *shape* of the head:
    at k = 1 it is 0 whatever the student (use :func:`topk_tail_forward_kl`), and with k = V it is
    :func:`forward_kl` exactly.

    Args:
        student_logits: ``(..., V)`` student logits; ``Q = softmax(logits / temperature)``.
        teacher_ids: ``(..., k)`` the teacher's top-k token ids (distinct per position).
        teacher_logprobs: ``(..., k)`` their log-probabilities (constant; ``-inf`` for probability 0,
            at least one finite per position).
        temperature: softmax temperature of the student, > 0.

    Returns:
        ``(...)`` KL values in nats (``+inf`` where the teacher puts mass on a token the student masks).
    """
    log_q = _student_log_probs(student_logits, temperature)  # (..., V)
    lq = log_q.gather(-1, teacher_ids.long())  # (..., k)
    lq_k = lq - torch.logsumexp(lq, dim=-1, keepdim=True)  # the student renormalised over the k ids
    lp = teacher_logprobs.detach().to(log_q.dtype)
    p = (lp - torch.logsumexp(lp, dim=-1, keepdim=True)).exp()  # (..., k), the teacher renormalised
    return (torch.xlogy(p, p) - p * _zero_where(p == 0, lq_k)).sum(-1)


def topk_tail_forward_kl(
    student_logits: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Forward KL over k + 1 outcomes: the teacher's top-k tokens and one **tail bucket** holding the rest.

    Teacher ``(P(a_1), .., P(a_k), 1 - sum_i P(a_i))``, student ``(Q(a_1), .., Q(a_k), 1 - sum_i Q(a_i))``,
    nothing renormalised: ``sum_i P(a_i) log(P(a_i) / Q(a_i)) + P_tail log(P_tail / Q_tail)``. TRL's
    ``loss_add_tail=True`` (same file as :func:`topk_forward_kl`, ``_add_tail_bucket``). It is the KL of
    the two distributions coarsened to those k + 1 events, so it is at most :func:`forward_kl` and equals
    it when the teacher's mass off the k ids is 0 (a teacher of support <= k, or k = V); at k = 1 on a
    one-hot teacher it is the clean cross-entropy ``-log Q(a_1)``. The student's tail is computed from the
    tokens off the k ids (a logsumexp, not ``1 - sum``), so it stays accurate when the head holds almost all
    of the student's mass; the teacher's tail ``1 - sum_i P(a_i)`` is clamped at 0 against rounding.

    Args:
        student_logits: ``(..., V)`` student logits; ``Q = softmax(logits / temperature)``.
        teacher_ids: ``(..., k)`` the teacher's top-k token ids (distinct per position).
        teacher_logprobs: ``(..., k)`` their log-probabilities (constant).
        temperature: softmax temperature of the student, > 0.

    Returns:
        ``(...)`` KL values in nats.
    """
    log_q = _student_log_probs(student_logits, temperature)  # (..., V)
    ids = teacher_ids.long()
    lq = log_q.gather(-1, ids)  # (..., k)
    off = torch.ones_like(log_q, dtype=torch.bool).scatter(-1, ids, False)  # (..., V) tokens off the k ids
    none_off = ~off.any(-1)  # the k ids cover the vocabulary: the student's tail is empty
    # logsumexp over an empty set is -inf with a NaN gradient: feed it zeros there and put -inf back after.
    rest = torch.where(off & ~none_off[..., None], log_q, torch.where(none_off[..., None], 0.0, float("-inf")))
    lq_tail = torch.where(none_off, float("-inf"), torch.logsumexp(rest, dim=-1))  # (...)
    p = teacher_logprobs.detach().to(log_q.dtype).exp()  # (..., k)
    p_tail = torch.where(none_off, 0.0, (1.0 - p.sum(-1)).clamp_min(0.0))  # (...), 0 when the head is everything
    head = (torch.xlogy(p, p) - p * _zero_where(p == 0, lq)).sum(-1)
    return head + torch.xlogy(p_tail, p_tail) - p_tail * _zero_where(p_tail == 0, lq_tail)


def generalized_jsd(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    beta: float,
    temperature: float = 1.0,
    min_prob: float = 1e-8,
) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence of GKD, in TRL's convention.

    ``beta = 0`` is exactly :func:`forward_kl` ``KL(P || Q)`` and ``beta = 1`` is
    exactly :func:`reverse_kl` ``KL(Q || P)`` (with its ``min_prob`` floor). For
    ``0 < beta < 1``::

        JSD_beta = beta * KL(P || M) + (1 - beta) * KL(Q || M),  M = beta * P + (1 - beta) * Q

    Note (as in TRL and the GKD paper) the interior is *not* continuous at the
    endpoints: it tends to 0 at both ends, scaled like the endpoint it approaches
    (``JSD_beta / beta -> KL(P || Q)`` as beta -> 0 and
    ``JSD_beta / (1 - beta) -> KL(Q || P)`` as beta -> 1), so learning rates tuned
    at an endpoint do not carry over to beta = 0.01.

    Args:
        student_logits: ``(..., V)`` student logits; ``Q = softmax(logits / temperature)``.
        teacher_probs: ``(..., V)`` teacher probabilities (constant; may contain zeros).
        beta: interpolation weight in [0, 1].
        temperature: softmax temperature of the student, > 0.
        min_prob: floor on ``P`` used only at ``beta = 1`` (see :func:`reverse_kl`);
            for ``beta < 1`` the mixture ``M >= (1 - beta) Q > 0`` needs no floor.

    Returns:
        ``(...)`` tensor of divergence values in nats. Tokens the student masks
        (``-inf`` logit) follow the ``0 log 0 = 0`` limit; for ``0 < beta < 1`` the
        value is always finite (``M > 0`` wherever ``P > 0`` or ``Q > 0``), at the
        endpoints it is that of :func:`forward_kl` / :func:`reverse_kl`.

    Raises:
        ValueError: if ``beta`` is outside [0, 1] or ``temperature <= 0``.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(
            f"`beta` must be in [0, 1] (0 = forward KL(teacher||student), "
            f"1 = reverse KL(student||teacher)), got {beta}"
        )
    if beta == 0.0:
        return forward_kl(student_logits, teacher_probs, temperature)
    if beta == 1.0:
        return reverse_kl(student_logits, teacher_probs, temperature, min_prob)
    log_q = _student_log_probs(student_logits, temperature)  # (..., V)
    p = teacher_probs.detach().to(log_q.dtype)  # (..., V)
    log_p = torch.log(p)  # (..., V), -inf where P = 0: logsumexp and xlogy handle it
    q_zero = torch.isneginf(log_q)  # (..., V), tokens the student masks
    m_zero = (p == 0) & q_zero  # (..., V), M = 0: every term there is 0 log 0 = 0
    # log M = log(beta P + (1 - beta) Q) in log space: Q can be ~1e-30 where a
    # linear-space mixture would underflow and lose the gradient. Where M = 0 both
    # inputs are -inf, whose logsumexp has a NaN gradient: feed 0s there instead
    # (log M is then unused, every product with it being 0).
    log_m = torch.logsumexp(
        torch.stack(
            [
                _zero_where(m_zero, log_p + math.log(beta)),
                _zero_where(m_zero, log_q + math.log1p(-beta)),
            ]
        ),
        dim=0,
    )  # (..., V), finite
    kl_p_m = (torch.xlogy(p, p) - p * log_m).sum(-1)  # (...)
    kl_q_m = (log_q.exp() * (_zero_where(q_zero, log_q) - log_m)).sum(-1)  # (...)
    return beta * kl_p_m + (1.0 - beta) * kl_q_m


def mc_forward(
    student_logits: torch.Tensor, actions: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Monte-Carlo forward loss ``-log Q(a)`` for sampled expert tokens.

    With ``a ~ P`` its expectation is the cross-entropy ``H(P, Q) = KL(P || Q) + H(P)``,
    so its gradient is an unbiased estimate of the forward KL's gradient. With the
    clean token as ``a`` it is the clean cross-entropy (validation loss), hence the
    alias :data:`cross_entropy`.

    Args:
        student_logits: ``(..., V)`` student logits.
        actions: ``(...)`` long tensor of token ids in ``[0, V)``.
        temperature: softmax temperature of the student, > 0.

    Returns:
        ``(...)`` tensor of negative log-likelihoods in nats: ``+inf`` (not NaN,
        with a finite gradient) where ``a`` is a token the student masks with a
        ``-inf`` logit, like :func:`forward_kl` off the student's support.
    """
    log_q = _student_log_probs(student_logits, temperature)  # (..., V)
    return -log_q.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (...)


cross_entropy = mc_forward
"""Alias of :func:`mc_forward`: ``-log Q(a)``, used with clean tokens for validation loss."""


def score_function_reverse_kl(
    student_logits: torch.Tensor,
    actions: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    sample_log_probs: torch.Tensor,
    temperature: float = 1.0,
    min_prob: float = 1e-8,
) -> torch.Tensor:
    """Score-function (REINFORCE) estimator of reverse KL(Q_theta || P).

    For tokens ``a' ~ q`` drawn from a *detached* sampling distribution ``q``,
    the per-position value is::

        -w * (log P(a') - log q(a')),   w = exp(log Q_theta(a') - log q(a'))

    where only ``log Q_theta(a')`` carries the gradient. At ``q = Q_theta`` (in
    value), ``w = 1`` and ``grad w = grad log Q_theta(a')``, so
    ``E_q[grad] = E_Q[grad log Q (log Q - log P)] = grad KL(Q || P)`` (the baseline
    term ``E_Q[grad log Q]`` is zero). The *value* is a single-sample estimate of
    the KL (it is its expectation when ``q = Q_theta``), noisy per position:
    use it for gradients, use :func:`reverse_kl` for logging.

    Which token to pass:

    * OPD-R (rollouts sampled from the student at tau = 1): reuse the rollout
      token; ``q`` is the student's own detached distribution at that prefix,
      i.e. ``sample_log_probs = log_softmax(logits).gather(a).detach()``.
    * NAIL-R (greedy rollouts, tau = 0): the greedy token is *not* a sample from
      ``Q_theta``; draw a fresh auxiliary token ``a' ~ Q_theta`` at each visited
      prefix with :func:`sample_actions` and pass its ``log_q``.

    Args:
        student_logits: ``(..., V)`` student logits; ``Q_theta = softmax(logits / temperature)``.
        actions: ``(...)`` long tensor, the sampled tokens ``a'``.
        teacher_log_probs: teacher log-probabilities, either ``(...)`` values
            ``log P(a')`` or the full ``(..., V)`` log-distribution (gathered at
            ``a'``). Treated as a constant; floored at ``log(min_prob)`` like
            :func:`reverse_kl` so a clean one-hot expert (``log 0 = -inf``) is finite.
        sample_log_probs: ``(...)`` values ``log q(a')`` of the sampling
            distribution; treated as a constant (detached). Finite for any token
            drawn from ``q``; a token the student masks (``-inf`` logit,
            ``Q_theta(a') = 0``) then has ``w = 0``: value 0, finite gradient.
        temperature: softmax temperature of the student, > 0.
        min_prob: floor on ``P(a')``, in (0, 1).

    Returns:
        ``(...)`` tensor of per-position surrogate losses.
    """
    _check_min_prob(min_prob)
    log_q_all = _student_log_probs(student_logits, temperature)  # (..., V)
    idx = actions.long().unsqueeze(-1)  # (..., 1)
    log_q_theta = log_q_all.gather(-1, idx).squeeze(-1)  # (...), carries the gradient
    log_p = teacher_log_probs.detach().to(log_q_all.dtype)
    if log_p.dim() == log_q_all.dim():  # full (..., V) row given
        log_p = log_p.gather(-1, idx).squeeze(-1)  # (...)
    log_p = log_p.clamp_min(math.log(min_prob))
    log_q_sample = sample_log_probs.detach().to(log_q_all.dtype)  # (...)
    w = torch.exp(log_q_theta - log_q_sample)  # (...), = 1 in value when q = Q_theta
    return -w * (log_p - log_q_sample)


@torch.no_grad()
def sample_actions(
    logits: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``a' ~ softmax(logits / temperature)`` at every position, without gradient.

    Args:
        logits: ``(..., V)`` logits (detached internally).
        generator: optional ``torch.Generator`` on ``logits.device`` for reproducibility.
        temperature: sampling temperature, > 0.

    Returns:
        ``(actions, log_q)``: ``(...)`` long tokens and ``(...)`` detached
        ``log q(a')`` under the sampling distribution (pass it as
        ``sample_log_probs`` to :func:`score_function_reverse_kl`).
    """
    log_q_all = _student_log_probs(logits.detach(), temperature)  # (..., V)
    flat = log_q_all.reshape(-1, log_q_all.shape[-1]).exp()  # (N, V)
    actions = torch.multinomial(flat, 1, generator=generator).view(log_q_all.shape[:-1])  # (...)
    log_q = log_q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (...)
    return actions, log_q
