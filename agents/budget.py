"""Budget accounting, written once: what a run may spend and has spent.

Budgets are in the paper's units (DESIGN §4): **expert trajectories** (an online
update over k student rollouts spends k; BC's N-rollout dataset spends N; PPO
counts episodes) and **expert prefix-queries** (every prefix an oracle answers).
The student-prefix trainer and PPO both charge through :class:`Budget`, so the
two kinds of run stop, evaluate and report their spending by the same rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Budget:
    """Limits and spending of one run (all ranks together)."""

    max_trajectories: int
    max_queries: int | None = None
    trajectories: int = 0
    queries: int = 0

    def updates(self, per_update: int) -> int:
        """How many updates (PPO: rollouts) of ``per_update`` trajectories spend the budget;
        the last one is cut to what is left (PPO: rounded up to a whole rollout)."""
        return math.ceil(self.max_trajectories / per_update)

    def eval_every(self, every: int, per_update: int) -> int:
        """Trajectories between evaluations: ``every``, or 20 evaluations over the budget (0)."""
        return every or max(per_update, self.max_trajectories // 20)

    def batch_size(self, batch_size: int, world: int) -> int:
        """Trajectories each of ``world`` ranks collects next: ``batch_size``, cut to what is left."""
        left = self.max_trajectories - self.trajectories
        return max(1, min(batch_size, left // world)) if left > 0 else batch_size

    @property
    def out_of_queries(self) -> bool:
        """The query cap (if any) is reached: no further update may start."""
        return self.max_queries is not None and self.queries >= self.max_queries

    def charge(self, trajectories: int, queries: int) -> None:
        self.trajectories += trajectories
        self.queries += queries


__all__ = ["Budget"]
