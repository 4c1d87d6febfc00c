"""On-policy distillation and NAIL: the student rolls out, the noisy expert labels every prefix.

| name       | rollout            | loss on each visited prefix                              |
|------------|--------------------|----------------------------------------------------------|
| opd-f      | sampled (tau = 1)  | forward KL(pi~ || pi_theta)                              |
| opd-r      | sampled (tau = 1)  | reverse KL, score function reusing the rollout token     |
| nail-f     | greedy (tau = 0)   | forward KL                                               |
| nail-r     | greedy (tau = 0)   | reverse KL, score function with a fresh token a'~pi_theta |
| nail-mixed | greedy (tau = 0)   | (1 - beta) L_F + beta L_R                                |

Forward KL ``estimator``: ``mc`` (the paper's: -log pi_theta(a), a ~ pi~, one
sampled expert token per prefix), ``exact`` (the full pi~ row, same query), or on the
expert's top-k answer (``top_k`` tokens and their log-probabilities, one query per
prefix, as an inference server gives a distillation trainer): ``topk`` (forward KL on
the renormalised top-k, :func:`agents.losses.topk_forward_kl`) or ``topk-tail`` (the
top-k plus one tail bucket, :func:`agents.losses.topk_tail_forward_kl`).
Reverse KL ``estimator``: ``score`` (the paper's score-function estimator) or
``exact``.

**Top-k experts** (``access="topk"``): the ``topk`` estimators read ``topk_along``
(with the algorithm's ``top_k``, at most the expert's, or the expert's own when unset);
``mc`` reads samples, which a top-k expert answers. The exact estimators and reverse KL
need whole rows (or log pi~ at the student's token): refused up front. Under full access
the ``topk`` estimators need their ``top_k``.

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
from pydantic import model_validator

from agents import expert_rows as rows
from agents import losses
from agents.algos.base import Algorithm, Batch, Context, always, register
from noisy_expert_gym.declarations import Declared, NonNegativeFloat, PositiveInt, UnitInterval
from noisy_expert_gym.topk import topk_of

Forward = Literal["mc", "exact", "topk", "topk-tail"]
Reverse = Literal["score", "exact"]
#: The forward estimators that read the expert's top-k answer.
TOPK_ESTIMATORS = ("topk", "topk-tail")


def _check_top_k(estimator: str, top_k: int | None, name: str) -> None:
    if top_k is not None and estimator not in TOPK_ESTIMATORS:
        raise ValueError(f"`top_k` applies to the top-k forward estimators ({', '.join(TOPK_ESTIMATORS)}) only; "
                         f"with {name}={estimator!r} leave it unset")


class OPDForward(Declared):
    tau: NonNegativeFloat = 1.0
    """Student rollout temperature (1: sampled, 0: greedy)."""
    estimator: Forward = "mc"
    """Forward KL: `mc` (-log pi_theta(a), a ~ pi~), `exact` (the full pi~ row), `topk` (renormalised top-k) or `topk-tail` (top-k + tail bucket)."""
    top_k: PositiveInt | None = None
    """Tokens per top-k answer (`topk` estimators): None takes a topk expert's own; required under full access."""

    @model_validator(mode="after")
    def _top_k(self) -> OPDForward:
        _check_top_k(self.estimator, self.top_k, "estimator")
        return self


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
    """Forward KL estimator: `mc`, `exact`, `topk` or `topk-tail`."""
    reverse_estimator: Reverse = "score"
    """Reverse KL estimator: `score` or `exact`."""
    top_k: PositiveInt | None = None
    """Tokens per top-k answer (`topk` forward estimators): None takes a topk expert's own; required under full access."""

    @model_validator(mode="after")
    def _top_k(self) -> NAILMixed:
        _check_top_k(self.forward_estimator, self.top_k, "forward_estimator")
        return self


def _forward_estimator(params: OPDForward | OPDReverse | NAILMixed) -> str | None:
    return getattr(params, "estimator", None) if not isinstance(params, NAILMixed) else params.forward_estimator


def collect_online(ctx: Context, params: OPDForward | OPDReverse | NAILMixed) -> Batch:
    """Student rollout at temperature tau; the expert answers at all H prefixes at once."""
    prompts = ctx.sample_prompts()
    chain = ctx.rollout(prompts, params.tau)
    n = prompts.shape[0]
    if _forward_estimator(params) in TOPK_ESTIMATORS:
        if isinstance(params, NAILMixed) and params.beta > 0:  # the reverse term reads the rows: derive the top-k
            probs = rows.expert_rows(ctx.expert, prompts, chain, ctx.cfg.expert_form, **ctx.noise_kw)
            dense = probs.dense() if isinstance(probs, rows.MixtureRows) else probs
            k = params.top_k or ctx.expert.top_k
            return Batch(prompts, chain, probs=probs, topk=topk_of(dense, k), trajectories=n, gen=ctx.gen)
        # One top-k answer per prefix (B H queries), the same count as a row.
        return Batch(prompts, chain, topk=ctx.topk_along(prompts, chain, params.top_k), trajectories=n, gen=ctx.gen)
    # A query returns one sampled expert token; the exact estimators use the row itself: (B, H, A)
    # dense or structured (cfg.expert_form), None from a sample-only or top-k expert.
    if ctx.sample_only or ctx.expert_access == "topk":
        probs, actions = None, ctx.expert.sample_along(prompts, chain, 1, generator=ctx.gen)[..., 0]
    else:
        probs = rows.expert_rows(ctx.expert, prompts, chain, ctx.cfg.expert_form, **ctx.noise_kw)
        actions = rows.sample(probs, ctx.gen)
    return Batch(prompts, chain, probs=probs, actions=actions, trajectories=n, gen=ctx.gen)


