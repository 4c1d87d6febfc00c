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
"""

from __future__ import annotations

from typing import Literal

import torch

from agents import losses
from agents.algos.base import Algorithm, Batch, Context, NonNegative, UnitInterval, register
from noisy_expert_gym.declared import Declared

Forward = Literal["mc", "exact"]
Reverse = Literal["score", "exact"]


class OPDForward(Declared):
    tau: NonNegative = 1.0
    """Student rollout temperature (1: sampled, 0: greedy)."""
    estimator: Forward = "mc"
    """Forward KL: `mc` (-log pi_theta(a), a ~ pi~) or `exact` (the full pi~ row)."""


class OPDReverse(Declared):
    tau: NonNegative = 1.0
    """Student rollout temperature (1: sampled; its token is reused by the score function)."""
    estimator: Reverse = "score"
    """Reverse KL: `score` (score function) or `exact`."""


class NAILForward(OPDForward):
    tau: NonNegative = 0.0
    """Student rollout temperature (0: greedy)."""


class NAILReverse(OPDReverse):
    tau: NonNegative = 0.0
    """Student rollout temperature (0: greedy; the score function draws a fresh a' ~ pi_theta)."""


class NAILMixed(Declared):
    tau: NonNegative = 0.0
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
    probs = ctx.expert.probs_along(prompts, chain)  # (B, H, A)
    # A query returns one sampled expert token; the exact estimators use the row itself.
    return Batch(prompts, chain, probs=probs, actions=ctx.sample(probs), trajectories=prompts.shape[0],
                 gen=ctx.gen)


def forward_loss(logits: torch.Tensor, batch: Batch, estimator: str) -> torch.Tensor:
    if estimator == "mc":
        return losses.mc_forward(logits, batch.actions)
    return losses.forward_kl(logits, batch.probs)


def reverse_loss(logits: torch.Tensor, batch: Batch, estimator: str, tau: float) -> torch.Tensor:
    if estimator == "exact":
        return losses.reverse_kl(logits, batch.probs)
    if tau == 0:  # greedy rollouts: the rollout token is not a sample, draw a fresh a' ~ pi_theta
        a, log_q = losses.sample_actions(logits.detach(), generator=batch.gen)
    else:  # sampled rollouts: reuse the rollout token; q = softmax(logits / tau), detached
        a = batch.chain
        log_q = torch.log_softmax(logits.detach() / tau, -1).gather(-1, a[..., None])[..., 0]
    log_p = batch.probs.gather(-1, a[..., None])[..., 0].clamp_min(1e-8).log()
    return losses.score_function_reverse_kl(logits, a, log_p, log_q)


def loss_forward(logits: torch.Tensor, batch: Batch, params: OPDForward | NAILForward) -> torch.Tensor:
    return forward_loss(logits, batch, params.estimator)


def loss_reverse(logits: torch.Tensor, batch: Batch, params: OPDReverse | NAILReverse) -> torch.Tensor:
    return reverse_loss(logits, batch, params.estimator, params.tau)


def loss_mixed(logits: torch.Tensor, batch: Batch, params: NAILMixed) -> torch.Tensor:
    lf = forward_loss(logits, batch, params.forward_estimator)
    lr = reverse_loss(logits, batch, params.reverse_estimator, params.tau)
    return (1 - params.beta) * lf + params.beta * lr


register(Algorithm("opd-f", "on-policy distillation, sampled student rollouts, forward KL",
                   OPDForward, collect_online, loss_forward))
register(Algorithm("opd-r", "on-policy distillation, sampled student rollouts, reverse KL (score function)",
                   OPDReverse, collect_online, loss_reverse))
register(Algorithm("nail-f", "NAIL: greedy student rollouts, forward KL",
                   NAILForward, collect_online, loss_forward))
register(Algorithm("nail-r", "NAIL: greedy student rollouts, reverse KL (score function, fresh token)",
                   NAILReverse, collect_online, loss_reverse))
register(Algorithm("nail-mixed", "NAIL: greedy rollouts, (1-beta) forward + beta reverse KL",
                   NAILMixed, collect_online, loss_mixed))
