"""The one evaluation of a student, for any :class:`~agents.contracts.Policy`.

On held-out prompts (drawn from ``TrainConfig.eval_seed``, never trained on) it
reports the clean validation loss (the student's cross-entropy on the clean
expert's chains) and the task's clean metrics of the student's greedy and sampled
rollouts (``greedy_full_exact``, ``greedy_final_exact``,
``greedy_correct_prefix_len``, ``greedy_num_errors``, ``sampled_*``). The
student-prefix trainer and PPO both evaluate through :class:`HeldOut`, so their
curves are comparable row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from agents.contracts import Policy
from agents.device import autocast_context
from noisy_expert_gym.contracts import TaskCore
from noisy_expert_gym.problems import Problem, make_problem

if TYPE_CHECKING:  # the algorithms' plumbing never imports the config (which imports the registry)
    from agents.config import TrainConfig


@torch.no_grad()
def evaluate(policy: Policy, task: TaskCore, prompts: torch.Tensor, clean_chain: torch.Tensor,
             device: torch.device, precision: str, seed: int, chunk: int = 1024) -> dict[str, float]:
    """Clean validation loss and greedy / sampled rollout metrics on held-out prompts.

    Args:
        policy: the student (its train / eval mode is restored afterwards).
        task: the task core the prompts come from.
        prompts: ``(N, P)`` held-out prompts; ``clean_chain``: their clean chains ``(N, H)``.
        device: where the policy runs; ``precision``: ``auto``, ``bf16`` or ``fp32`` autocast.
        seed: seeds the sampled rollouts (the same draws at every evaluation).
        chunk: prompts per forward pass.
    """
    was_training = policy.training
    policy.eval()
    valid = task.valid_along(prompts, clean_chain).float()
    losses, greedy, sampled = [], [], []
    gen = torch.Generator(device=device).manual_seed(seed)
    for i in range(0, prompts.shape[0], chunk):
        p, c, v = prompts[i : i + chunk], clean_chain[i : i + chunk], valid[i : i + chunk]
        with autocast_context(device, precision):
            logits = policy.chain_logits(p, c)  # (B, H, A)
            g = policy.generate(p, task.horizon, temperature=0.0)
            s = policy.generate(p, task.horizon, temperature=1.0, generator=gen)
        ce = F.cross_entropy(logits.float().to(c.device).flatten(0, 1), c.flatten(), reduction="none").view_as(v)
        losses.append(((ce * v).sum(1) / v.sum(1)).cpu())
        greedy.append({k: x.float().cpu() for k, x in task.metrics(p, g).items()})
        sampled.append({k: x.float().cpu() for k, x in task.metrics(p, s).items()})
    out = {"val_loss": float(torch.cat(losses).mean())}
    for name, rows in (("greedy", greedy), ("sampled", sampled)):
        for k in rows[0]:
            out[f"{name}_{k}"] = float(torch.cat([r[k] for r in rows]).mean())
    policy.train(was_training)
    return out


@dataclass(frozen=True)
class HeldOut:
    """A run's held-out evaluation prompts and their clean chains, on the training device."""

    task: TaskCore
    prompts: torch.Tensor  # (N, P)
    clean: torch.Tensor  # (N, H)
    device: torch.device
    seed: int  # of the sampled rollouts

    @classmethod
    def for_run(cls, cfg: TrainConfig, problem: Problem, device: torch.device) -> HeldOut:
        """``cfg.eval_prompts`` prompts from ``cfg.eval_seed``, of the training problem or, with
        ``cfg.eval_env_kwargs`` (e.g. ``{"split": "test"}`` on GSM-8K), of that variant of it."""
        task = problem.task
        if cfg.eval_env_kwargs:
            task = make_problem(cfg.env_id, **{**cfg.env_kwargs, **cfg.eval_env_kwargs}).task
            shape, want = (task.obs_len, task.vocab_size, task.num_actions), (
                problem.task.obs_len, problem.task.vocab_size, problem.task.num_actions)
            if shape != want:
                raise ValueError("`eval_env_kwargs` must keep the observation shape and vocabulary of the "
                                 f"training env (obs_len {want[0]}, vocab {want[1]}); on GSM-8K pass the "
                                 "same max_prompt_tokens and max_new_tokens")
        prompts = task.sample_prompts(torch.Generator(device=device).manual_seed(cfg.eval_seed), cfg.eval_prompts,
                                      device=device)
        return cls(task, prompts, task.clean_chains(prompts), device, cfg.eval_seed + 1)

    def evaluate(self, policy: Policy, precision: str) -> dict[str, float]:
        return evaluate(policy, self.task, self.prompts, self.clean, self.device, precision, self.seed)


__all__ = ["HeldOut", "evaluate"]
