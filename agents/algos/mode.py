"""`nail-mode`: NAIL with mode-seeking labels, the majority vote of k noisy-expert samples.

Our reconstruction of the paper's extension to **unknown corruption** (docs/design.md §2,
issue 15; the paper's public text gives no algorithm): the learner knows only that
the clean expert pi* is deterministic, the noisy expert may be a sample-only API
(``access="sample"``), and pi~(.|s) = (1 - eta) pi*(.|s) + eta c(.|s) with a hidden,
state-dependent corruption c.

The loop is NAIL's (docs/design.md §4): greedy student rollouts (tau = 0), the expert queried
at every visited prefix, log-loss on the fixed prefixes. Only the label differs:

    label(s) = majority_vote(a_1, ..., a_k),  a_j ~ pi~(.|s) i.i.d.   (k queries at s)
    loss(s)  = -log pi_theta(label(s) | s)

The name: NAIL's roll-in with a *mode-seeking* target. Reverse KL is called mode
seeking because it concentrates the student on one mode of the teacher; here the
target is that mode itself, estimated by a plurality vote and fitted with the hard
label's log-loss (as word-level distillation with the teacher's argmax, Kim & Rush
2016). Reverse KL cannot be used against a sample-only teacher (its estimators read
log pi~); a vote needs samples only. With full access ``label="argmax"`` takes the
k -> infinity limit directly: the argmax of the pi~ row (one query per prefix); a
``topk`` expert answers it as its top-1 (ties to the lowest id, so with ``ties="lowest"``).

**What it assumes.** (1) The clean expert is deterministic, so pi*(.|s) is one token
a*(s) and a hard label loses nothing. (2) The **mode condition** at every visited
state: pi~(a*(s)|s) > pi~(a|s) for every a != a*(s). Under the `corrupted` law it holds
iff eta < 1 / (1 + kappa) (:func:`~noisy_expert_gym.theory_corruption.mode_boundary`),
whatever the hidden wrong token w(s). Then the vote returns a*(s) with the exact
probability :func:`~noisy_expert_gym.theory_corruption.prob_majority_clean` ``(law, eta,
kappa, A, k, ties=...)``, which tends to 1 exponentially fast in k, and the learner sees
(up to that per-prefix failure probability) the clean expert's labels at its own
greedy prefixes. Beyond the boundary the vote tends to w(s): the learner is then
taught the corruption.

**Cost.** k queries per visited prefix (k B H per update, counted by the oracle and so
charged by the trainer's query budget, which plans k H queries per trajectory); one
trajectory per student rollout, as NAIL's.
With k = 1 the vote of one sample is the sample: `nail-mode` (k = 1) is NAIL-F's Monte
Carlo forward KL, draw for draw.
"""

from __future__ import annotations

from typing import Literal

import torch

from agents import losses
from agents.algos.base import UNUSED_ROWS, Algorithm, Batch, Context, register
from noisy_expert_gym.declarations import Declared, PositiveInt
from noisy_expert_gym.sampling import majority_vote


class NAILModeParams(Declared):
    k: PositiveInt = 5
    """Expert samples per visited prefix, >= 1; the label is their majority vote (k queries per prefix)."""
    ties: Literal["random", "lowest"] = "random"
    """Tie-breaking of the vote (and of equal argmax rows): `random` among the tied tokens, or the `lowest` id."""
    label: Literal["vote", "argmax"] = "vote"
    """`vote` (majority of k samples; sample-only experts too) or `argmax` of the pi~ row (full access; k unused)."""


def argmax_label(probs: torch.Tensor, ties: str, generator: torch.Generator) -> torch.Tensor:
    """The most probable token of each row (..., A) -> (...,): exact ties broken at random or to the lowest id."""
    if ties == "lowest":
        return probs.argmax(-1)  # the first maximum
    tied = probs == probs.amax(-1, keepdim=True)
    noise = torch.rand(probs.shape, generator=generator, device=generator.device).to(probs.device)
    return (noise * tied).argmax(-1)


def collect(ctx: Context, params: NAILModeParams) -> Batch:
    """Greedy student rollout; at each of its H prefixes the label is the vote of k expert samples."""
    prompts = ctx.sample_prompts()
    chain = ctx.rollout(prompts, 0.0)  # (B, H), greedy
    if params.label == "argmax" and ctx.expert_access == "topk":  # the top-1 answer: ties to the lowest id
        labels = ctx.topk_along(prompts, chain, 1).ids[..., 0]
    elif params.label == "argmax":
        labels = argmax_label(ctx.expert.probs_along(prompts, chain, **ctx.noise_kw), params.ties, ctx.gen)
    else:
        samples = ctx.expert.sample_along(prompts, chain, params.k, generator=ctx.gen)  # (B, H, k)
        labels = samples[..., 0] if params.k == 1 else majority_vote(
            samples, ctx.task.num_actions, ties=params.ties, generator=ctx.gen)
    return Batch(prompts, chain, actions=labels, trajectories=prompts.shape[0])


def loss(logits: torch.Tensor, batch: Batch, params: NAILModeParams) -> torch.Tensor:
    return losses.mc_forward(logits, batch.actions)  # -log pi_theta(label)


def queries_per_trajectory(params: NAILModeParams, horizon: int) -> int:
    """k samples at each of the H prefixes (one ``probs_along`` row per prefix for the argmax label)."""
    return horizon if params.label == "argmax" else params.k * horizon


def needs_probs(params: NAILModeParams) -> bool:
    """Only the argmax label reads more than samples."""
    return params.label == "argmax"


def needs_rows(params: NAILModeParams) -> bool:
    """The argmax label with ties broken at random reads the rows; with ties to the lowest id it is the top-1
    answer of a ``topk`` expert (whose ties come in increasing id)."""
    return params.label == "argmax" and params.ties == "random"


register(Algorithm("nail-mode", "NAIL, mode-seeking: greedy student rollouts, log-loss on the majority vote of "
                   "k noisy-expert samples per prefix (unknown corruption; sample-only experts)",
                   NAILModeParams, collect, loss, needs_probs=needs_probs, queries_per_trajectory=queries_per_trajectory,
                   sample_only_hint="use label='vote' (the majority of k samples per prefix)",
                   needs_rows=needs_rows, topk_queries=lambda p: False,
                   topk_hint="use ties='lowest' (the top-1 answer) or label='vote'",
                   unused=frozenset({"expert_form"}), unused_reason=UNUSED_ROWS))
