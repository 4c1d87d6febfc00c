"""Bridges to the ecosystem: Stable-Baselines3, Minari, videos.

Each bridge is its own module, imported on demand so a missing optional
dependency only matters to the user of that bridge:

- :mod:`noisy_expert_gym.bridges.sb3`: :class:`~noisy_expert_gym.bridges.sb3.SB3VecEnv`, an SB3
  ``VecEnv`` over a Gymnasium ``VectorEnv`` (the native batched env included);
- :mod:`noisy_expert_gym.bridges.minari_io`: noisy- (or clean-) expert rollouts as Minari
  datasets, and reading them back as (prompts, chains) (extra ``minari``);
- :mod:`noisy_expert_gym.bridges.video`: episodes to GIF (always) or MP4 with Gymnasium's
  ``RecordVideo`` (needs ``moviepy``, extra ``video``);
- :mod:`noisy_expert_gym.bridges.cli`: ``neg export-minari``.

Like the rest of the env layer, the bridges know no learner: the learner's side of
these bridges (SB3 features extractor, TensorBoard logging, ``neg record``) lives in
``agents``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or raise an ImportError that names the extra to install.

    Args:
        module: the module to import (e.g. ``"minari"``).
        extra: the noisy-expert-gym extra that provides it (e.g. ``"minari"``).
        what: the feature that needs it, for the message (e.g. ``"Minari export"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if e.name is not None and e.name.split(".")[0] != module.split(".")[0]:
            raise  # the module is there but one of *its* imports is broken: show that
        raise ImportError(f"{what} needs `{module.split('.')[0]}`, which is not installed: "
                          f"pip install 'noisy-expert-gym[{extra}]'") from None


__all__ = ["require"]
