"""The harness's evaluation of a trained submission: greedy chains from its ``act``, scored here.

The prompts come from the board's held-out evaluation seeds, which the submission
never sees; the chains are built by calling ``act`` step by step in the worker; the
metrics are computed by the harness from the task core.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scoreboards.submission.server import Session, SubmissionRejected

#: Rows per `act` request during evaluation.
ACT_CHUNK = 4096


def held_out_prompts(task: Any, seeds: list[int], per_seed: int) -> np.ndarray:
    """The evaluation prompts: `per_seed` from each of the harness's evaluation seeds."""
    return np.concatenate([task.sample_prompts(np.random.default_rng(s), per_seed) for s in seeds])


def _act(session: Session, rows: np.ndarray, num_actions: int) -> np.ndarray:
    """The submission's greedy actions for `rows`, checked."""
    session.send({"op": "act", "observations": rows})
    kind, args = session.recv()
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
