"""An algorithm of your own, as a plugin: behaviour cloning on the noisy expert's mode.

The README's walk-through ("Write your own algorithm"): one class that follows the Algorithm
contract (:mod:`agents.algos.base`; docs/design.md §4.1) over the shipped pieces -- the
trainer's loop and its :class:`~agents.algos.base.Context` (prompts, the expert), the pure
losses and the student -- and nothing else:

- ``params``: a :class:`~noisy_expert_gym.declarations.Declared` model of its parameters
  (types, defaults, constraints, one-line docstrings: validated as the built-ins' are);
- ``collect(ctx, params) -> Batch``: which prefixes to learn on, and the expert's answers there;
- ``loss(logits, batch, params) -> (B, H)``: the per-position loss on them.

BC learns the token the noisy expert *wrote* at each prefix of its rollouts, noise included.
This learns the token the expert's row *ranks first* there -- under the mode condition
(docs/design.md §2.3) the clean token -- and skips the prefixes where the row is flat and names
no token (under the ``absorbing`` law, every prefix after the expert's first slip). Reading the
rows needs full access (``needs_probs``); on a board, the rows of the chains the expert has
just rolled out cost no extra trajectory::

    neg train --algo agents/examples/mode_bc.py:ModeBC --algo-kw margin=0.05 --env-kw m=5
    neg train --algo agents.examples.mode_bc:ModeBC ...     # the same, by module
"""

from __future__ import annotations

import torch

from agents import losses
from agents.algos.base import Batch, Context
from noisy_expert_gym.declarations import Declared, UnitInterval


class ModeBCParams(Declared):
    margin: UnitInterval = 0.05
    """Skip a prefix whose expert row is this close to flat (its top probability minus 1/A below it)."""


class ModeBC:
    """BC on the noisy expert's rollouts, labelled with the mode of its row at each prefix."""

    params = ModeBCParams
    needs_probs = True  # it reads the expert's rows: full-access experts and boards only

    @staticmethod
    def collect(ctx: Context, params: ModeBCParams) -> Batch:
        prompts = ctx.sample_prompts()  # (B, P): fresh training prompts (on a board: the harness's)
        n, h = prompts.shape[0], ctx.task.horizon
        chain = ctx.expert.rollout(prompts, generator=ctx.gen)  # (B, H): the noisy expert's own chains
        top, label = ctx.expert.probs_along(prompts, chain).max(-1)  # (B, H): its rows' mode at each prefix
        flat = top - 1.0 / ctx.task.num_actions < params.margin  # rows that name no token
        # One trajectory per rollout, one query per prefix (its rows come with it, as on a board).
        return Batch(prompts, chain, actions=label.masked_fill(flat, -1), trajectories=n, queries=n * h)

    @staticmethod
    def loss(logits: torch.Tensor, batch: Batch, params: ModeBCParams) -> torch.Tensor:
        named = batch.actions >= 0  # (B, H)
        return losses.mc_forward(logits, batch.actions.clamp_min(0)) * named  # -log pi_theta(mode)
