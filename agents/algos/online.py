"""On-policy distillation and NAIL: the student rolls out, the noisy expert labels every prefix.

| name       | rollout            | loss on each visited prefix                              |
|------------|--------------------|----------------------------------------------------------|
| opd-f      | sampled (tau = 1)  | forward KL(pi~ || pi_theta)                              |
| opd-r      | sampled (tau = 1)  | reverse KL, score function reusing the rollout token     |
| nail-f     | greedy (tau = 0)   | forward KL                                               |
| nail-r     | greedy (tau = 0)   | reverse KL, score function with a fresh token a'~pi_theta |
| nail-mixed | greedy (tau = 0)   | (1 - beta) L_F + beta L_R                                |

Forward KL ``estimator``: ``mc`` (the paper's: -log pi_theta(a), a ~ pi~, one
sampled expert token per prefix) or ``exact`` (the full pi~ row, same query).
Reverse KL ``estimator``: ``score`` (the paper's score-function estimator) or
``exact``.

**Sample-only experts** (``access="sample"``): the Monte Carlo forward KL needs one
sampled token per prefix and nothing else, so ``opd-f`` / ``nail-f`` with
``estimator="mc"`` and ``nail-mixed`` with ``beta=0, forward_estimator="mc"`` draw
their labels with ``sample_along(prompts, chain, 1)`` (the same tokens, from the
same generator state, as ``probs_along`` and one draw per row under full access).
The exact estimators and reverse KL (whose estimators read log pi~) need the rows:
their ``needs_probs`` is True and the trainer refuses them up front.

The expert's rows come dense or, for a plain mixture / absorbing expert over a large
vocabulary, structured (``TrainConfig.expert_form``; :mod:`agents.expert_rows`): every
loss below takes either.
"""

from __future__ import annotations

from typing import Literal

import torch

from agents import expert_rows as rows
from agents import losses
from agents.algos.base import Algorithm, Batch, Context, always, register
from noisy_expert_gym.declarations import Declared, NonNegativeFloat, UnitInterval

Forward = Literal["mc", "exact"]
Reverse = Literal["score", "exact"]


class OPDForward(Declared):
    tau: NonNegativeFloat = 1.0
    """Student rollout temperature (1: sampled, 0: greedy)."""
    estimator: Forward = "mc"
    """Forward KL: `mc` (-log pi_theta(a), a ~ pi~) or `exact` (the full pi~ row)."""


class OPDReverse(Declared):
    tau: NonNegativeFloat = 1.0
    """Student rollout temperature (1: sampled; its token is reused by the score function)."""
    estimator: Reverse = "score"
    """Reverse KL: `score` (score function) or `exact`."""


class NAILForward(OPDForward):
    tau: NonNegativeFloat = 0.0
    """Student rollout temperature (0: greedy)."""


class NAILReverse(OPDReverse):
    tau: NonNegativeFloat = 0.0
    """Student rollout temperature (0: greedy; the score function draws a fresh a' ~ pi_theta)."""


class NAILMixed(Declared):
    tau: NonNegativeFloat = 0.0
    """Student rollout temperature (0: greedy)."""
    beta: UnitInterval = 0.5
    """Weight of the reverse KL: 0 forward only, 1 reverse only."""
    forward_estimator: Forward = "mc"
    """Forward KL estimator: `mc` or `exact`."""
    reverse_estimator: Reverse = "score"
    """Reverse KL estimator: `score` or `exact`."""


def collect_online(ctx: Context, params: OPDForward | OPDReverse | NAILMixed) -> Batch:
    """Student rollout at temperature tau; the expert answers at all H prefixes at once."""
    prompts = ctx.sample_prompts()
    chain = ctx.rollout(prompts, params.tau)
    # A query returns one sampled expert token; the exact estimators use the row itself: (B, H, A)
    # dense or structured (cfg.expert_form), None from a sample-only expert.
    if ctx.sample_only:
        probs, actions = ctx.label_along(prompts, chain)
    else:
        probs = rows.expert_rows(ctx.expert, prompts, chain, ctx.cfg.expert_form)
        actions = rows.sample(probs, ctx.gen)
    return Batch(prompts, chain, probs=probs, actions=actions, trajectories=prompts.shape[0], gen=ctx.gen)


