"""GKD (Agarwal et al. 2024): generalized JSD on a mix of student and expert data.

Each update is a coin flip: with probability ``lam`` (the student-data
fraction) the prefixes are the student's own sampled rollouts (temperature
``tau``); otherwise they are the noisy expert's own rollouts. The loss is the
generalized JSD_beta against the expert's distribution, TRL's convention
(beta = 0 forward KL(teacher || student), beta = 1 reverse KL(student || teacher)).
The JSD reads the expert's full distribution at every prefix, so GKD needs full
access (``needs_probs`` is True for every parameter).
"""

from __future__ import annotations

import torch

from agents import losses
from agents.algos.base import UNUSED_ROWS, Algorithm, Batch, Context, always, register
from noisy_expert_gym.declarations import Declared, NonNegativeFloat, UnitInterval


class GKDParams(Declared):
    lam: UnitInterval = 0.5
    """Student-data fraction: the probability that an update learns on the student's own rollouts."""
    beta: UnitInterval = 0.5
    """JSD interpolation: 0 forward KL(teacher || student), 1 reverse KL(student || teacher)."""
    tau: NonNegativeFloat = 1.0
    """Temperature of the student's rollouts."""


def collect(ctx: Context, params: GKDParams) -> Batch:
    prompts = ctx.sample_prompts()
    n, h = prompts.shape[0], ctx.task.horizon
    on_policy = bool(torch.rand((), generator=ctx.gen, device=ctx.gen.device) < params.lam)
    if on_policy:
        chain = ctx.rollout(prompts, params.tau)
        return Batch(prompts, chain, probs=ctx.expert.probs_along(prompts, chain, **ctx.noise_kw), trajectories=n)
    # The expert's own rollout: its distribution at each prefix was computed while rolling
    # out, so the labels cost no further queries (count the N * H once).
    chain = ctx.expert.rollout(prompts, generator=ctx.gen)
    return Batch(prompts, chain, probs=ctx.expert.probs_along(prompts, chain, **ctx.noise_kw), trajectories=n,
                 queries=n * h)


def loss(logits: torch.Tensor, batch: Batch, params: GKDParams) -> torch.Tensor:
    return losses.generalized_jsd(logits, batch.probs, params.beta)


register(Algorithm("gkd", "GKD: generalized JSD_beta on a lam fraction of student data",
                   GKDParams, collect, loss, needs_probs=always,
                   unused=frozenset({"expert_form"}), unused_reason=UNUSED_ROWS,
                   sample_only_hint=("the generalized JSD needs the expert's distribution at every prefix: use "
                                     "`nail-f` / `opd-f` (estimator='mc'), `bc` or `dagger`")))
