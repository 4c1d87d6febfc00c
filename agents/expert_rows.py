"""The noisy expert's answers at every visited prefix, dense or structured.

The online methods ask the expert for its distribution at all B x H prefixes of a
batch of chains. :meth:`~noisy_expert_gym.oracle.Expert.probs_along` answers with a
dense ``(B, H, A)`` array; with Gemma's 262,144-token vocabulary that is 17 GB per
float32 copy at B = 16, H = 1,024, and the noise law, the sampling and the losses
each make one or more.

For a plain :class:`~noisy_expert_gym.oracle.Expert` (the modadd / automaton / GSM-8K
reference teachers) under the ``mixture`` or ``absorbing`` law, or the clean expert,
every row has the same shape (DESIGN §2)::

    pi~(.|s) = (1 - w(s)) delta(clean(s)) + w(s) U,   U uniform over the task's answer_mask,

with ``w = eta`` (``mixture``; ``absorbing`` while the prefix is clean), ``w = 1``
(``absorbing`` once the prefix has an error) and ``w = 0`` (the clean expert). So a
row is a clean token and a weight: :class:`MixtureRows` holds those ``(B, H)``
arrays and U's support, read from the task core's public functions
(``clean_along``, ``error_along``, ``answer_mask``) and the expert's ``noise``. The
functions below accept either form and give what the dense computation gives:
:func:`sample` (the same inverse-CDF draw from one uniform per row as
:func:`~noisy_expert_gym.utils.sample_categorical`), :func:`prob_at`,
:func:`forward_kl` and :func:`reverse_kl` (equal to :func:`agents.losses.forward_kl`
and :func:`agents.losses.reverse_kl` on the dense rows, in value and gradient).

Other experts (an LM teacher, a :class:`~agents.teachers.PolicyTeacher`, a corruption
law, a sample-only expert, the harness's counting client) are always asked densely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from agents import losses
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.utils import sample_categorical

#: Laws whose rows are ``(1 - w) delta(clean) + w U`` (``clean``: the clean expert, w = 0).
STRUCTURED_LAWS: tuple[str, ...] = ("mixture", "absorbing", "clean")
#: ``expert_form="auto"`` reads structured rows from this many actions on (HF vocabularies);
#: below it the dense rows are cheap and are kept (draw for draw the earlier behaviour).
STRUCTURED_MIN_ACTIONS = 4096
EXPERT_FORMS: tuple[str, ...] = ("auto", "dense", "structured")


@dataclass(frozen=True)
class MixtureRows:
    """pi~ at every prefix of a batch of chains, ``(1 - weight) delta(clean) + weight U``.

    Attributes:
        clean: ``(B, H)`` long, the clean expert's token at each prefix.
        weight: ``(B, H)`` float32, the uniform part's weight in [0, 1].
        support: ``(A,)`` bool, U's support (the task's ``answer_mask``), on the chains' device.
    """

    clean: torch.Tensor
    weight: torch.Tensor
    support: torch.Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the dense rows, ``(B, H, A)``."""
        return (*self.clean.shape, self.support.shape[0])

    @property
    def n_support(self) -> int:
        return int(self.support.sum())

    def _clean_in_support(self) -> torch.Tensor:
        return self.support[self.clean].float()  # (B, H)

    def prob_clean(self) -> torch.Tensor:
        """pi~(clean | s), ``(B, H)``."""
        return (1.0 - self.weight) + self.weight * self._clean_in_support() / self.n_support

    def dense(self) -> torch.Tensor:
        """The dense rows ``(B, H, A)`` float32 (tests, small vocabularies)."""
        u = self.support.float() / self.n_support  # (A,)
        out = self.weight[..., None] * u  # (B, H, A)
        return out.scatter_add_(-1, self.clean[..., None], (1.0 - self.weight)[..., None])


def is_structured(expert: Any) -> bool:
    """Whether `expert`'s rows have the structured form: a plain :class:`Expert` with full access and a
    ``mixture`` / ``absorbing`` law, or the clean expert."""
    return isinstance(expert, Expert) and expert.access == "full" and expert.noise.law in STRUCTURED_LAWS


