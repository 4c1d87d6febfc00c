"""What a training run returns (and what the scoreboards store)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class RunResult:
    """The outcome of one training run.

    ``curve`` has one row per evaluation: ``{"update", "trajectories",
    "queries", "wall_time", <metric>: value, ...}`` where the metrics are those
    of ``final_metrics`` (``val_loss``, ``greedy_full_exact``,
    ``greedy_final_exact``, ``greedy_correct_prefix_len``, ``greedy_num_errors``,
    ``sampled_full_exact``, ``sampled_final_exact``, ..., ``train_loss``). Budgets are in the paper's units: expert trajectories and
    expert prefix-queries spent.
    """

    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    config: dict[str, Any]
    seed: int
    final_metrics: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)
    trajectories: int = 0
    queries: int = 0
    wall_time: float = 0.0
    device: str = "cpu"
    uses_clean_expert: bool = False
    policy: Any = field(default=None, repr=False, compare=False)
    """The trained policy (in memory only; not serialised)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (the policy is left out)."""
        d = asdict(replace(self, policy=None))
        d.pop("policy")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        return cls(**{k: v for k, v in d.items() if k != "policy"})
