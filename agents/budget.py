"""Budget accounting, written once: what a run may spend and has spent.

Budgets are in the paper's units (docs/design.md §4): **expert trajectories** (an online
update over k student rollouts spends k; BC's N-rollout dataset spends N; PPO
counts episodes) and **expert prefix-queries** (every prefix an oracle answers).
The student-prefix trainer and PPO both charge through :class:`Budget`, so the
two kinds of run stop, evaluate and report their spending by the same rules.

Both budgets are hard caps, planned before the run starts: a trajectory of the
student-prefix loop costs ``queries_per_trajectory`` queries, as its algorithm declares
(``Algorithm.queries_per_trajectory``: H, one query per visited prefix, by default; k H
for k expert samples per prefix), so the run can afford
``min(budget_trajectories, budget_queries // queries_per_trajectory)``
trajectories (:attr:`Budget.affordable`); the updates are planned to spend exactly that
(the last batch cut to what is left), and :meth:`Budget.charge` refuses to record a
spend beyond either cap (an algorithm that queried more than it declared).
"""

from __future__ import annotations

from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """A batch spent more than the budget allowed: an algorithm broke the loop's cost contract."""


@dataclass
class Budget:
    """Limits and spending of one run (all ranks together).

    Attributes:
        max_trajectories: the trajectory budget.
        max_queries: the query cap (None: none).
        queries_per_trajectory: what one trajectory costs in queries (the algorithm's
            declaration: H for one query per visited prefix, k H for k samples per prefix; 0
            for PPO).
    """

    max_trajectories: int
    max_queries: int | None = None
    queries_per_trajectory: int = 0
    trajectories: int = 0
    queries: int = 0

    def __post_init__(self) -> None:
        if self.affordable < 1:
            raise ValueError(f"budget_queries={self.max_queries} buys no trajectory: each costs "
                             f"{self.queries_per_trajectory} queries; raise budget_queries "
                             f"to at least {self.queries_per_trajectory}")

    @property
    def affordable(self) -> int:
        """Trajectories the run may spend in all: the trajectory budget, or fewer if the
        query cap runs out first."""
        n = self.max_trajectories
        if self.max_queries is not None and self.queries_per_trajectory > 0:
            n = min(n, self.max_queries // self.queries_per_trajectory)
        return n

    @property
    def left(self) -> int:
        """Trajectories still affordable."""
        return max(0, self.affordable - self.trajectories)

    def updates(self, per_update: int, world: int = 1) -> int:
        """How many updates of ``per_update`` trajectories (all ranks) spend :attr:`affordable`
        exactly; the last one is cut to what is left. With ``world`` ranks a last remainder
        smaller than ``world`` (one trajectory for some ranks, none for others) is left unspent."""
        full, rest = divmod(self.affordable, per_update)
        return full + (rest >= world)

    def eval_every(self, every: int, per_update: int) -> int:
        """Trajectories between evaluations: ``every``, or 20 evaluations over the budget (0)."""
        return every or max(per_update, self.affordable // 20)

    def share(self, batch_size: int, world: int = 1, rank: int = 0) -> tuple[int, int]:
        """``(this rank's batch, all ranks' total)`` of the next update: ``batch_size`` per rank,
        the total cut to what is left and split as evenly as it goes (earlier ranks take the
        remainder); ``(0, 0)`` once nothing is left for every rank."""
        total = min(batch_size * world, self.left)
        if total < world:
            return 0, 0
        return total // world + (rank < total % world), total

    @property
    def out_of_queries(self) -> bool:
        """The query cap (if any) is reached."""
        return self.max_queries is not None and self.queries >= self.max_queries

    def charge(self, trajectories: int, queries: int) -> None:
        """Record a spend; raise :class:`BudgetExceeded` rather than record one beyond a cap."""
        t, q = self.trajectories + trajectories, self.queries + queries
        if t > self.max_trajectories or (self.max_queries is not None and q > self.max_queries):
            raise BudgetExceeded(
                f"a batch spent {trajectories} trajectories and {queries} queries, beyond the budget "
                f"({t:,} of {self.max_trajectories:,} trajectories, {q:,} of "
                f"{self.max_queries if self.max_queries is not None else 'unlimited'} queries): the "
                f"algorithm queried more than {self.queries_per_trajectory} per trajectory, which the "
                "trainer's plan assumes")
        self.trajectories, self.queries = t, q


__all__ = ["Budget", "BudgetExceeded"]
