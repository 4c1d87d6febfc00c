"""Imitation agents: student policies, losses, the shared trainer and the algorithm registry.

>>> from agents import train
>>> res = train(algo="nail-f", env_id="NoisyModAdd-v0", env_kwargs={"eta": 0.2},
...             budget_trajectories=200_000, seed=0)  # doctest: +SKIP
>>> res.final_metrics["greedy_full_exact"]  # doctest: +SKIP

Names are imported on first use (``import agents`` alone loads neither torch nor the algorithms).

Layout (imports point down this list, and never to ``scoreboards``):

- :mod:`agents.trainer`: :func:`train`, the one student-prefix loop (collect, query, update);
- :mod:`agents.algos`: the registry; one short file per algorithm over the contract
  :mod:`agents.algos.base` (``Batch``, ``Context``, ``RunKit``, ``Algorithm``);
- shared plumbing, written once: :mod:`agents.budget`, :mod:`agents.evaluation`, :mod:`agents.checkpoint`,
  :mod:`agents.monitor` (progress bar, TensorBoard), :mod:`agents.device`;
- :mod:`agents.config` (``TrainConfig``, declared), which checks algorithm names and
  parameters in :mod:`agents.registry` (the plain-dict registry the algorithms fill, and your own
  algorithms as plugins: ``path/to/file.py:Name``, ``module:Name``);
- :mod:`agents.examples`: a plugin algorithm, the README's walk-through;
- students: :mod:`agents.contracts` (the ``Policy`` protocol), :mod:`agents.policies`
  (preset -> policy), :mod:`agents.policy` (small transformer), :mod:`agents.hf_policy`
  (Hugging Face causal LM), :mod:`agents.sb3_features` (PPO's token features);
- :mod:`agents.losses` (pure functions of tensors), :mod:`agents.expert_rows` (the expert's
  rows, dense or structured, as the learners read them);
- command line: :mod:`agents.cli` (``neg train``), :mod:`agents.record` (``neg record``).
"""

import importlib
from typing import Any

from agents import registry

# The algorithms (and torch) are imported on first use: by a look-up in the registry, or by one of
# the names below. So `neg --help` and the configuration's declarations load without torch.
registry.set_loader(lambda: importlib.import_module("agents.algos"))

_EXPORTS = {"ALGORITHMS": "agents.algos", "Algorithm": "agents.algos", "Batch": "agents.algos",
            "Context": "agents.algos", "get_algorithm": "agents.algos", "TrainConfig": "agents.config",
            "Policy": "agents.contracts", "RunResult": "agents.result", "train": "agents.trainer"}

__all__ = ["ALGORITHMS", "Algorithm", "Batch", "Context", "Policy", "RunResult", "TrainConfig", "get_algorithm",
           "train"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    try:  # a submodule: `import agents; agents.losses`
        return importlib.import_module(f"agents.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"agents.{name}":
            raise
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
