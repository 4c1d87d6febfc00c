"""DAgger (Ross et al. 2011): mixture roll-in, aggregated dataset, sampled noisy-expert labels.

The budget is split into ``iterations`` equal rounds; round i rolls in with
pi_i = beta_i pi~ + (1 - beta_i) pi_hat (per-step mixing: at each step the
noisy expert's sampled token with probability beta_i, else the student's greedy
token), beta_i = ``beta0`` * ``decay`` ** i. Every visited prefix is labelled
with a sampled noisy-expert token and appended to the aggregated dataset; each
update takes one gradient step on a uniform minibatch of everything aggregated.
"""

from __future__ import annotations

from typing import Any

import torch

from agents import losses
from agents.algos.registry import Algorithm, register, unit_interval


def setup(ctx: Any, params: dict[str, Any]) -> None:
    ctx.state["buffer"] = None  # {prompts, chain, labels}, grown on the training device


def collect(ctx: Any, params: dict[str, Any]) -> Any:
    from agents.trainer import Batch, autocast_context, sample_probs

    prompts = ctx.sample_prompts()
    n = prompts.shape[0]
    round_len = max(1, ctx.cfg.budget_trajectories // params["iterations"])
    beta = params["beta0"] * params["decay"] ** min(ctx.trajectories // round_len, params["iterations"] - 1)
    expert, task = ctx.expert, ctx.task

    def mix(t: int, chain: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        # chain[:, :t] is written so far; later columns are not yet filled.
        use_expert = torch.rand(n, generator=ctx.gen, device=ctx.gen.device) < beta
        if not bool(use_expert.any()):
            return student
        # The expert acts on a single prefix here; these draws are roll-in, not labels.
        a = expert.sample(task.observe(prompts, chain[:, :t]), generator=ctx.gen)
        return torch.where(use_expert, a, student)

    with autocast_context(ctx.device, ctx.cfg.precision):
        chain = ctx.policy.generate(prompts, task.horizon, temperature=0.0, step_fn=mix)
    labels = sample_probs(expert.probs_along(prompts, chain), ctx.gen)
    new = {"prompts": prompts, "chain": chain, "labels": labels}
    buf = ctx.state["buffer"]
    buf = new if buf is None else {k: torch.cat([buf[k], v]) for k, v in new.items()}
    ctx.state["buffer"] = buf
    idx = torch.randint(0, buf["prompts"].shape[0], (n,), generator=ctx.gen, device=ctx.gen.device)
    idx = idx.to(ctx.device)
    return Batch(buf["prompts"][idx], buf["chain"][idx], actions=buf["labels"][idx], trajectories=n)


def loss(logits: torch.Tensor, batch: Any, params: dict[str, Any]) -> torch.Tensor:
    return losses.mc_forward(logits, batch.actions)


register(Algorithm("dagger", "DAgger: mixture roll-in, aggregated dataset, sampled noisy labels",
                   {"beta0": 1.0, "decay": 0.5, "iterations": 10}, collect, loss, setup=setup,
                   checks={"beta0": unit_interval("beta0"), "decay": unit_interval("decay"),
                           "iterations": lambda v: None if isinstance(v, int) and v >= 1
                           else f"`iterations` must be an integer >= 1, got {v!r}"}))