def exact_forward(params: OPDForward | NAILForward) -> bool:
    """``needs_probs`` of forward KL: the exact and top-k estimators read more than samples."""
    return params.estimator != "mc"


def exact_forward_rows(params: OPDForward | NAILForward) -> bool:
    """``needs_rows`` of forward KL: only the exact estimator reads the whole rows."""
    return params.estimator == "exact"


def forward_top_k(params: OPDForward | NAILForward | NAILMixed) -> int | None:
    return params.top_k


def forward_topk_queries(params: OPDForward | NAILForward) -> bool:
    return params.estimator in TOPK_ESTIMATORS


def mixed_needs_probs(params: NAILMixed) -> bool:
    """``needs_probs`` of NAIL-Mixed: any reverse-KL weight, or a forward estimator other than `mc`."""
    return params.beta > 0 or params.forward_estimator != "mc"


def mixed_needs_rows(params: NAILMixed) -> bool:
    """``needs_rows`` of NAIL-Mixed: any reverse-KL weight (log pi~ at the student's token), or the exact forward."""
    return params.beta > 0 or params.forward_estimator == "exact"


def forward_loss(logits: torch.Tensor, batch: Batch, estimator: str) -> torch.Tensor:
    if estimator == "mc":
        return losses.mc_forward(logits, batch.actions)
    if estimator == "topk":
        return losses.topk_forward_kl(logits, batch.topk.ids, batch.topk.logprobs)
    if estimator == "topk-tail":
        return losses.topk_tail_forward_kl(logits, batch.topk.ids, batch.topk.logprobs)
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
    if params.beta == 0 and batch.probs is None:  # sample-only / top-k expert (or a top-k forward): the reverse
        return lf  # term has weight 0 and no pi~ to compute it from; full access keeps computing it, as before
    lr = reverse_loss(logits, batch, params.reverse_estimator, params.tau)
    return (1 - params.beta) * lf + params.beta * lr


MC_HINT = "use estimator='mc' (the Monte Carlo forward KL on one sampled expert token per prefix)"
TOPK_HINT = ("use estimator='mc', 'topk' (forward KL on the renormalised top-k) or 'topk-tail' (top-k plus a tail "
             "bucket)")
REVERSE_HINT = ("reverse KL's estimators read log pi~ at the scored token: use `opd-f` / `nail-f` with "
                "estimator='mc', or `nail-mode` (majority vote of k samples)")
REVERSE_TOPK_HINT = ("reverse KL's estimators read log pi~ at the student's token: use `opd-f` / `nail-f` with "
                     "estimator='topk', 'topk-tail' or 'mc'")
FORWARD = {"needs_probs": exact_forward, "needs_rows": exact_forward_rows, "top_k": forward_top_k,
           "topk_queries": forward_topk_queries, "sample_only_hint": MC_HINT, "topk_hint": TOPK_HINT}
REVERSE = {"needs_probs": always, "sample_only_hint": REVERSE_HINT, "topk_hint": REVERSE_TOPK_HINT}

register(Algorithm("opd-f", "on-policy distillation, sampled student rollouts, forward KL",
                   OPDForward, collect_online, loss_forward, **FORWARD))
register(Algorithm("opd-r", "on-policy distillation, sampled student rollouts, reverse KL (score function)",
                   OPDReverse, collect_online, loss_reverse, **REVERSE))
register(Algorithm("nail-f", "NAIL: greedy student rollouts, forward KL",
                   NAILForward, collect_online, loss_forward, **FORWARD))
register(Algorithm("nail-r", "NAIL: greedy student rollouts, reverse KL (score function, fresh token)",
                   NAILReverse, collect_online, loss_reverse, **REVERSE))
register(Algorithm("nail-mixed", "NAIL: greedy rollouts, (1-beta) forward + beta reverse KL",
                   NAILMixed, collect_online, loss_mixed, needs_probs=mixed_needs_probs, needs_rows=mixed_needs_rows,
                   top_k=forward_top_k, topk_queries=lambda p: p.forward_estimator in TOPK_ESTIMATORS,
                   sample_only_hint="set beta=0 and forward_estimator='mc' (that is nail-f), or use `nail-mode`",
                   topk_hint="set beta=0 with forward_estimator='topk', 'topk-tail' or 'mc'"))
