"""Which form of the noisy expert's rows a learner asks for, and what it reads from either.

The online methods ask the expert for its distribution at all B x H prefixes of a
batch of chains. :meth:`~noisy_expert_gym.oracle.Expert.probs_along` answers with a
dense ``(B, H, A)`` array; with Gemma's 262,144-token vocabulary that is 17 GB per
float32 copy at B = 16, H = 1,024, and the noise law, the sampling and the losses
each make one or more. A plain :class:`~noisy_expert_gym.oracle.Expert` under the
``mixture`` or ``absorbing`` law (or the clean expert) also answers in structured
form, :meth:`~noisy_expert_gym.oracle.Expert.structured_along`: a
:class:`~noisy_expert_gym.noise.MixtureRows` of a clean token and U's weight per
prefix (the law and the query count are the oracle's). This module chooses the form
(:func:`expert_rows`, ``TrainConfig.expert_form``) and reads either the same way:
:func:`sample` (the same inverse-CDF draw from one uniform per row as
:func:`~noisy_expert_gym.utils.sample_categorical`) and :func:`prob_at`; the KL
losses on either form are :func:`agents.losses.forward_kl_rows` and
:func:`agents.losses.reverse_kl_rows`.

Other experts (an LM teacher, a :class:`~agents.teachers.PolicyTeacher`, a corruption
law, a sample-only expert, the harness's counting client) are always asked densely.
"""

from __future__ import annotations

from typing import Any

import torch

from noisy_expert_gym.noise import MIXTURE_FORM_LAWS, MixtureRows
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.utils import sample_categorical

#: Laws whose rows are ``(1 - w) delta(clean) + w U`` (``clean``: the clean expert, w = 0).
STRUCTURED_LAWS: tuple[str, ...] = MIXTURE_FORM_LAWS
#: ``expert_form="auto"`` reads structured rows from this many actions on (HF vocabularies);
#: below it the dense rows are cheap and are kept (draw for draw the earlier behaviour).
STRUCTURED_MIN_ACTIONS = 4096
EXPERT_FORMS: tuple[str, ...] = ("auto", "dense", "structured")


def is_structured(expert: Any) -> bool:
    """Whether `expert`'s rows have the structured form: a plain :class:`Expert` with full access and a
    ``mixture`` / ``absorbing`` law, or the clean expert."""
    return isinstance(expert, Expert) and expert.has_structured_rows


def expert_rows(expert: Any, prompts: torch.Tensor, chain: torch.Tensor,
                form: str = "auto", **kw: Any) -> torch.Tensor | MixtureRows:
    """pi~ at every prefix ``chain[:, :t]``: dense ``(B, H, A)`` or :class:`MixtureRows`.

    Args:
        expert: the oracle (its ``num_queries`` counts B x H either way).
        prompts, chain: ``(B, P)`` prompts and ``(B, H)`` complete chains (torch).
        form: ``dense``, ``structured`` (raises for an expert without that form) or
            ``auto`` (structured when the expert has it and the task has at least
            :data:`STRUCTURED_MIN_ACTIONS` actions).
        **kw: passed to ``probs_along`` (``generator=`` for an expert with logit noise,
            which has no structured form).
    """
    if form not in EXPERT_FORMS:
        raise ValueError(f"unknown expert form {form!r}; valid: {', '.join(EXPERT_FORMS)}")
    if form == "structured" and not is_structured(expert):
        raise ValueError(f"the expert {expert!r} has no structured form: it needs a plain Expert with full access "
                         f"and a law among {', '.join(STRUCTURED_LAWS)}; use expert_form='dense' (or 'auto')")
    if form == "structured" or (form == "auto" and is_structured(expert)
                                and expert.task.num_actions >= STRUCTURED_MIN_ACTIONS):
        return expert.structured_along(prompts, chain)
    return expert.probs_along(prompts, chain, **kw)


def sample(rows: torch.Tensor | MixtureRows, generator: torch.Generator) -> torch.Tensor:
    """One draw per row, ``(B, H)``: :func:`sample_categorical` (one uniform per row, inverse CDF over
    the token ids), or :meth:`MixtureRows.sample`, which draws the same tokens up to float rounding."""
    return rows.sample(generator) if isinstance(rows, MixtureRows) else sample_categorical(rows, generator)


def prob_at(rows: torch.Tensor | MixtureRows, actions: torch.Tensor) -> torch.Tensor:
    """pi~(a | s) at every prefix for tokens ``actions`` ``(B, H)``: ``(B, H)``."""
    if isinstance(rows, MixtureRows):
        return rows.prob_at(actions)
    return rows.gather(-1, actions[..., None].long())[..., 0]


__all__ = [
    "EXPERT_FORMS",
    "STRUCTURED_LAWS",
    "STRUCTURED_MIN_ACTIONS",
    "MixtureRows",
    "expert_rows",
    "is_structured",
    "prob_at",
    "sample",
]
