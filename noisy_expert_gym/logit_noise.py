"""Per-query logit noise: every answer of the expert comes from its own randomly perturbed row (DESIGN §2.7).

Serving makes a teacher's answers disagree: two replicas of one model, or one replica
under different batch shapes and kernels, score the same prefix differently. This law
models that on top of any noise law. Each query's answer is computed from

    pi~_q(. | s) = softmax(log pi~(. | s) + sigma * eps_q),   eps_q ~ D iid per query and token,

over the support of pi~(. | s) (tokens of probability 0 keep probability 0; the noise never
creates mass). D is the standard normal (``"gaussian"``, the default: Gaussian logit
perturbation) or the standard Gumbel (``"gumbel"``: Gumbel perturbation, as in the
Gumbel-max trick and perturb-and-MAP). Every access mode reads the same perturbed row: full
access returns it, sample access a token drawn from it, top-k access its top k. A query
is one prefix answered once (k samples are k queries, so k independent rows).

The noise is drawn from the generator the query draws its samples from (the caller's, or
the oracle's seeded one), before the sample's uniform: so a run is reproducible from its
seed, and ``sigma = 0`` draws nothing and changes nothing.

Closed forms (:mod:`noisy_expert_gym.theory_logit_noise`): with Gumbel noise the argmax of the
perturbed row is distributed as softmax(log pi~ / sigma); with Gaussian noise the
probability that a token stays the argmax is a one-dimensional integral; the expected row
is exact for a two-token row and, to second order in sigma, p_i + sigma^2 p_i (sum_j p_j^2 - p_i)
for Gaussian noise in general (the noise flattens the row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym.utils import did_you_mean, is_torch

#: The distributions of the logit noise eps.
LOGIT_NOISE_DISTS: tuple[str, ...] = ("gaussian", "gumbel")


def check_logit_noise(sigma: Any) -> float:
    """`sigma` if it is a finite number >= 0, else a ValueError."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(sigma)) or float(sigma) < 0:
        raise ValueError(f"`logit_noise` (the scale sigma of the per-query logit noise) must be a finite number "
                         f">= 0 (0: off), got {sigma!r}")
    return sigma


def check_logit_noise_dist(dist: Any) -> str:
    """`dist` if it is one of :data:`LOGIT_NOISE_DISTS`, else a ValueError with the valid names."""
    if dist not in LOGIT_NOISE_DISTS:
        raise ValueError(f"unknown `logit_noise_dist` {dist!r}; valid values: "
                         f"{', '.join(f'`{d}`' for d in LOGIT_NOISE_DISTS)}.{did_you_mean(str(dist), LOGIT_NOISE_DISTS)}")
    return dist


def check_logit_noise_applies(sigma: float, dist: str) -> None:
    """Raise unless `dist` keeps its default when the noise is off (it would be accepted and ignored)."""
    if float(sigma) == 0 and dist != "gaussian":
        raise ValueError(f"`logit_noise_dist={dist!r}` has no effect with `logit_noise=0` (the noise is off): set "
                         "`logit_noise` > 0 or leave `logit_noise_dist` at its default")


@dataclass(frozen=True)
class LogitNoise:
    """The per-query logit noise: its scale ``sigma`` (0: off) and distribution ``dist``.

    Raises:
        ValueError: a negative or non-finite ``sigma``, an unknown ``dist``, or ``dist`` changed
            from its default with ``sigma = 0``.
    """

    sigma: float = 0.0
    dist: str = "gaussian"

    def __post_init__(self) -> None:
        check_logit_noise(self.sigma)
        check_logit_noise_dist(self.dist)
        check_logit_noise_applies(self.sigma, self.dist)
        object.__setattr__(self, "sigma", float(self.sigma))

    @property
    def on(self) -> bool:
        return self.sigma > 0

    def __repr__(self) -> str:
        return f"LogitNoise(sigma={self.sigma}, dist={self.dist!r})"

    def draw(self, shape: tuple[int, ...], like: Any, generator: Any) -> Any:
        """Noise of `shape` from `generator` (numpy Generator, or torch.Generator on like's device)."""
        if is_torch(like):
            import torch

            dtype = like.dtype if like.is_floating_point() else torch.float32
            if self.dist == "gaussian":
                return torch.randn(shape, generator=generator, device=like.device, dtype=dtype)
            u = torch.rand(shape, generator=generator, device=like.device, dtype=dtype)
            tiny = torch.finfo(dtype).tiny
            return -torch.log(-torch.log(u.clamp(tiny, 1 - torch.finfo(dtype).eps)))
        if self.dist == "gaussian":
            return generator.standard_normal(shape)
        return generator.gumbel(size=shape)

    def perturb(self, probs: Any, generator: Any, draws: int | None = None) -> Any:
        """The perturbed rows of `probs` ``(..., A)``: ``(..., A)``, or ``(..., draws, A)`` for `draws`
        independent perturbations of each row (k queries of one prefix). The identity when off.

        Args:
            probs: the law's rows, numpy or torch.
            generator: numpy Generator, or torch.Generator on the rows' device.
            draws: None for one perturbation per row, else the number per row.
        """
        if draws is not None:
            probs = probs[..., None, :]
            shape = (*probs.shape[:-2], draws, probs.shape[-1])
        else:
            shape = tuple(probs.shape)
        if not self.on:
            return probs if draws is None else (probs.expand(shape) if is_torch(probs) else np.broadcast_to(probs, shape))
        eps = self.draw(shape, probs, generator)
        if is_torch(probs):
            import torch

            z = torch.where(probs > 0, probs.clamp_min(torch.finfo(probs.dtype).tiny).log() + self.sigma * eps,
                            float("-inf"))
            return torch.softmax(z, dim=-1)
        with np.errstate(divide="ignore"):
            z = np.where(probs > 0, np.log(probs) + self.sigma * eps, -np.inf)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)


__all__ = ["LOGIT_NOISE_DISTS", "LogitNoise", "check_logit_noise", "check_logit_noise_applies",
           "check_logit_noise_dist"]
