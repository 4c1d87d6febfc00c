"""The harness's evaluation of a trained submission: greedy chains from its ``act``, scored here.

Two sets of prompts, both reserved before training starts (the harness never issues them as
training prompts, so the expert is never asked about them):

- the **held-out set** (:func:`held_out_prompts`, from evaluation seeds the submission never
  sees): the score, evaluated once, after ``train`` returns; ``act`` sees these prompts then
  for the first time;
- the **curve set** (:func:`curve_prompts`, apart from the held-out set): the learning curve,
  evaluated while the submission trains (:class:`LearningCurve`) and once more after; it is
  shown during training, and scores nothing.

The chains are built by calling ``act`` step by step in the worker; the metrics are computed
by the harness from the task core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoreboards.leaderboard.submission.server import Session, SubmissionRejected, request_form

#: Rows per `act` request during evaluation.
ACT_CHUNK = 4096


class ActUnavailable(SubmissionRejected):
    """The submission could not act during training (that learning-curve point is skipped)."""


def held_out_prompts(task: Any, seeds: list[Any], per_seed: int) -> np.ndarray:
    """The evaluation prompts: `per_seed` from each of the harness's evaluation seeds
    (an int, or a list of ints: numpy's seed sequence)."""
    return np.concatenate([task.sample_prompts(np.random.default_rng(s), per_seed) for s in seeds])


def curve_prompts(task: Any, seed: Any, n: int, apart_from: np.ndarray) -> np.ndarray:
    """`n` prompts for the learning curve, none of them in `apart_from` (the held-out set)."""
    held = {r.tobytes() for r in np.asarray(apart_from, dtype=np.int64)}
    rng, parts, have = np.random.default_rng(seed), [], 0
    for _ in range(1000):
        if have >= n:
            break
        p = np.asarray(task.sample_prompts(rng, n - have), dtype=np.int64)
        p = p[[r.tobytes() not in held for r in p]]
        parts.append(p)
        have += p.shape[0]
    else:
        raise RuntimeError("the held-out set fills the prompt space: the board should have been refused")
    return np.concatenate(parts)[:n]


def _act_reply(n: int) -> Any:
    """The header check of a reply to an ``act`` request on `n` rows: ``actions`` with one (n,)
    integer array, or ``act_failed`` with a reason and no array."""

    def check(msg: Any, arrays: list[tuple[np.dtype, tuple[int, ...]]]) -> None:
        kind, _ = request_form(msg)
        if kind == "actions" and len(arrays) == 1 and arrays[0][1] != (n,):
            raise SubmissionRejected(f"wrong interface: act() must return ({n},) integer actions for {n} "
                                     f"observations, got {arrays[0][0]} {arrays[0][1]}")
        if kind != "actions" and arrays:
            raise SubmissionRejected(f"protocol violation: `{kind[:40]}` carries no arrays")

    return check


def _act(session: Session, rows: np.ndarray, num_actions: int) -> np.ndarray:
    """The submission's greedy actions for `rows`, checked."""
    session.send({"op": "act", "observations": rows})
    kind, args = session.recv(check=_act_reply(rows.shape[0]), max_payload=64 * rows.shape[0] + 4096)
    if kind == "act_failed":
        raise ActUnavailable(f"act() failed during training: {str(args[0] if args else '')[:500]}")
    if kind != "actions" or len(args) != 1:
        raise SubmissionRejected(f"protocol violation: expected actions, got `{kind[:40]}`")
    a = args[0]
    if not isinstance(a, np.ndarray) or a.shape != (rows.shape[0],) or not np.issubdtype(a.dtype, np.integer):
        raise SubmissionRejected(f"wrong interface: act() must return ({rows.shape[0]},) integer "
                                 f"actions for {rows.shape[0]} observations, got "
                                 f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    if a.size and (a.min() < 0 or a.max() >= num_actions):
        raise SubmissionRejected(f"wrong interface: act() returned actions outside [0, {num_actions - 1}]")
    return a.astype(np.int64)


def evaluate_greedy(session: Session, task: Any, prompts: np.ndarray) -> dict[str, float]:
    """Greedy chains built by calling the submission's act step by step; the harness scores them."""
    n = prompts.shape[0]
    chain = np.empty((n, 0), dtype=np.int64)
    for _ in range(task.horizon):
        obs = task.observe(prompts, chain)
        acts = [_act(session, obs[i:i + ACT_CHUNK], task.num_actions) for i in range(0, n, ACT_CHUNK)]
        chain = np.concatenate([chain, np.concatenate(acts)[:, None]], axis=1)
    m = task.metrics(prompts, chain)
    return {"greedy_full_exact": float(np.mean(m["full_exact"])),
            "greedy_final_exact": float(np.mean(m["final_exact"])),
            "greedy_correct_prefix_len": float(np.mean(m["correct_prefix_len"]))}


@dataclass
class LearningCurve:
    """The harness's learning curve of one run on the curve set: the board's evaluation at equal
    fractions of the trajectory budget, measured while the submission trains (before the harness
    answers the first request made after a fraction was spent), then once after ``train``.

    A submission whose ``act`` fails during training gets no point there; it is not rejected.
    """

    task: Any
    prompts: np.ndarray
    budget: int
    points: int
    values: list[dict[str, float]] = field(default_factory=list)
    _next: int = 1

    def _due(self, trajectories: int) -> bool:
        return self._next < self.points and trajectories * self.points >= self._next * self.budget

    def maybe_measure(self, session: Session, server: Any) -> None:
        """Evaluate now if a fraction of the budget was spent since the last point."""
        if not self._due(server.trajectories):
            return
        while self._due(server.trajectories):
            self._next += 1
        try:
            m = evaluate_greedy(session, self.task, self.prompts)
        except ActUnavailable:
            return
        self.values.append({"trajectories": server.trajectories, "queries": server.queries, **m})
