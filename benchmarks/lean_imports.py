"""The library's torch-only modules on a machine that has torch and numpy and nothing else.

The GPU machines this project borrows run an image with torch and numpy but without gymnasium
or pydantic, and nothing can be installed there. The speed benchmarks need only torch-only
modules (``agents.policy``, ``agents.losses``, ``agents.device``, ``noisy_expert_gym.oracle``,
``noisy_expert_gym.tasks.modadd``), but importing any of them first runs its packages'
``__init__``, and those import gymnasium (env registration) and the trainer (pydantic).

:func:`skip_package_inits` creates those packages from their specs without running their
``__init__``; their submodules then import as usual. It is what ``python benchmarks/train_speed.py``
and ``python benchmarks/gpu_speed.py`` call first, and nothing else: run as modules
(``python -m benchmarks.gpu_speed``) they import the packages whole.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The packages whose ``__init__`` is skipped, parents first.
PACKAGES = ("agents", "noisy_expert_gym", "noisy_expert_gym.tasks")


def skip_package_inits() -> None:
    """Make :data:`PACKAGES` importable packages whose ``__init__`` never runs.

    A package already imported is left as it is. Afterwards the packages hold only what is
    imported from them by submodule (``from agents import losses``), not their ``__init__``'s
    names (``from agents import train`` raises ImportError).
    """
    for name in PACKAGES:
        if name in sys.modules:
            continue
        folder = ROOT.joinpath(*name.split("."))
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        assert spec is not None  # a path with a .py suffix always gives a spec
        sys.modules[name] = importlib.util.module_from_spec(spec)  # created, not executed
