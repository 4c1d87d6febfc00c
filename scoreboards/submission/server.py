"""The harness end of the pipe: the session with one worker, and the expert server.

:class:`Session` receives the worker's messages under the run's deadline and turns
worker errors and deaths into a :class:`SubmissionRejected` with the reason.
:class:`ExpertServer` answers the client's requests: it issues training prompts,
answers the expert on prefixes of issued prompts only, counts every prefix answered
as a query and every complete chain queried as an expert trajectory, and refuses
anything over budget or outside the protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Requests a worker may send while training; anything else is a protocol violation.
QUERY_OPS = ("probs", "sample", "log_prob", "probs_along", "rollout")
#: Prompts a submission may draw, as a multiple of its trajectory budget (plus a margin).
ISSUE_FACTOR, ISSUE_MARGIN = 4, 20_000


class SubmissionRejected(Exception):
    """A submission run that cannot enter the board; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ----- the pipe ------------------------------------------------------------------------------
class Session:
    """The pipe to one worker, with the run's deadline applied to every wait."""

    def __init__(self, conn: Any, proc: Any, deadline: float, timeout: float) -> None:
        self.conn, self.proc, self.deadline, self.timeout = conn, proc, deadline, timeout

    def recv(self) -> tuple[str, Any]:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise SubmissionRejected(f"timeout: the run exceeded the board's limit of {self.timeout:g} s")
            if self.conn.poll(min(left, 0.5)):
                try:
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    raise SubmissionRejected(self._died()) from None
                if not (isinstance(msg, tuple) and len(msg) == 2 and isinstance(msg[0], str)):
                    raise SubmissionRejected(f"protocol violation: malformed message {type(msg).__name__}")
                if msg[0] == "error":
                    info = msg[1] if isinstance(msg[1], dict) else {"stage": "?", "message": str(msg[1])}
                    raise SubmissionRejected(error_reason(info))
                return msg
            if not self.proc.is_alive() and not self.conn.poll(0):
                raise SubmissionRejected(self._died())

    def _died(self) -> str:
        self.proc.join(1)
        return f"crashed: the worker process died (exit code {self.proc.exitcode})"


def error_reason(info: dict[str, Any]) -> str:
    """The rejection reason for a worker's ``("error", {"stage", "message"})``."""
    stage, msg = info.get("stage"), str(info.get("message", "")).strip()
    last = msg.splitlines()[-1] if msg else ""
    if stage == "load":
        return f"malformed submission: could not load it: {last}"
    if stage == "interface":
        return f"wrong interface: {last}"
    if stage == "act":
        return f"crashed in act(): {last}"
    return f"crashed in {stage}(): {last}"


# ----- the expert ----------------------------------------------------------------------------
def _row_hashes(a: np.ndarray, weights: np.ndarray) -> list[int]:
    """64-bit hashes of the rows of an integer array (wrap-around arithmetic)."""
    with np.errstate(over="ignore"):
        return (a.astype(np.uint64) * weights[: a.shape[1]]).sum(axis=1, dtype=np.uint64).tolist()


@dataclass
class ExpertServer:
    """Answers the client: issues prompts, answers queries, enforces the budget."""

    expert: Any
    task: Any
    rng: np.random.Generator
    budget_trajectories: int
    budget_queries: int | None
    trajectories: int = 0
    queries: int = 0
    issued_count: int = 0
    issued: set[int] = field(default_factory=set)
    weights: np.ndarray = field(default_factory=lambda: np.random.default_rng(0x5EED).integers(
        1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1))

    def _arr(self, x: Any, name: str, ndim: int) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != ndim or not np.issubdtype(x.dtype, np.integer):
            raise SubmissionRejected(f"protocol violation: `{name}` must be an integer array with {ndim} "
                                     f"dimensions, got {type(x).__name__} {getattr(x, 'shape', '')}")
        return x.astype(np.int64, copy=False)

    def _check_issued(self, prompts: np.ndarray) -> None:
        if prompts.shape[1] != self.task.prompt_len:
            raise SubmissionRejected(f"protocol violation: prompts must have {self.task.prompt_len} tokens, "
                                     f"got {prompts.shape[1]}")
        if not self.issued.issuperset(_row_hashes(prompts, self.weights)):
            raise SubmissionRejected("protocol violation: queried the expert on a prompt the harness "
                                     "did not issue (use expert.prompts(n))")

    def _charge(self, trajectories: int, queries: int) -> None:
        t, q = self.trajectories + trajectories, self.queries + queries
        if t > self.budget_trajectories:
            raise SubmissionRejected(f"over budget: {t:,} expert trajectories requested, budget "
                                     f"{self.budget_trajectories:,}")
        if self.budget_queries is not None and q > self.budget_queries:
            raise SubmissionRejected(f"over budget: {q:,} expert queries requested, budget "
                                     f"{self.budget_queries:,}")
        self.trajectories, self.queries = t, q

    def _issue(self, args: tuple) -> np.ndarray:
        n = args[0] if len(args) == 1 else None
        if not isinstance(n, int) or n <= 0:
            raise SubmissionRejected(f"protocol violation: prompts(n) needs an integer n > 0, got {n!r}")
        limit = ISSUE_FACTOR * self.budget_trajectories + ISSUE_MARGIN
        if self.issued_count + n > limit:
            raise SubmissionRejected(f"protocol violation: asked for more than {limit:,} prompts "
                                     f"({ISSUE_FACTOR}x the trajectory budget + {ISSUE_MARGIN:,})")
        p = self.task.sample_prompts(self.rng, n)
        self.issued.update(_row_hashes(p, self.weights))
        self.issued_count += n
        return p

    def handle(self, op: str, args: tuple) -> Any:
        """Answer one request, or raise SubmissionRejected (budget / protocol)."""
        if op == "prompts":
            return self._issue(args)
        if op not in QUERY_OPS:
            raise SubmissionRejected(f"protocol violation: unknown request `{op}` (the client offers "
                                     f"prompts, {', '.join(QUERY_OPS)})")
        task, h = self.task, self.task.horizon
        try:
            if op in ("probs", "sample", "log_prob"):
                obs = self._arr(args[0], "observations", 2)
                self._check_issued(obs[:, : task.prompt_len])
                self._charge(0, obs.shape[0])
                if op == "probs":
                    return self.expert.probs(obs).astype(np.float32)
                if op == "sample":
                    return self.expert.sample(obs)
                acts = self._arr(np.asarray(args[1]).reshape(-1), "actions", 1)
                return self.expert.log_prob(obs, acts)
            prompts = self._arr(args[0], "prompts", 2)
            self._check_issued(prompts)
            n = prompts.shape[0]
            if op == "probs_along":
                chain = self._arr(args[1], "chain", 2)
                if chain.shape != (n, h):
                    raise SubmissionRejected(f"protocol violation: probs_along needs complete chains "
                                             f"({n}, {h}), got {chain.shape}")
                self._charge(n, n * h)
                return self.expert.probs_along(prompts, chain).astype(np.float32)
            self._charge(n, n * h)
            chain = self.expert.rollout(prompts, generator=self.rng)
            return chain, self.expert.probs_along(prompts, chain).astype(np.float32)
        except (ValueError, IndexError) as e:
            raise SubmissionRejected(f"protocol violation: malformed `{op}` request: {e}") from None
