"""Noise laws: how the noisy expert pi~ is made from the clean expert pi* (DESIGN §2).

Each law is a pure function of the clean action, whether the prefix already
contains an error, the law's structured slip, and the support of the uniform
part. Shapes broadcast: inputs (...,) give probabilities (..., A). Works on
numpy arrays and torch tensors alike.

| law         | pi~(.|s)                                                         |
|-------------|------------------------------------------------------------------|
| mixture     | (1-eta) pi*(.|s) + eta U                                         |
| absorbing   | mixture while the prefix is clean; U once it contains an error   |
| biased      | (1-eta) pi*(.|s) + eta delta(slip(s))                            |
| temperature | softmax(logits / t) of a teacher with logits (LM teachers only)  |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym._util import did_you_mean, is_torch, one_hot

LAWS: tuple[str, ...] = ("absorbing", "mixture", "biased", "temperature")
#: Laws defined on top of a deterministic clean expert (all but `temperature`).
DETERMINISTIC_LAWS: tuple[str, ...] = ("absorbing", "mixture", "biased")


def check_law(law: str, eta: float, allowed: tuple[str, ...] = DETERMINISTIC_LAWS) -> None:
    """Validate a (law, eta) pair, raising ValueError with the valid values."""
    if law not in allowed:
        valid = ", ".join(f"`{x}`" for x in allowed)
        hint = ""
        if law == "temperature":
            hint = " (`temperature` needs a teacher with logits, e.g. an LM teacher)"
        raise ValueError(f"unknown noise `law` `{law}`{hint}; valid values: {valid}.{did_you_mean(law, allowed)}")
    if not isinstance(eta, (int, float, np.floating)) or not (0.0 <= float(eta) <= 1.0):
        raise ValueError(f"`eta` must be in [0, 1], got {eta!r}")


def uniform(answer_mask: np.ndarray, like: Any = None) -> Any:
    """The uniform distribution U over the task's answer tokens, shape (A,)."""
    u = answer_mask.astype(np.float64) / answer_mask.sum()
    if like is not None and is_torch(like):
        import torch

        return torch.as_tensor(u, dtype=torch.float32, device=like.device)
    return u


def noisy_probs(
    law: str,
    eta: float,
    clean: Any,
    has_error: Any,
    slip: Any,
    answer_mask: np.ndarray,
) -> Any:
    """pi~(.|s) for a batch of states, given the clean expert's (deterministic) action.

    Args:
        law: one of `absorbing`, `mixture`, `biased`.
        eta: noise level in [0, 1].
        clean: clean expert actions, integer (...,).
        has_error: whether each prefix already contains an error, bool (...,).
        slip: the `biased` law's structured wrong action, integer (...,).
        answer_mask: bool (A,), the support of the uniform part U.

    Returns:
        Probabilities of shape (..., A), float64 for numpy and float32 for torch.
    """
    a = answer_mask.shape[0]
    u = uniform(answer_mask, like=clean)
    dtype = None if not is_torch(clean) else u.dtype
    pi_star = one_hot(clean, a, dtype)
    if law == "mixture":
        return (1.0 - eta) * pi_star + eta * u
    if law == "absorbing":
        mix = (1.0 - eta) * pi_star + eta * u
        err = has_error[..., None]
        if is_torch(mix):
            return mix.where(~err, u.expand_as(mix))
        return np.where(err, u, mix)
    if law == "biased":
        return (1.0 - eta) * pi_star + eta * one_hot(slip, a, dtype)
    check_law(law, eta)  # raises with the valid names
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class NoiseLaw:
    """A noise law and its level, validated once: what turns pi* into pi~ (see the table above).

    ``NoiseLaw("absorbing", 0.2)``; ``NoiseLaw.clean()`` is the identity (the clean
    expert pi*, for evaluation and reference ceilings only). An oracle holds one
    and asks it for the distribution at each prefix.

    Raises:
        ValueError: unknown ``law`` (with the valid names) or ``eta`` outside [0, 1].
    """

    law: str = "absorbing"
    eta: float = 0.0

    def __post_init__(self) -> None:
        if self.law != "clean":
            check_law(self.law, self.eta)
        object.__setattr__(self, "eta", float(self.eta))

    @classmethod
    def clean(cls) -> NoiseLaw:
        """The identity law: pi~ = pi*."""
        return cls("clean", 0.0)

    @property
    def is_clean(self) -> bool:
        return self.law == "clean"

    def probs(self, clean: Any, has_error: Any, slip: Any, answer_mask: np.ndarray) -> Any:
        """pi~(.|s), shape (..., A), from the clean actions (...,) and the task's error / slip arrays."""
        if self.is_clean:
            return noisy_probs("mixture", 0.0, clean, None, None, answer_mask)
        return noisy_probs(self.law, self.eta, clean, has_error, slip, answer_mask)
