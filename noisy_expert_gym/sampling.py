"""Drawing tokens from the expert's rows: one or k draws per prefix, and the majority vote of k.

The oracles (:mod:`noisy_expert_gym.oracle`) sample with :func:`sample_from` and
:func:`sample_k`; :func:`majority_vote` is the label rule of mode-seeking learners over k
samples per prefix (``sample_along(prompts, chain, k)`` then the vote). numpy or torch alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisy_expert_gym.utils import did_you_mean, is_torch, sample_categorical

#: Tie-breaking rules of :func:`majority_vote`: uniformly at random among the tied tokens, or the lowest id.
TIES: tuple[str, ...] = ("random", "lowest")


def check_num_samples(k: Any) -> int:
    """Validate a number of samples per prefix, raising ValueError unless it is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` (samples per prefix) must be an integer >= 1, got {k!r}")
    return int(k)


def sample_from(probs: Any, generator: Any) -> Any:
    """One categorical draw per row of `probs` (N, A), numpy or torch (inverse CDF)."""
    return sample_categorical(probs, generator)


def sample_k(probs: Any, k: int, generator: Any) -> Any:
    """k categorical draws per row of `probs` (..., A): (..., k) int64, numpy or torch.

    The same draws as :func:`~noisy_expert_gym.utils.sample_categorical` on the rows
    repeated k times (one uniform per draw, in the same order), without materialising
    the (..., k, A) repeat.
    """
    a = probs.shape[-1]
    if is_torch(probs):
        import torch

        u = torch.rand(probs.shape[:-1] + (k,), generator=generator, device=probs.device, dtype=probs.dtype)
        cdf = probs.cumsum(-1)
        out = torch.empty(u.shape, dtype=torch.long, device=probs.device)
        for j in range(k):
            out[..., j] = (u[..., j, None] > cdf).sum(-1).clamp_(max=a - 1)
        return out
    u = generator.random(probs.shape[:-1] + (k,))
    cdf = np.cumsum(probs, axis=-1)
    out = np.empty(u.shape, dtype=np.int64)
    for j in range(k):
        out[..., j] = np.minimum((u[..., j, None] > cdf).sum(-1), a - 1)
    return out


def majority_vote(samples: Any, num_actions: int, ties: str = "random", generator: Any = None) -> Any:
    """The most frequent token among k samples per prefix: (..., k) -> (...,) int64.

    The label of mode-seeking learners (``sample_along(prompts, chain, k)`` then this).
    Under the mode condition it is the clean action with a probability that goes to 1
    with k (:func:`noisy_expert_gym.theory_corruption.prob_majority_clean`).

    Args:
        samples: integer token ids (..., k) in [0, num_actions), numpy or torch.
        num_actions: A.
        ties: ``"random"``: uniformly at random among the tied tokens (from
            ``generator``: a numpy Generator, or a torch.Generator on the samples'
            device; None: a fresh unseeded one); ``"lowest"``: the lowest token id
            (deterministic).

    Raises:
        ValueError: an unknown tie rule or an empty sample axis.
    """
    if ties not in TIES:
        raise ValueError(f"unknown `ties` {ties!r}; valid values: {', '.join(f'`{t}`' for t in TIES)}."
                         f"{did_you_mean(str(ties), TIES)}")
    if samples.shape[-1] < 1:
        raise ValueError("majority_vote needs k >= 1 samples per prefix (the last axis)")
    lead = tuple(samples.shape[:-1])
    if is_torch(samples):
        import torch

        flat = samples.reshape(-1, samples.shape[-1]).long()
        counts = torch.zeros((flat.shape[0], num_actions), dtype=torch.long, device=samples.device)
        counts.scatter_add_(1, flat, torch.ones_like(flat))
        if ties == "random":
            gen = generator if generator is not None else torch.Generator(device=samples.device)
            if generator is None:
                gen.seed()
            noise = torch.rand(counts.shape, generator=gen, device=samples.device)
            tied = counts == counts.max(1, keepdim=True).values
            return (noise * tied).argmax(1).reshape(lead)
        return counts.argmax(1).reshape(lead)  # the first maximum: the lowest id
    flat = np.asarray(samples, dtype=np.int64).reshape(-1, samples.shape[-1])
    rows = flat.shape[0]
    counts = np.bincount((flat + num_actions * np.arange(rows)[:, None]).ravel(),
                         minlength=rows * num_actions).reshape(rows, num_actions)
    if ties == "random":
        gen = generator if generator is not None else np.random.default_rng()
        tied = counts == counts.max(1, keepdims=True)
        return (gen.random(counts.shape) * tied).argmax(1).reshape(lead)
    return counts.argmax(1).reshape(lead)


__all__ = ["TIES", "check_num_samples", "majority_vote", "sample_from", "sample_k"]
