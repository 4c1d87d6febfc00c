"""GKD (Agarwal et al. 2024): generalized JSD on a mix of student and expert data.

Each update is a coin flip: with probability ``lam`` (the student-data
fraction) the prefixes are the student's own sampled rollouts (temperature
``tau``); otherwise they are the noisy expert's own rollouts. The loss is the
generalized JSD_beta against the expert's distribution, TRL's convention
(beta = 0 forward KL(teacher || student), beta = 1 reverse KL(student || teacher)).
"""

from __future__ import annotations

from typing import Any

import torch

from agents import losses
from agents.algos.registry import Algorithm, non_negative, register, unit_interval


def collect(ctx: Any, params: dict[str, Any]) -> Any:
    from agents.trainer import Batch

    prompts = ctx.sample_prompts()
    n, h = prompts.shape[0], ctx.task.horizon
    on_policy = bool(torch.rand((), generator=ctx.gen, device=ctx.gen.device) < params["lam"])
    if on_policy:
        chain = ctx.rollout(prompts, params["tau"])
        return Batch(prompts, chain, probs=ctx.expert.probs_along(prompts, chain), trajectories=n)
    # The expert's own rollout: its distribution at each prefix was computed while rolling
    # out, so the labels cost no further queries (count the N * H once).
    chain = ctx.expert.rollout(prompts, generator=ctx.gen)
    return Batch(prompts, chain, probs=ctx.expert.probs_along(prompts, chain), trajectories=n,
                 queries=n * h)


def loss(logits: torch.Tensor, batch: Any, params: dict[str, Any]) -> torch.Tensor:
    return losses.generalized_jsd(logits, batch.probs, params["beta"])


register(Algorithm("gkd", "GKD: generalized JSD_beta on a lam fraction of student data",
                   {"lam": 0.5, "beta": 0.5, "tau": 1.0}, collect, loss,
                   checks={"lam": unit_interval("lam"), "beta": unit_interval("beta"),
                           "tau": non_negative("tau")}))
