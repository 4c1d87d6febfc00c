"""The algorithm registry. Each algorithm is a short file over the shared trainer loop.

>>> from agents.algos import ALGORITHMS, get_algorithm
>>> sorted(ALGORITHMS)  # doctest: +SKIP
['bc', 'bc-clean', 'dagger', 'gkd', 'nail-f', 'nail-mixed', 'nail-r', 'opd-f', 'opd-r']
"""

from agents.algos.registry import ALGORITHMS, Algorithm, check_params, get_algorithm, resolve_params

# Importing the files registers the algorithms.
from agents.algos import bc, dagger, gkd, online  # noqa: E402,F401  isort: skip
from agents.algos import ppo  # noqa: E402,F401  isort: skip

__all__ = ["ALGORITHMS", "Algorithm", "check_params", "get_algorithm", "resolve_params"]
