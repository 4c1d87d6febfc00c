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

from typing import Any

import torch

from agents import losses
from agents.algos.registry import Algorithm, non_negative, one_of, register, unit_interval

FORWARD = ("mc", "exact")
REVERSE = ("score", "exact")


def collect_online(ctx: Any, params: dict[str, Any]) -> Any:
    """Student rollout at temperature tau; the expert answers at all H prefixes at once."""
    from agents.trainer import Batch, sample_probs

    prompts = ctx.sample_prompts()
    chain = ctx.rollout(prompts, params["tau"])
    probs = ctx.expert.probs_along(prompts, chain)  # (B, H, A)
    # A query returns one sampled expert token; the exact estimators use the row itself.
    actions = sample_probs(probs, ctx.gen)
    return Batch(prompts, chain, probs=probs, actions=actions, trajectories=prompts.shape[0], gen=ctx.gen)


def forward_loss(logits: torch.Tensor, batch: Any, estimator: str) -> torch.Tensor:
    if estimator == "mc":
        return losses.mc_forward(logits, batch.actions)
    return losses.forward_kl(logits, batch.probs)


def reverse_loss(logits: torch.Tensor, batch: Any, estimator: str, tau: float) -> torch.Tensor:
    if estimator == "exact":
        return losses.reverse_kl(logits, batch.probs)
    if tau == 0:  # greedy rollouts: the rollout token is not a sample, draw a fresh a' ~ pi_theta
        a, log_q = losses.sample_actions(logits.detach(), generator=batch.gen)
    else:  # sampled rollouts: reuse the rollout token; q = softmax(logits / tau), detached
        a = batch.chain
        log_q = torch.log_softmax(logits.detach() / tau, -1).gather(-1, a[..., None])[..., 0]
    log_p = batch.probs.gather(-1, a[..., None])[..., 0].clamp_min(1e-8).log()
    return losses.score_function_reverse_kl(logits, a, log_p, log_q)


def _loss_f(logits, batch, params):
    return forward_loss(logits, batch, params["estimator"])


def _loss_r(logits, batch, params):
    return reverse_loss(logits, batch, params["estimator"], params["tau"])


def _loss_mixed(logits, batch, params):
    b = params["beta"]
    lf = forward_loss(logits, batch, params["forward_estimator"])
    lr = reverse_loss(logits, batch, params["reverse_estimator"], params["tau"])
    return (1 - b) * lf + b * lr


_tau = {"tau": non_negative("tau")}
register(Algorithm("opd-f", "on-policy distillation, sampled student rollouts, forward KL",
                   {"tau": 1.0, "estimator": "mc"}, collect_online, _loss_f,
                   checks={**_tau, "estimator": one_of("estimator", FORWARD)}))
register(Algorithm("opd-r", "on-policy distillation, sampled student rollouts, reverse KL (score function)",
                   {"tau": 1.0, "estimator": "score"}, collect_online, _loss_r,
                   checks={**_tau, "estimator": one_of("estimator", REVERSE)}))
register(Algorithm("nail-f", "NAIL: greedy student rollouts, forward KL",
                   {"tau": 0.0, "estimator": "mc"}, collect_online, _loss_f,
                   checks={**_tau, "estimator": one_of("estimator", FORWARD)}))
register(Algorithm("nail-r", "NAIL: greedy student rollouts, reverse KL (score function, fresh token)",
                   {"tau": 0.0, "estimator": "score"}, collect_online, _loss_r,
                   checks={**_tau, "estimator": one_of("estimator", REVERSE)}))
register(Algorithm("nail-mixed", "NAIL: greedy rollouts, (1-beta) forward + beta reverse KL",
                   {"tau": 0.0, "beta": 0.5, "forward_estimator": "mc", "reverse_estimator": "score"},
                   collect_online, _loss_mixed,
                   checks={**_tau, "beta": unit_interval("beta"),
                           "forward_estimator": one_of("forward_estimator", FORWARD),
                           "reverse_estimator": one_of("reverse_estimator", REVERSE)}))
