"""Checkpoint I/O, written once: checkpoints, the progress row, where to find them.

Every file is written atomically (:func:`noisy_expert_gym.utils.atomic_path`), so a
run killed mid-write leaves the previous file, never a half-written one.

- ``<checkpoint_dir>/last.pt`` (:data:`CHECKPOINT_NAME`): the student-prefix
  trainer's checkpoint (model, optimizer, schedule, every random stream the run
  draws from (:func:`rng_state`), algorithm state, curve, spent budget, the run's
  TrainConfig and its identity key);
- ``<checkpoint_dir>/ppo.zip`` + ``ppo.json`` (:data:`PPO_CHECKPOINT_NAME`): PPO's
  SB3 model and its TrainConfig;
- ``<checkpoint_dir>/progress.json`` (:data:`PROGRESS_NAME`): the latest evaluation
  row, for sweep drivers that watch runs in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from noisy_expert_gym.oracle import OracleBase
from noisy_expert_gym.utils import atomic_path, write_atomic


class RunConfig(Protocol):
    """What a checkpoint reads of an :class:`agents.config.TrainConfig` (not imported: the
    configuration checks its preset in :mod:`agents.policies`, which loads checkpoints)."""

    def identity(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]: ...


CHECKPOINT_NAME = "last.pt"
PPO_CHECKPOINT_NAME = "ppo.zip"
PROGRESS_NAME = "progress.json"


def save_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """``torch.save(payload)`` to `path`, atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str) -> dict[str, Any]:
    """A checkpoint's payload (on the CPU); a corrupt file is a ValueError that says what to do."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001  truncated file, wrong format, ...
        raise ValueError(f"checkpoint `{path}` is corrupt or unreadable ({type(e).__name__}: {e}); "
                         "delete it to start afresh, or point --checkpoint-dir elsewhere") from None


# ----- random streams ------------------------------------------------------------------
def rng_state(gen: torch.Generator, oracles: Sequence[Any] = ()) -> dict[str, Any]:
    """Every random stream a run of this process draws from, so that a resumed run draws
    exactly what the uninterrupted one would have drawn.

    - ``run``: the run's own ``torch.Generator`` (prompts, rollouts, labels);
    - ``torch`` / ``cuda`` / ``mps``: torch's global generators (dropout draws from them);
    - ``numpy``, ``python``: the global numpy and ``random`` generators (any library code);
    - ``oracles``: each oracle's own generators (its numpy RNG and the torch generator it
      seeds from it on first use), for the oracles that are :class:`OracleBase` views; other
      oracles (the harness's client) keep theirs on the other side of the pipe.
    """
    st: dict[str, Any] = {"run": gen.get_state(), "torch": torch.get_rng_state(),
                          "numpy": np.random.get_state(), "python": random.getstate(),
                          "oracles": [_oracle_rng(o) for o in oracles]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        st["mps"] = mps.get_rng_state()
    return st


def set_rng_state(st: dict[str, Any], gen: torch.Generator, oracles: Sequence[Any] = ()) -> None:
    """Put back what :func:`rng_state` captured (a checkpoint's ``run`` state alone works too)."""
    gen.set_state(st["run"])
    if "torch" in st:
        torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if "mps" in st and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(st["mps"])
    if "numpy" in st:
        np.random.set_state(st["numpy"])
    if "python" in st:
        random.setstate(st["python"])
    for oracle, o in zip(oracles, st.get("oracles", []), strict=False):
        _set_oracle_rng(oracle, o)


def _oracle_rng(oracle: Any) -> dict[str, Any] | None:
    if not isinstance(oracle, OracleBase):
        return None
    tg = vars(oracle).get("_torch_gen")  # seeded lazily from the numpy RNG on first torch use
    return {"numpy": oracle.rng.bit_generator.state,
            "torch": None if tg is None else (str(tg.device), tg.get_state())}


def _set_oracle_rng(oracle: Any, st: dict[str, Any] | None) -> None:
    if st is None or not isinstance(oracle, OracleBase):
        return
    oracle.rng.bit_generator.state = st["numpy"]
    tg = None
    if st["torch"] is not None:
        device, state = st["torch"]
        tg = torch.Generator(device=device)
        tg.set_state(state)
    oracle._torch_gen = tg


def identity_key(cfg: RunConfig) -> str:
    """A short hash of :meth:`TrainConfig.identity`: what a checkpoint must agree with to be resumed."""
    return hashlib.sha256(json.dumps(cfg.identity(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_resumable(ck: dict[str, Any], cfg: RunConfig, path: str) -> None:
    """Raise unless checkpoint `ck` was written by a run with the same identity as `cfg`."""
    if ck.get("identity") != identity_key(cfg):
        raise ValueError(f"checkpoint `{path}` belongs to a different configuration; "
                         "use a fresh --checkpoint-dir or the original options")


def save_config(path: str, cfg: RunConfig) -> None:
    """A run's TrainConfig as JSON (beside a checkpoint that does not hold it, e.g. ``ppo.json``)."""
    write_atomic(path, json.dumps(cfg.to_dict(), indent=1, default=str))


def write_progress(directory: str, row: dict[str, Any]) -> None:
    """The latest evaluation row as JSON in `directory` (atomic), for whoever watches the run."""
    write_atomic(os.path.join(directory, PROGRESS_NAME), json.dumps(row))


def read_progress(directory: str) -> dict[str, Any] | None:
    """The row :func:`write_progress` left in `directory`, or None."""
    try:
        with open(os.path.join(directory, PROGRESS_NAME)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def find_checkpoint(path: str) -> str:
    """A checkpoint file from a file or a checkpoint directory (``last.pt``, else ``ppo.zip``)."""
    if os.path.isdir(path):
        for name in (CHECKPOINT_NAME, PPO_CHECKPOINT_NAME):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"no checkpoint ({CHECKPOINT_NAME} or {PPO_CHECKPOINT_NAME}) in directory "
                                f"{path}; train with `neg train --checkpoint-dir DIR` first")
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return path


__all__ = ["CHECKPOINT_NAME", "PPO_CHECKPOINT_NAME", "PROGRESS_NAME", "check_resumable", "find_checkpoint",
           "identity_key", "load_checkpoint", "read_progress", "rng_state", "save_checkpoint", "save_config",
           "set_rng_state", "write_progress"]