def structured_along(expert: Expert, prompts: torch.Tensor, chain: torch.Tensor) -> MixtureRows:
    """The rows of :meth:`Expert.probs_along` in structured form; counts the same B x H queries.

    Raises:
        ValueError: `expert` has no structured form (see :func:`is_structured`).
    """
    if not is_structured(expert):
        raise ValueError(f"the expert {expert!r} has no structured form: it needs a plain Expert with full access "
                         f"and a law among {', '.join(STRUCTURED_LAWS)}; use expert_form='dense' (or 'auto')")
    task = expert.task
    if prompts.ndim != 2 or chain.ndim != 2 or prompts.shape[0] != chain.shape[0] \
            or prompts.shape[1] != task.prompt_len or chain.shape[1] != task.horizon:
        raise ValueError(f"expected prompts (N, {task.prompt_len}) and complete chains (N, {task.horizon}); got "
                         f"prompts {tuple(prompts.shape)} and chains {tuple(chain.shape)}")
    expert.num_queries += chain.shape[0] * chain.shape[1]
    clean = torch.as_tensor(task.clean_along(prompts, chain), device=chain.device).long()
    law, eta = expert.noise.law, float(expert.noise.eta)
    if law == "clean":
        weight = torch.zeros(clean.shape, device=chain.device)
    elif law == "mixture":
        weight = torch.full(clean.shape, eta, device=chain.device)
    else:  # absorbing: uniform once the prefix has an error
        error = torch.as_tensor(task.error_along(prompts, chain), device=chain.device).bool()
        weight = torch.where(error, 1.0, eta).float()
    support = torch.as_tensor(task.answer_mask, device=chain.device).bool()
    return MixtureRows(clean, weight, support)


def expert_rows(expert: Any, prompts: torch.Tensor, chain: torch.Tensor,
                form: str = "auto") -> torch.Tensor | MixtureRows:
    """pi~ at every prefix ``chain[:, :t]``: dense ``(B, H, A)`` or :class:`MixtureRows`.

    Args:
        expert: the oracle (its ``num_queries`` counts B x H either way).
        prompts, chain: ``(B, P)`` prompts and ``(B, H)`` complete chains (torch).
        form: ``dense``, ``structured`` (raises for an expert without that form) or
            ``auto`` (structured when the expert has it and the task has at least
            :data:`STRUCTURED_MIN_ACTIONS` actions).
    """
    if form not in EXPERT_FORMS:
        raise ValueError(f"unknown expert form {form!r}; valid: {', '.join(EXPERT_FORMS)}")
    if form == "structured" or (form == "auto" and is_structured(expert)
                                and expert.task.num_actions >= STRUCTURED_MIN_ACTIONS):
        return structured_along(expert, prompts, chain)
    return expert.probs_along(prompts, chain)


# ----- what the algorithms do with rows, for either form ----------------------------------
def sample(rows: torch.Tensor | MixtureRows, generator: torch.Generator) -> torch.Tensor:
    """One draw per row, ``(B, H)``: :func:`sample_categorical` (one uniform per row, inverse CDF over
    the token ids). The structured form inverts the CDF in closed form from the same uniform, so it
    draws the same tokens as the dense rows up to float rounding at the CDF's steps."""
    if not isinstance(rows, MixtureRows):
        return sample_categorical(rows, generator)
    clean, w, support = rows.clean, rows.weight, rows.support
    n = rows.n_support
    ids = torch.nonzero(support).squeeze(1)  # (n,) the support's ids, ascending
    below = (support.long().cumsum(0) - support.long())[clean].float()  # support ids < clean, (B, H)
    f_before = w * below / n  # CDF just below the clean id
    f_at = f_before + (1.0 - w) + w * rows._clean_in_support() / n  # CDF at the clean id
    u = torch.rand((*clean.shape, 1), generator=generator, device=clean.device, dtype=torch.float32)[..., 0]
    # Below the clean id the CDF climbs w / n per support id; above it, the same after the jump 1 - w.
    rest = torch.where(u <= f_before, u, u - (1.0 - w))
    k = torch.ceil(rest * n / w.clamp_min(1e-30)).long().clamp(1, n) - 1
    other = ids[k]
    at_clean = (u > f_before) & (u <= f_at) | (w == 0)
    return torch.where(at_clean, clean, other)


