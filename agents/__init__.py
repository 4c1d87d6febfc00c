"""Imitation agents: student policies, losses, the shared trainer and the algorithm registry.

>>> from agents import train
>>> res = train(algo="nail-f", env_id="NoisyModAdd-v0", env_kwargs={"eta": 0.2},
...             budget_trajectories=200_000, seed=0)  # doctest: +SKIP
>>> res.final_metrics["greedy_full_exact"]  # doctest: +SKIP

Layout (imports point down this list, and never to ``scoreboards``):

- :mod:`agents.trainer`: :func:`train`, the one student-prefix loop (collect, query, update);
- :mod:`agents.algos`: the registry; one short file per algorithm over the contract
  :mod:`agents.algos.base` (``Batch``, ``Context``, ``RunKit``, ``Algorithm``);
- shared plumbing, written once: :mod:`agents.budget`, :mod:`agents.evaluation`, :mod:`agents.checkpoint`,
  :mod:`agents.monitor` (progress bar, TensorBoard), :mod:`agents.device`;
- :mod:`agents.config` (``TrainConfig``, declared), which checks algorithm names and
  parameters in :mod:`agents.registry` (the plain-dict registry the algorithms fill);
- students: :mod:`agents.contracts` (the ``Policy`` protocol), :mod:`agents.policies`
  (preset -> policy), :mod:`agents.policy` (small transformer), :mod:`agents.hf_policy`
  (Hugging Face causal LM), :mod:`agents.sb3_features` (PPO's token features);
- :mod:`agents.losses` (pure functions of tensors), :mod:`agents.expert_rows` (the expert's
  rows, dense or structured, as the learners read them);
- command line: :mod:`agents.cli` (``neg train``), :mod:`agents.record` (``neg record``).
"""

from agents.algos import ALGORITHMS, Algorithm, Batch, Context, get_algorithm
from agents.config import TrainConfig
from agents.contracts import Policy
from agents.result import RunResult
from agents.trainer import train

__all__ = ["ALGORITHMS", "Algorithm", "Batch", "Context", "Policy", "RunResult", "TrainConfig", "get_algorithm",
           "train"]