def exact_forward(params: OPDForward | NAILForward) -> bool:
    """``needs_probs`` of forward KL: only the exact estimator reads the rows."""
    return params.estimator == "exact"


def mixed_needs_probs(params: NAILMixed) -> bool:
    """``needs_probs`` of NAIL-Mixed: any reverse-KL weight, or the exact forward estimator."""
    return params.beta > 0 or params.forward_estimator == "exact"


def forward_loss(logits: torch.Tensor, batch: Batch, estimator: str) -> torch.Tensor:
    if estimator == "mc":
        return losses.mc_forward(logits, batch.actions)
    return losses.forward_kl_rows(logits, batch.probs)


def reverse_loss(logits: torch.Tensor, batch: Batch, estimator: str, tau: float) -> torch.Tensor:
    if estimator == "exact":
        return losses.reverse_kl_rows(logits, batch.probs)
    if tau == 0:  # greedy rollouts: the rollout token is not a sample, draw a fresh a' ~ pi_theta
        a, log_q = losses.sample_actions(logits.detach(), generator=batch.gen)
    else:  # sampled rollouts: reuse the rollout token; q = softmax(logits / tau), detached
        a = batch.chain
        log_q = torch.log_softmax(logits.detach() / tau, -1).gather(-1, a[..., None])[..., 0]
    log_p = rows.prob_at(batch.probs, a).clamp_min(1e-8).log()
    return losses.score_function_reverse_kl(logits, a, log_p, log_q)


def loss_forward(logits: torch.Tensor, batch: Batch, params: OPDForward | NAILForward) -> torch.Tensor:
    return forward_loss(logits, batch, params.estimator)


def loss_reverse(logits: torch.Tensor, batch: Batch, params: OPDReverse | NAILReverse) -> torch.Tensor:
    return reverse_loss(logits, batch, params.estimator, params.tau)


def loss_mixed(logits: torch.Tensor, batch: Batch, params: NAILMixed) -> torch.Tensor:
    lf = forward_loss(logits, batch, params.forward_estimator)
    if params.beta == 0 and batch.probs is None:  # sample-only expert: the reverse term has weight 0
        return lf  # (and no pi~ to compute it from); full access keeps computing it, draw for draw as before
    lr = reverse_loss(logits, batch, params.reverse_estimator, params.tau)
    return (1 - params.beta) * lf + params.beta * lr


MC_HINT = "use estimator='mc' (the Monte Carlo forward KL on one sampled expert token per prefix)"
REVERSE_HINT = ("reverse KL's estimators read log pi~ at the scored token: use `opd-f` / `nail-f` with "
                "estimator='mc', or `nail-mode` (majority vote of k samples)")

register(Algorithm("opd-f", "on-policy distillation, sampled student rollouts, forward KL",
                   OPDForward, collect_online, loss_forward, needs_probs=exact_forward, sample_only_hint=MC_HINT))
register(Algorithm("opd-r", "on-policy distillation, sampled student rollouts, reverse KL (score function)",
                   OPDReverse, collect_online, loss_reverse, needs_probs=always, sample_only_hint=REVERSE_HINT))
register(Algorithm("nail-f", "NAIL: greedy student rollouts, forward KL",
                   NAILForward, collect_online, loss_forward, needs_probs=exact_forward, sample_only_hint=MC_HINT))
register(Algorithm("nail-r", "NAIL: greedy student rollouts, reverse KL (score function, fresh token)",
                   NAILReverse, collect_online, loss_reverse, needs_probs=always, sample_only_hint=REVERSE_HINT))
register(Algorithm("nail-mixed", "NAIL: greedy rollouts, (1-beta) forward + beta reverse KL",
                   NAILMixed, collect_online, loss_mixed, needs_probs=mixed_needs_probs,
                   sample_only_hint="set beta=0 and forward_estimator='mc' (that is nail-f), or use `nail-mode`"))
