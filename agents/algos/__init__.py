"""The algorithm registry. Each algorithm is a short file over the shared trainer loop.

What an algorithm file imports of ``agents`` (``tests/agents/test_layers.py`` checks it):
its contract, :mod:`agents.algos.base` (``Batch``, ``Context``, ``RunKit``, the
``Algorithm`` record, ``register``), and what the contract is written in: the pure
losses (:mod:`agents.losses`), the expert's rows (:mod:`agents.expert_rows`), the
policy protocol (:mod:`agents.contracts`) and, in annotations only, the records it
names (:mod:`agents.config`, :mod:`agents.result`); ``ppo`` also its SB3 features
extractor (:mod:`agents.sb3_features`). Never the trainer, another algorithm or the
shared plumbing (budget, checkpoints, evaluation, monitor, device): the trainer
imports the algorithms and hands them that (``Context``; ``RunKit`` to an algorithm
that runs its own loop). Of the layer below, ``noisy_expert_gym``, anything.

>>> from agents.algos import ALGORITHMS, get_algorithm
>>> sorted(ALGORITHMS)  # doctest: +SKIP
['bc', 'bc-clean', 'dagger', 'gkd', 'nail-f', 'nail-mixed', 'nail-mode', 'nail-r', 'opd-f', 'opd-r', 'ppo']
"""

from agents.algos.base import (
    ALGORITHMS,
    AccessModeError,
    Algorithm,
    Batch,
    Context,
    access_needed,
    as_algorithm,
    check_expert_access,
    get_algorithm,
    sample_algorithms,
)
from agents.registry import check_params, resolve_params

# Importing the files registers the algorithms.
from agents.algos import bc, dagger, gkd, mode, online  # noqa: F401  isort: skip
from agents.algos import ppo  # noqa: F401  isort: skip

__all__ = ["ALGORITHMS", "AccessModeError", "Algorithm", "Batch", "Context", "access_needed", "as_algorithm",
           "check_expert_access", "check_params", "get_algorithm", "resolve_params", "sample_algorithms"]
