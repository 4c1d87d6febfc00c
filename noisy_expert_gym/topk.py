"""Top-k answers: the k most likely tokens of the expert's row and their log-probabilities (DESIGN §2.6).

What an inference server gives a distillation trainer (vLLM's OpenAI-compatible API with
``logprobs=k``): never the whole next-token distribution, only its head. An expert built
with ``access="topk"`` (and ``top_k=k``) answers this way; a full-access expert answers it
too (:meth:`~noisy_expert_gym.oracle.Expert.topk`, :meth:`~noisy_expert_gym.oracle.Expert.topk_along`).

**The order and the tie rule.** The k entries of a row are sorted by probability, highest
first; tokens of equal probability come in increasing token id (a stable sort of the row
by decreasing probability). So the answer is a function of the row alone: two experts that
agree on a row agree on its top-k, ids and order included. Tokens of probability 0 can be
among the k (when k exceeds the row's support); their log-probability is ``-inf``.

numpy or torch alike: ids int64, log-probabilities float64 (numpy) or the rows' float
dtype (torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym.utils import is_torch


@dataclass(frozen=True)
class TopK:
    """The k most likely tokens of each row and their log-probabilities, highest first.

    Attributes:
        ids: ``(..., k)`` int64 token ids, by decreasing probability, ties in increasing id.
        logprobs: ``(..., k)`` float log-probabilities of those tokens (``-inf`` for a token of
            probability 0), non-increasing along the last axis.
    """

    ids: Any
    logprobs: Any

    @property
    def k(self) -> int:
        return int(self.ids.shape[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``ids``, ``(..., k)``."""
        return tuple(self.ids.shape)

    def __getitem__(self, index: Any) -> TopK:
        """The entries of some rows (an index over the leading axes): ``topk[0]``, ``topk[:, :t]``."""
        return TopK(self.ids[index], self.logprobs[index])

    def head(self, k: int) -> TopK:
        """The first k entries of every row: the top-k of the same rows for a smaller k."""
        check_top_k(k)
        if k > self.k:
            raise ValueError(f"asked for the top {k} of an answer that holds the top {self.k} only")
        return TopK(self.ids[..., :k], self.logprobs[..., :k])

    def probs(self) -> Any:
        """The k probabilities, ``exp(logprobs)``."""
        return self.logprobs.exp() if is_torch(self.logprobs) else np.exp(self.logprobs)

    def dense(self, num_actions: int) -> Any:
        """Rows ``(..., A)`` holding the k probabilities at their ids and 0 elsewhere (tests, small A)."""
        p = self.probs()
        if is_torch(p):
            import torch

            out = torch.zeros((*p.shape[:-1], num_actions), dtype=p.dtype, device=p.device)
            return out.scatter_(-1, self.ids.long(), p)
        out = np.zeros((*p.shape[:-1], num_actions), dtype=p.dtype)
        np.put_along_axis(out, self.ids, p, axis=-1)
        return out


def check_top_k(k: Any, num_actions: int | None = None) -> int:
    """`k` if it is an integer >= 1 (and at most `num_actions` when given), else a ValueError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`top_k` (tokens per top-k answer) must be an integer >= 1, got {k!r}")
    if num_actions is not None and k > num_actions:
        raise ValueError(f"`top_k` must be at most the number of actions ({num_actions}), got {k}")
    return int(k)


def topk_of(probs: Any, k: int) -> TopK:
    """The top-k of each row of `probs` ``(..., A)``: ids by decreasing probability, ties in increasing id.

    Args:
        probs: probabilities ``(..., A)``, numpy or torch.
        k: entries per row, in [1, A].

    Raises:
        ValueError: k outside [1, A].
    """
    k = check_top_k(k, probs.shape[-1])
    if is_torch(probs):
        import torch

        # A stable sort keeps equal probabilities in increasing id: the documented tie rule
        # (torch.topk does not promise any order among ties).
        values, ids = torch.sort(probs, dim=-1, descending=True, stable=True)
        return TopK(ids[..., :k].long(), values[..., :k].log())
    p = np.asarray(probs)
    ids = np.argsort(-p, axis=-1, kind="stable")[..., :k].astype(np.int64)
    with np.errstate(divide="ignore"):
        return TopK(ids, np.log(np.take_along_axis(p, ids, axis=-1)))


def rank_of(probs: Any, tokens: Any) -> Any:
    """The 1-based rank of `tokens` ``(...,)`` in their rows ``(..., A)`` under the same order as :func:`topk_of`:
    1 + the tokens of higher probability + those of equal probability and lower id (vLLM's ``rank``)."""
    if is_torch(probs):
        import torch

        t = tokens.long()[..., None]
        pt = probs.gather(-1, t)
        ids = torch.arange(probs.shape[-1], device=probs.device)
        before = (probs > pt) | ((probs == pt) & (ids < t))
        return 1 + before.sum(-1)
    p = np.asarray(probs)
    t = np.asarray(tokens, dtype=np.int64)[..., None]
    pt = np.take_along_axis(p, t, axis=-1)
    ids = np.arange(p.shape[-1])
    return 1 + ((p > pt) | ((p == pt) & (ids < t))).sum(-1)


__all__ = ["TopK", "check_top_k", "rank_of", "topk_of"]
