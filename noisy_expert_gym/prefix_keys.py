"""The secret key of a prefix: what picks the corruption laws' wrong token w(s) (:mod:`noisy_expert_gym.noise`).

The key is a position-weighted sum of the prefix's tokens (weights drawn from the
secret ``corruption_seed``), finished by an integer hash; every step is exact integer
arithmetic below 2**63 (no overflow on any backend), and the key of every prefix of
a complete chain comes from one cumulative sum, so :func:`prefix_keys` (single
prefixes) and :func:`prefix_keys_along` (every prefix of complete chains) give equal
keys to equal prefixes, on numpy and on torch (any device).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisy_expert_gym.utils import cumsum, is_torch

# Everything below is integer arithmetic on non-negative int64 values that stay below
# 2**63: no step relies on wrap-around, so numpy, torch CPU and torch CUDA agree bit for bit.

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1  # odd, ~2**32 / phi: spreads consecutive positions


def _hash32(x: Any) -> Any:
    """An integer hash of 32-bit values held in int64 (Mueller's hash32): (...,) -> (...,) in [0, 2**32)."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32  # products < 2**59
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def _seed_words(seed: int) -> tuple[int, int]:
    """Two 32-bit words drawn from a 64-bit seed: one for the position weights, one for the finish."""
    lo, hi = np.array([seed & _M32], np.int64), np.array([(seed >> 32) & _M32], np.int64)
    w1 = _hash32(_hash32(lo) ^ hi)
    w2 = _hash32(w1 ^ 0x27D4EB2F)
    return int(w1[0]), int(w2[0])


def _weights(seed: int, length: int, like: Any) -> Any:
    """Secret odd 32-bit weights W_0..W_{length-1} of the token positions, on like's backend/device."""
    w1, _ = _seed_words(seed)
    w = _hash32((np.arange(length, dtype=np.int64) * _GOLDEN + w1) & _M32) | 1
    if is_torch(like):
        import torch

        return torch.as_tensor(w, device=like.device)
    return w


def _int64(x: Any) -> Any:
    return x.long() if is_torch(x) else np.asarray(x, dtype=np.int64)


def _finish(total: Any, t: Any, seed: int) -> Any:
    """The key from the prefix's weighted token sum and its length t: [0, 2**32)."""
    _, w2 = _seed_words(seed)
    return _hash32((_hash32((total & _M32) ^ w2) + t) & _M32)


def _terms(tokens: Any, weights: Any) -> Any:
    """((token + 1) * W) mod 2**32 per position: < 2**63 for token ids below 2**31."""
    return ((tokens + 1) * weights) & _M32


def prefix_keys(task: Any, obs: Any, seed: int) -> Any:
    """The secret key of each prefix (the observed prompt and the chain written so far): (N,) int64.

    Args:
        task: any task core (:class:`~noisy_expert_gym.contracts.TaskCore`): its
            ``prompt_len`` and ``step_index`` say which tokens form the prefix.
        obs: observations (N, L), numpy or torch on any device.
        seed: the secret ``corruption_seed``.

    Returns:
        Keys in [0, 2**32), equal for equal prefixes and to :func:`prefix_keys_along`'s.
    """
    obs = _int64(obs)
    t = _int64(task.step_index(obs))
    length = obs.shape[1]
    terms = _terms(obs, _weights(seed, length, obs))
    pos = _arange(length, obs) if is_torch(obs) else np.arange(length)
    inside = pos[None, :] < (task.prompt_len + t)[:, None]  # the prompt and the t tokens written
    total = (terms * inside).sum(1)
    return _finish(total, t, seed)


def _arange(n: int, like: Any) -> Any:
    import torch

    return torch.arange(n, device=like.device)


def prefix_keys_along(task: Any, prompts: Any, chain: Any, seed: int) -> Any:
    """:func:`prefix_keys` at every prefix chain[:, :t], t = 0..H-1, of complete chains: (N, H) int64.

    One cumulative sum over the chain gives all H keys.
    """
    prompts, chain = _int64(prompts), _int64(chain)
    p, h = prompts.shape[1], chain.shape[1]
    w = _weights(seed, p + h, chain)
    total_prompt = _terms(prompts, w[:p]).sum(1)  # (N,)
    terms = _terms(chain, w[p:])  # (N, H)
    before = cumsum(terms, 1) - terms  # the weighted sum of chain[:, :t], exclusive
    t = _arange(h, chain) if is_torch(chain) else np.arange(h, dtype=np.int64)
    return _finish(total_prompt[:, None] + before, t[None, :], seed)


__all__ = ["prefix_keys", "prefix_keys_along"]
