"""Imitation agents: transformer policies, losses, the shared trainer and the algorithm registry.

>>> from agents import train
>>> res = train(algo="nail-f", env_id="NoisyModAdd-v0", env_kwargs={"eta": 0.2},
...             budget_trajectories=200_000, seed=0)  # doctest: +SKIP
>>> res.final_metrics["greedy_full_exact"]  # doctest: +SKIP
"""

from agents.algos import ALGORITHMS, get_algorithm
from agents.config import TrainConfig
from agents.result import RunResult
from agents.trainer import train

__all__ = ["ALGORITHMS", "RunResult", "TrainConfig", "get_algorithm", "train"]
