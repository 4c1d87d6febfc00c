"""Small shared helpers, written once for every layer: name lookup with suggestions,
array-backend dispatch, categorical sampling, atomic file writes."""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
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
    idx = np.asarray(idx)
    out = np.zeros(idx.shape + (n,), dtype=dtype or np.float64)  # not np.eye(n): O(n^2) for a 262k vocabulary
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return out


def sample_categorical(probs: Any, generator: Any) -> Any:
    """One draw per row of `probs` (..., A) by inverse CDF: (...,) int64.

    numpy: ``generator`` is a ``np.random.Generator``; torch (any device): a
    ``torch.Generator`` on the tensor's device. One uniform per row, so a seeded
    generator gives the same draws on every call pattern of the same shapes.
    """
    if is_torch(probs):
        import torch

        u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
        return (u > probs.cumsum(-1)).sum(-1).clamp_(max=probs.shape[-1] - 1)
    u = generator.random(probs.shape[:-1] + (1,))
    return np.minimum((u > np.cumsum(probs, axis=-1)).sum(-1), probs.shape[-1] - 1).astype(np.int64)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; on success rename it over `path`.

    The rename is atomic on POSIX, so a reader sees the old file or the new one, never a
    half-written one; on an exception the temporary file is removed and `path` is
    untouched. ``suffix`` keeps writers that pick a format from the name happy
    (``".png"``, ``".zip"``). Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(path):x}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write text or bytes to `path` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return Path(path)


def parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    """Command-line ``key=value`` pairs: ``['eta=0.2', 'law=mixture']`` -> ``{'eta': 0.2, 'law': 'mixture'}``.

    Values are parsed as JSON when they can be (numbers, booleans, lists, objects), else
    kept as strings. ``what`` names the option in the error (``"--env-kw"``).

    Raises:
        ValueError: an item without ``=``.
    """
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} expects key=value, got `{item}`")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out