def prob_at(rows: torch.Tensor | MixtureRows, actions: torch.Tensor) -> torch.Tensor:
    """pi~(a | s) at every prefix for tokens ``actions`` ``(B, H)``: ``(B, H)``."""
    if not isinstance(rows, MixtureRows):
        return rows.gather(-1, actions[..., None].long())[..., 0]
    a = actions.long()
    return (1.0 - rows.weight) * (a == rows.clean) + rows.weight * rows.support[a].float() / rows.n_support


def forward_kl(student_logits: torch.Tensor, rows: torch.Tensor | MixtureRows) -> torch.Tensor:
    """KL(pi~ || Q) per position, ``(B, H)``: :func:`agents.losses.forward_kl` on the dense rows.

    Structured: ``sum p log p - (1 - w) log Q(clean) - (w / n) sum_{a in U} log Q(a)``.
    """
    if not isinstance(rows, MixtureRows):
        return losses.forward_kl(student_logits, rows)
    log_q = torch.log_softmax(student_logits.float() if student_logits.dtype not in (torch.float32, torch.float64)
                              else student_logits, dim=-1)  # (B, H, A)
    w = rows.weight.to(log_q.dtype)
    n = rows.n_support
    c_in = rows._clean_in_support().to(log_q.dtype)
    lq_clean = log_q.gather(-1, rows.clean[..., None])[..., 0]  # (B, H)
    lq_support = torch.where(rows.support, log_q, 0.0).sum(-1)  # (B, H), sum over U
    # 0 * log 0 = 0: a weight of exactly 0 never multiplies a -inf (a token the student masks).
    cross = -(torch.where(w == 1, 0.0, (1.0 - w) * lq_clean) + torch.where(w == 0, 0.0, w / n * lq_support))
    p_clean = (1.0 - w) + w * c_in / n
    p_other = w / n
    neg_entropy = torch.xlogy(p_clean, p_clean) + (n - c_in) * torch.xlogy(p_other, p_other)
    return neg_entropy + cross


def reverse_kl(student_logits: torch.Tensor, rows: torch.Tensor | MixtureRows,
               min_prob: float = 1e-8) -> torch.Tensor:
    """KL(Q || pi~) per position, ``(B, H)``: :func:`agents.losses.reverse_kl` on the dense rows (pi~
    floored at ``min_prob`` inside the log)."""
    if not isinstance(rows, MixtureRows):
        return losses.reverse_kl(student_logits, rows, min_prob=min_prob)
    log_q = torch.log_softmax(student_logits.float() if student_logits.dtype not in (torch.float32, torch.float64)
                              else student_logits, dim=-1)  # (B, H, A)
    q = log_q.exp()
    w = rows.weight.to(log_q.dtype)
    n = rows.n_support
    c_in = rows._clean_in_support().to(log_q.dtype)
    floor = math.log(min_prob)
    lp_clean = torch.log(((1.0 - w) + w * c_in / n).clamp_min(min_prob))
    lp_other = torch.log((w / n).clamp_min(min_prob))
    q_clean = q.gather(-1, rows.clean[..., None])[..., 0]
    q_support = torch.where(rows.support, q, 0.0).sum(-1)  # includes the clean token when it is in U
    q_rest = torch.where(rows.support, 0.0, q).sum(-1) - q_clean * (1.0 - c_in)  # off U, not the clean token
    q_log_q = (q * torch.where(torch.isneginf(log_q), 0.0, log_q)).sum(-1)
    return q_log_q - (q_clean * lp_clean + (q_support - q_clean * c_in) * lp_other + q_rest * floor)


__all__ = ["EXPERT_FORMS", "STRUCTURED_LAWS", "STRUCTURED_MIN_ACTIONS", "MixtureRows", "expert_rows",
           "forward_kl", "is_structured", "prob_at", "reverse_kl", "sample", "structured_along"]
