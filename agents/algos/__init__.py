"""The algorithm registry. Each algorithm is a short file over the shared trainer loop.

The files import only the contract (:mod:`agents.algos.base`: ``Batch``,
``Context``, the ``Algorithm`` record, declared-parameter types) and the pure
losses; the trainer imports them, never the reverse.

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
    check_expert_access,
    check_params,
    get_algorithm,
    resolve_params,
    sample_algorithms,
)

# Importing the files registers the algorithms.
from agents.algos import bc, dagger, gkd, mode, online  # noqa: F401  isort: skip
from agents.algos import ppo  # noqa: F401  isort: skip

__all__ = ["ALGORITHMS", "AccessModeError", "Algorithm", "Batch", "Context", "check_expert_access", "check_params",
           "get_algorithm", "resolve_params", "sample_algorithms"]
