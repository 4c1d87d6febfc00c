"""Small shared helpers: name lookup with suggestions, array-backend dispatch."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean `x`?' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Look `name` up in a plain-dict registry; unknown names raise with a suggestion."""
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(f"`{k}`" for k in registry)
        raise ValueError(
            f"unknown {what} `{name}`; valid values: {valid}.{did_you_mean(name, registry)}"
        ) from None


def is_torch(x: Any) -> bool:
    """True for a torch tensor (torch is imported lazily so numpy users never pay for it)."""
    return type(x).__module__.startswith("torch")


def cumsum(x: Any, axis: int) -> Any:
    """Cumulative sum along `axis` for numpy arrays and torch tensors."""
    return x.cumsum(dim=axis) if is_torch(x) else np.cumsum(x, axis=axis)


def one_hot(idx: Any, n: int, dtype: Any = None) -> Any:
    """One-hot float encoding of integer indices for numpy or torch, shape idx.shape + (n,)."""
    if is_torch(idx):
        import torch

        return torch.nn.functional.one_hot(idx.long(), n).to(dtype or torch.float32)
    return np.eye(n, dtype=dtype or np.float64)[idx]
