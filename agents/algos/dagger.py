"""DAgger (Ross et al. 2011): mixture roll-in, aggregated dataset, sampled noisy-expert labels.

The budget is split into ``iterations`` equal rounds; round i rolls in with
pi_i = beta_i pi~ + (1 - beta_i) pi_hat (per-step mixing: at each step the
noisy expert's sampled token with probability beta_i, else the student's greedy
token), beta_i = ``beta0`` * ``decay`` ** i. Every visited prefix is labelled
with a sampled noisy-expert token and appended to the aggregated dataset; each
update takes one gradient step on a uniform minibatch of everything aggregated.

The expert is queried once per visited prefix, while rolling in (H queries per
trajectory, as every algorithm of the loop): its sampled token is the prefix's label,
and where the expert is in control of the roll-in it is also the token written (the
expert acting is the expert answering, as in Ross et al.).

It learns from sampled tokens only (``expert.sample``), so a sample-only expert
(``access="sample"``) draws the same tokens as a full-access one.
"""

from __future__ import annotations

import torch

from agents import losses
from agents.algos.base import UNUSED_ROWS, Algorithm, Batch, Context, never, register
from noisy_expert_gym.declarations import Declared, PositiveInt, UnitInterval


class DAggerParams(Declared):
    beta0: UnitInterval = 1.0
    """Expert share of the roll-in in the first round."""
    decay: UnitInterval = 0.5
    """Factor on the expert share from one round to the next."""
    iterations: PositiveInt = 10
    """Rounds the trajectory budget is split into."""


def setup(ctx: Context, params: DAggerParams) -> None:
    ctx.state["buffer"] = None  # {prompts, chain, labels}, grown on the training device


def mixing_rate(ctx: Context, params: DAggerParams) -> float:
    """beta_i of the current round i (the budget split into ``iterations`` equal rounds)."""
    round_len = max(1, ctx.budget.affordable // params.iterations)
    return params.beta0 * params.decay ** min(ctx.trajectories // round_len, params.iterations - 1)


def collect(ctx: Context, params: DAggerParams) -> Batch:
    prompts = ctx.sample_prompts()
    n = prompts.shape[0]
    beta = mixing_rate(ctx, params)

    labels = torch.empty((n, ctx.task.horizon), dtype=torch.long, device=ctx.device)

    def mix(t: int, chain: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        # chain[:, :t] is written so far; later columns are not yet filled. One query per prefix:
        # the expert's sampled token is the label, and the roll-in token where the expert acts.
        labels[:, t] = ctx.expert.sample(ctx.task.observe(prompts, chain[:, :t]), generator=ctx.gen)
        use_expert = torch.rand(n, generator=ctx.gen, device=ctx.gen.device).to(ctx.device) < beta
        return torch.where(use_expert, labels[:, t], student)

    chain = ctx.rollout(prompts, 0.0, step_fn=mix)
    new = {"prompts": prompts, "chain": chain, "labels": labels}
    buf = ctx.state["buffer"]
    buf = new if buf is None else {k: torch.cat([buf[k], v]) for k, v in new.items()}
    ctx.state["buffer"] = buf
    idx = torch.randint(0, buf["prompts"].shape[0], (n,), generator=ctx.gen, device=ctx.gen.device)
    idx = idx.to(ctx.device)
    return Batch(buf["prompts"][idx], buf["chain"][idx], actions=buf["labels"][idx], trajectories=n)


def loss(logits: torch.Tensor, batch: Batch, params: DAggerParams) -> torch.Tensor:
    return losses.mc_forward(logits, batch.actions)


register(Algorithm("dagger", "DAgger: mixture roll-in, aggregated dataset, sampled noisy labels",
                   DAggerParams, collect, loss, setup=setup, needs_probs=never,
                   unused=frozenset({"expert_form"}), unused_reason=UNUSED_ROWS))
