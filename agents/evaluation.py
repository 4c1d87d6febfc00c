"""The one evaluation of a student, for any :class:`~agents.contracts.Policy`.

On held-out prompts it reports the clean validation loss (the student's
cross-entropy on the clean expert's chains) and the task's clean metrics of the
student's greedy and sampled rollouts (``greedy_full_exact``, ``greedy_final_exact``,
``greedy_correct_prefix_len``, ``greedy_num_errors``, ``sampled_*``) and, where the
noisy expert's distribution is small enough to read along a chain, how often the greedy
student writes a mode of the noisy expert (``greedy_expert_mode_rate``,
``greedy_expert_mode_full``: :func:`expert_mode_metrics`). The
student-prefix trainer and PPO both evaluate through :class:`HeldOut`, so their
curves are comparable row for row.

Which prompts (``TrainConfig.eval_mode``): ``sample`` draws ``eval_prompts`` of them
with replacement from ``eval_seed`` (never trained on); ``all`` takes every problem
of the evaluation task once, in order (``eval_prompts``, if given, must be that number;
the paper's greedy evaluation on all 1,319 GSM-8K test problems:
``eval_env_kwargs = {"split": "test"}``). ``eval_sampled = False`` leaves out the
sampled rollouts (the paper evaluates greedy decoding only).

Which text the validation loss is on (``TrainConfig.val_env_kwargs``): by default
the evaluation task's own clean chains. With ``val_env_kwargs``, those of the same
problems in a variant of the evaluation task, after the same prompts -- e.g.
``{"answer_format": "####", "strip_annotations": false}`` gives GSM-8K's raw answers
(calculator annotations, ``#### n``) then the stop token, the text the paper's
authors compute their evaluation loss on while the student is prompted for
``\\boxed{}``. Problems are matched by their position in the data file (and
question); a problem whose raw answer does not fit ``max_new_tokens`` there is left
out of the loss (``val_problems`` reports how many count). Their text differs from
ours by one token: in their chat-format text the end-of-turn token is followed by
a newline that also counts in their mean; ours ends at the stop token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.contracts import Policy
from agents.device import autocast_context
from noisy_expert_gym.contracts import TaskCore
from noisy_expert_gym.problems import Problem, make_problem

if TYPE_CHECKING:
    from agents.config import TrainConfig

#: Largest H x A for which the evaluation reads the noisy expert's rows along the greedy chains
#: (the mode metrics): every chain task qualifies; a character GSM-8K task (H = 1,280) does not.
MODE_METRICS_MAX_ROW = 1 << 16

#: Logit entries (rows x H x A) per teacher-forced pass of the validation loss: a 262k-token
#: vocabulary at H = 1,024 gets two rows per pass, a character task a whole chunk.
LOGITS_PER_PASS = 1 << 29


@torch.no_grad()
def evaluate(policy: Policy, task: TaskCore, prompts: torch.Tensor, clean_chain: torch.Tensor,
             device: torch.device, precision: str, seed: int, chunk: int = 1024, sampled: bool = True,
             val_chain: torch.Tensor | None = None, val_rows: torch.Tensor | None = None,
             expert: Any = None) -> dict[str, float]:
    """Clean validation loss and greedy (and sampled) rollout metrics on held-out prompts.

    Args:
        policy: the student (its train / eval mode is restored afterwards).
        task: the task core the prompts come from.
        prompts: ``(N, P)`` held-out prompts; ``clean_chain``: their clean chains ``(N, H)``.
        device: where the policy runs; ``precision``: ``auto``, ``bf16`` or ``fp32`` autocast.
        seed: seeds the sampled rollouts (the same draws at every evaluation).
        chunk: prompts per rollout batch.
        sampled: also roll out at temperature 1 (``sampled_*`` metrics).
        val_chain: ``(N, H)`` chains the validation loss is computed on instead of ``clean_chain``;
            ``val_rows``: ``(N,)`` bool, the rows that have one (default all).
        expert: the noisy expert (an :class:`~noisy_expert_gym.oracle.Expert`); given, the greedy
            rollouts' :func:`expert_mode_metrics` are added (``greedy_expert_mode_*``). Read as a
            referee: no query is counted on it and its access mode is not consulted.
    """
    was_training = policy.training
    policy.eval()
    v_chain = clean_chain if val_chain is None else val_chain
    v_rows = torch.ones(prompts.shape[0], dtype=torch.bool) if val_rows is None else val_rows.cpu()
    valid = task.valid_along(prompts, v_chain).float()
    per_pass = max(1, LOGITS_PER_PASS // max(1, v_chain.shape[1] * task.num_actions))
    losses, greedy, sampled_rows = [], [], []
    gen = torch.Generator(device=device).manual_seed(seed)
    for i in range(0, prompts.shape[0], chunk):
        p = prompts[i : i + chunk]
        for j in range(i, i + p.shape[0], per_pass):  # the teacher-forced pass, in slices that fit
            c, v = v_chain[j : min(j + per_pass, i + chunk)], valid[j : min(j + per_pass, i + chunk)]
            with autocast_context(device, precision):
                logits = policy.chain_logits(prompts[j : j + c.shape[0]], c)  # (b, H, A)
            ce = F.cross_entropy(logits.float().to(c.device).flatten(0, 1), c.flatten(),
                                 reduction="none").view_as(v)
            losses.append(((ce * v).sum(1) / v.sum(1).clamp_min(1.0)).cpu())
        with autocast_context(device, precision):
            g = policy.generate(p, task.horizon, temperature=0.0)
            s = policy.generate(p, task.horizon, temperature=1.0, generator=gen) if sampled else None
        greedy.append({k: x.float().cpu() for k, x in task.metrics(p, g).items()})
        if expert is not None:
            greedy[-1].update(expert_mode_metrics(expert, p, g))
        if s is not None:
            sampled_rows.append({k: x.float().cpu() for k, x in task.metrics(p, s).items()})
    loss = torch.cat(losses)[v_rows]
    out = {"val_loss": float(loss.mean()) if loss.numel() else float("nan")}
    if val_rows is not None:
        out["val_problems"] = float(loss.numel())
    for name, rows in (("greedy", greedy), ("sampled", sampled_rows)):
        for k in rows[0] if rows else ():
            out[f"{name}_{k}"] = float(torch.cat([r[k] for r in rows]).mean())
    policy.train(was_training)
    return out


def expert_mode_metrics(expert: Any, prompts: torch.Tensor, chain: torch.Tensor) -> dict[str, torch.Tensor]:
    """How often `chain` writes a mode of the noisy expert on its own prefixes, per episode.

    ``expert_mode_rate`` ``(N,)``: the fraction of positions t whose token has the largest
    probability under the noisy expert's distribution at ``chain[:, :t]`` (ties: any of the
    largest counts); ``expert_mode_full`` ``(N,)``: 1.0 where every position does. Where the
    mode condition holds (docs/design.md §2.3: the clean token is the noisy expert's unique mode, e.g.
    the mixture law, or the absorbing law before the chain's first error), the mode is the
    clean token; under the `biased` law at eta > 1/2 it is the one wrong token the noise
    favours, so a learner that converges to the noisy expert's mode chain scores
    ``expert_mode_full`` near 1 and ``full_exact`` near 0 (the stress case). After an
    absorbing-law error the expert is uniform and every token is a mode.

    Args:
        expert: an :class:`~noisy_expert_gym.oracle.Expert` over the task of `prompts`.
        prompts: ``(N, P)``; chain: ``(N, H)`` complete chains.
    """
    probs = torch.as_tensor(expert._probs_along(prompts, chain), device=chain.device).float()  # (N, H, A)
    picked = probs.gather(2, chain.long().unsqueeze(2)).squeeze(2)
    is_mode = picked >= probs.amax(2) - 1e-6
    return {"expert_mode_rate": is_mode.float().mean(1).cpu(), "expert_mode_full": is_mode.all(1).float().cpu()}


def mode_referee(problem: Problem) -> Any:
    """The problem's noisy expert as the evaluation's mode referee, or None where its rows are too
    large to read along every chain (H x A > :data:`MODE_METRICS_MAX_ROW`) or it is not a
    closed-form :class:`~noisy_expert_gym.oracle.Expert` (e.g. a language-model teacher)."""
    from noisy_expert_gym.oracle import Expert

    task = problem.task
    if not isinstance(problem.expert, Expert) or task.horizon * task.num_actions > MODE_METRICS_MAX_ROW:
        return None
    return problem.expert.with_rng(None)


@dataclass(frozen=True)
class HeldOut:
    """A run's held-out evaluation prompts and their clean chains, on the training device."""

    task: TaskCore
    prompts: torch.Tensor  # (N, P)
    clean: torch.Tensor  # (N, H)
    device: torch.device
    seed: int  # of the sampled rollouts
    sampled: bool = True
    chunk: int = 1024
    val_chain: torch.Tensor | None = None  # (N, H): the validation loss's text, when not `clean`
    val_rows: torch.Tensor | None = None  # (N,) bool: the rows that have one
    expert: Any = None  # the noisy expert as mode referee (expert_mode_metrics), or None

    @classmethod
    def for_run(cls, cfg: TrainConfig, problem: Problem, device: torch.device) -> HeldOut:
        """The evaluation prompts of ``cfg.eval_mode`` (``cfg.eval_prompts`` of them from ``cfg.eval_seed``, or
        every problem), of the training problem or, with ``cfg.eval_env_kwargs`` (e.g. ``{"split": "test"}``
        on GSM-8K), of that variant of it; the validation text of ``cfg.val_env_kwargs``."""
        task = problem.task
        kwargs = {**cfg.env_kwargs, **cfg.eval_env_kwargs}
        if cfg.eval_env_kwargs:
            task = make_problem(cfg.env_id, **kwargs).task
            check_shapes(task, problem.task, "eval_env_kwargs")
        if cfg.eval_mode == "all":
            if not hasattr(task, "all_prompts"):
                raise ValueError(f"eval_mode='all' needs a task with a finite list of problems (all_prompts), "
                                 f"such as GSM-8K; {type(task).__name__} draws its prompts: use 'sample'")
            prompts = torch.as_tensor(task.all_prompts(), device=device)
            default = type(cfg).model_fields["eval_prompts"].default
            if cfg.eval_prompts not in (default, prompts.shape[0]):  # would be ignored: say so
                raise ValueError(f"eval_prompts={cfg.eval_prompts} has no effect with eval_mode='all', which "
                                 f"evaluates every one of the {prompts.shape[0]} problems; drop eval_prompts (or "
                                 f"give {prompts.shape[0]}), or use eval_mode='sample' to draw eval_prompts")
        else:
            prompts = task.sample_prompts(torch.Generator(device=device).manual_seed(cfg.eval_seed),
                                          cfg.eval_prompts, device=device)
        val_chain = val_rows = None
        if cfg.val_env_kwargs:
            val_task = make_problem(cfg.env_id, **{**kwargs, **cfg.val_env_kwargs}).task
            val_chain, val_rows = matching_chains(task, val_task, prompts)
        referee = mode_referee(problem) if task is problem.task else None
        return cls(task, prompts, task.clean_chains(prompts), device, cfg.eval_seed + 1, cfg.eval_sampled,
                   cfg.eval_batch_size, val_chain, val_rows, referee)

    def evaluate(self, policy: Policy, precision: str) -> dict[str, float]:
        return evaluate(policy, self.task, self.prompts, self.clean, self.device, precision, self.seed,
                        chunk=self.chunk, sampled=self.sampled, val_chain=self.val_chain, val_rows=self.val_rows,
                        expert=self.expert)


def check_shapes(task: TaskCore, train_task: TaskCore, what: str) -> None:
    """Raise unless `task` has the training task's observation shape and vocabulary."""
    shape = (task.obs_len, task.vocab_size, task.num_actions)
    want = (train_task.obs_len, train_task.vocab_size, train_task.num_actions)
    if shape != want:
        raise ValueError(f"`{what}` must keep the observation shape and vocabulary of the training env "
                         f"(obs_len {want[0]}, vocab {want[1]}); on GSM-8K pass the same max_prompt_tokens and "
                         "max_new_tokens")


def matching_chains(task: Any, val_task: Any, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``val_task``'s clean chains of the problems behind `prompts` (prompts of `task`), ``(N, H)``, and
    which rows have one ``(N,)``: problems are matched by position in the data and question.

    Raises:
        ValueError: the tasks have no problem lists, differ in horizon or actions, or share no problem.
    """
    if not (hasattr(task, "problems") and hasattr(val_task, "problems")):
        raise ValueError("`val_env_kwargs` needs tasks with a list of problems (GSM-8K)")
    if (val_task.horizon, val_task.num_actions) != (task.horizon, task.num_actions):
        raise ValueError(f"`val_env_kwargs` must keep max_new_tokens and the vocabulary (horizon {task.horizon}, "
                         f"{task.num_actions} actions); got {val_task.horizon}, {val_task.num_actions}")
    where = {(p.index, p.question): j for j, p in enumerate(val_task.problems)}
    idx = task.problem_index(prompts)
    j = np.array([where.get((task.problems[i].index, task.problems[i].question), -1) for i in idx], np.int64)
    rows = torch.as_tensor(j >= 0)
    if not bool(rows.any()):
        raise ValueError("no evaluation problem has a validation text under `val_env_kwargs` (different data, "
                         "or every raw answer longer than max_new_tokens)")
    chains = val_task.clean_chains(val_task.prompts_for(np.maximum(j, 0)))
    chains = torch.as_tensor(chains, device=prompts.device)
    eos = torch.as_tensor(task.eos_token, device=prompts.device)
    return torch.where(rows.to(prompts.device)[:, None], chains, eos), rows


__all__ = ["LOGITS_PER_PASS", "MODE_METRICS_MAX_ROW", "HeldOut", "check_shapes", "evaluate", "expert_mode_metrics",
           "matching_chains", "mode_referee"]
