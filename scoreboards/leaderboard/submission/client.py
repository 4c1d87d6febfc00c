"""The worker side of the expert: :class:`ExpertClient`, a submission's only view of it.

Every request goes over the socket to the harness (:mod:`scoreboards.leaderboard.submission.server`)
in the :mod:`~scoreboards.leaderboard.submission.wire` format, and the harness answers, counts and
budgets it; the client only mirrors the harness's counts (changing them changes nothing
the harness uses). Arrays
may be numpy arrays or torch tensors: answers come back as the same kind, on the same
device. This module imports numpy only (torch when given tensors), never the env package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scoreboards.leaderboard.submission import wire


class BudgetExceeded(RuntimeError):
    """Raised in the worker when the harness refused a request that exceeds the budget."""


class ProtocolError(RuntimeError):
    """Raised in the worker when the harness refused a request (and ended the run)."""


class ExpertAccessError(RuntimeError):
    """A probability request (``probs``, ``probs_along``, ``log_prob``) to a sample-only expert.

    Raised by the client before anything is sent, so the run goes on; the same request
    sent past the client ends the run.
    """


def to_numpy(x: Any) -> tuple[Any, Any]:
    """(numpy array, torch device or None) for a numpy array or torch tensor."""
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy(), x.device
    return np.asarray(x), None


def like(x: np.ndarray, device: Any) -> Any:
    """`x` as the caller gave its input: numpy (device None) or a torch tensor on `device`."""
    if device is None:
        return x
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.dtype == torch.float64:
        t = t.float()
    return t.to(device)


@dataclass(frozen=True)
class TopK:
    """A top-k answer: ``ids`` (..., k) int64 by decreasing probability (ties in increasing id) and their
    ``logprobs`` (..., k). The fields of :class:`noisy_expert_gym.topk.TopK`, which the sandbox does not import."""

    ids: Any
    logprobs: Any


class ExpertClient:
    """The submission's only view of the expert: requests over a socket, counted by the harness."""

    def __init__(self, sock: Any, spec: dict[str, Any]) -> None:
        self._sock = sock
        self.spec = dict(spec)
        self.budget_trajectories: int = spec["budget_trajectories"]
        self.budget_queries: int | None = spec.get("budget_queries")
        self.access: str = spec.get("access", "full")
        """``full`` (probabilities, top-k and samples), ``topk`` (top-k and samples) or ``sample`` (sampled tokens
        only)."""
        self.top_k: int | None = spec.get("top_k")
        """The board's k with access ``topk`` (None otherwise)."""
        self.trajectories = 0
        self.queries = 0
        self.act_hook: Any = None  # the submission's act, for the harness's learning-curve evaluations
        self._torch_gen: Any = None
        self._last_rollout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    # ----- budget ---------------------------------------------------------------
    @property
    def num_queries(self) -> int:
        return self.queries

    @property
    def trajectories_left(self) -> int:
        return self.budget_trajectories - self.trajectories

    @property
    def queries_left(self) -> float:
        return float("inf") if self.budget_queries is None else self.budget_queries - self.queries

    def _call(self, op: str, *args: Any) -> Any:
        wire.send(self._sock, {"op": op, "args": list(args)})
        reply = wire.recv(self._sock, max_payload=None)
        while reply["op"] == "act":  # the harness measures the learning curve before it answers
            self._answer_act(reply["observations"])
            reply = wire.recv(self._sock, max_payload=None)
        if reply["op"] == "ok":
            self.trajectories, self.queries = reply["trajectories"], reply["queries"]
            return reply["answer"]
        if reply["op"] == "over_budget":
            raise BudgetExceeded(reply["reason"])
        raise ProtocolError(reply["reason"])

    def _answer_act(self, observations: Any) -> None:
        """Greedy actions for the harness's mid-training evaluation; a failure skips that point."""
        try:
            if self.act_hook is None:
                raise RuntimeError("act is not available yet")
            a, _ = to_numpy(self.act_hook(observations))
        except Exception as e:  # noqa: BLE001 - reported to the harness, which records no point
            wire.send(self._sock, {"op": "act_failed", "args": [f"{type(e).__name__}: {e}"[:2000]]})
            return
        wire.send(self._sock, {"op": "actions", "args": [a]})

    def _require_full(self, op: str) -> None:
        if self.access == "topk":
            raise ExpertAccessError(f"`{op}` is not available: this board's expert answers its top {self.top_k} "
                                    "tokens and samples (access = 'topk'); use topk(obs), topk_along(prompts, "
                                    "chain), sample(obs), sample_along(prompts, chain, k) or rollout(prompts)")
        if self.access != "full":
            raise ExpertAccessError(f"`{op}` is not available: this board's expert is sample-only (access = "
                                    "'sample'); use sample(obs), sample_along(prompts, chain, k) or "
                                    "rollout(prompts)")

    def _topk_k(self, op: str, k: int | None) -> int:
        if self.access == "sample":
            self._require_full(op)
        if k is None:
            if self.top_k is None:
                raise ValueError(f"`{op}` needs k on a full-access board (e.g. {op}(..., k=5))")
            return self.top_k
        if self.top_k is not None and int(k) > self.top_k:
            raise ExpertAccessError(f"`{op}` with k={k}: this board's expert answers its top {self.top_k} tokens "
                                    "only")
        return int(k)
    # ----- prompts and observations -----------------------------------------------
    def prompts(self, n: int, device: Any = None) -> Any:
        """n fresh training prompts (N, P); a torch tensor on `device` when one is given."""
        p = self._call("prompts", int(n))
        return like(p, device) if device is not None else p

    def observe(self, prompts: Any, chain: Any) -> Any:
        """Observations (N, obs_len): prompt, the chain so far, then padding."""
        p, dev = to_numpy(prompts)
        c, _ = to_numpy(chain)
        pad = np.full((p.shape[0], self.spec["obs_len"] - p.shape[1] - c.shape[1]), self.spec["pad_token"])
        return like(np.concatenate([p, c.astype(p.dtype), pad.astype(p.dtype)], axis=1), dev)

    # ----- the expert (the methods of noisy_expert_gym's Oracle) ----------------------
    def probs(self, obs: Any) -> Any:
        self._require_full("probs")
        o, dev = to_numpy(obs)
        return like(self._call("probs", o), dev)

    def sample(self, obs: Any, generator: Any = None) -> Any:
        """Expert actions at prefixes; drawn by the harness's seeded RNG (`generator` unused)."""
        o, dev = to_numpy(obs)
        return like(self._call("sample", o), dev)

    def log_prob(self, obs: Any, actions: Any) -> Any:
        self._require_full("log_prob")
        o, dev = to_numpy(obs)
        a, _ = to_numpy(actions)
        return like(self._call("log_prob", o, a), dev)

    def probs_along(self, prompts: Any, chain: Any) -> Any:
        self._require_full("probs_along")
        p, dev = to_numpy(prompts)
        c, _ = to_numpy(chain)
        last = self._last_rollout
        if last is not None and last[0].shape == p.shape and last[1].shape == c.shape \
                and np.array_equal(last[0], p) and np.array_equal(last[1], c):
            return like(last[2], dev)  # the rollout already paid for these
        return like(self._call("probs_along", p, c), dev)

    def sample_along(self, prompts: Any, chain: Any, k: int = 1, generator: Any = None) -> Any:
        """k expert samples at every prefix of complete chains: (N, H, k) int64, drawn by the
        harness's seeded RNG (`generator` unused). Costs N trajectories and k N H queries."""
        p, dev = to_numpy(prompts)
        c, _ = to_numpy(chain)
        return like(self._call("sample_along", p, c, int(k)), dev)

    def topk(self, obs: Any, k: int | None = None, generator: Any = None) -> Any:
        """The expert's k most likely tokens at prefixes and their log-probabilities: a :class:`TopK` (N, k), ties in increasing id; one query per prefix. k None: the
        board's ``top_k``."""
        k = self._topk_k("topk", k)
        o, dev = to_numpy(obs)
        ids, lps = self._call("topk", o, k)
        return TopK(like(ids, dev), like(lps, dev))

    def topk_along(self, prompts: Any, chain: Any, k: int | None = None, generator: Any = None) -> Any:
        """The top-k at every prefix of complete chains: a :class:`TopK` (N, H, k); costs
        N trajectories and N H queries, as ``probs_along``."""
        k = self._topk_k("topk_along", k)
        p, dev = to_numpy(prompts)
        c, _ = to_numpy(chain)
        ids, lps = self._call("topk_along", p, c, k)
        return TopK(like(ids, dev), like(lps, dev))

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The expert's own rollouts (N, H), drawn by the harness's seeded RNG."""
        p, dev = to_numpy(prompts)
        chain, probs = self._call("rollout", p)
        self._last_rollout = (p, chain, probs) if probs is not None else None
        return like(chain, dev)

    def torch_generator(self, device: Any) -> Any:
        """A torch.Generator on `device` seeded from the run's seed (for the submission's own draws)."""
        import torch

        dev = torch.device(device)
        if self._torch_gen is None or self._torch_gen.device != dev:
            self._torch_gen = torch.Generator(device=dev).manual_seed(int(self.spec["seed"]) * 7_919 + 1)
        return self._torch_gen

    def reset_queries(self) -> None:  # the harness's count is the only one that matters
        pass
