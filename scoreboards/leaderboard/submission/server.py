"""The harness end of the socket: the session with one worker, and the expert server.

:class:`Session` receives the worker's messages (:mod:`~scoreboards.leaderboard.submission.wire`)
under the run's deadline and turns malformed messages, worker errors and deaths into a
:class:`SubmissionRejected` with the reason.
:class:`ExpertServer` answers the client's requests: it issues training prompts,
answers the expert on prefixes of issued prompts only, counts every prefix answered
as a query (k queries for k samples: ``sample_along(prompts, chain, k)``) and every
complete chain queried as an expert trajectory (a row of ``probs_along``,
``sample_along`` or ``rollout``, whatever k), counts single-prefix queries (``probs``,
``sample``, ``log_prob`` on observations, e.g. DAgger's roll-in labels) as trajectories too,
one per H of them (rounded up: a trajectory's worth of labels, so no way of asking the
expert escapes the trajectory budget), refuses the probability requests
(:data:`PROB_OPS`) when the board's expert is sample-only, and refuses anything over
budget or outside the protocol.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoreboards.leaderboard.submission import wire

#: Requests a worker may send while training; anything else is a protocol violation.
QUERY_OPS = ("probs", "sample", "log_prob", "probs_along", "sample_along", "rollout")
#: Requests that read the expert's probabilities: refused when a board's access is ``sample``.
PROB_OPS = ("probs", "log_prob", "probs_along")
#: Most samples per prefix one ``sample_along`` request may ask for.
MAX_SAMPLES_PER_PREFIX = 1024
#: Prompts a submission may draw, as a multiple of its trajectory budget (plus a margin).
ISSUE_FACTOR, ISSUE_MARGIN = 4, 20_000


class SubmissionRejected(Exception):
    """A submission run that cannot enter the board; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# ----- the socket ------------------------------------------------------------------------------
#: Signals that end a worker, as the reason says them.
_SIGNALS = {signal.SIGXCPU: "exceeded its CPU time limit (SIGXCPU)",
            signal.SIGKILL: "was killed (SIGKILL: past its CPU time limit, or out of memory)",
            signal.SIGSEGV: "crashed (SIGSEGV)", signal.SIGABRT: "aborted (SIGABRT)"}


class Session:
    """The socket to one worker, with the run's deadline applied to every wait.

    Everything the worker sends is decoded by :mod:`~scoreboards.leaderboard.submission.wire` (bounded
    JSON headers and numeric arrays, no pickle); a message that breaks the format, a worker
    that dies or stalls, and a deadline that passes all end the run as
    :class:`SubmissionRejected`. ``proc`` is the worker's process (``poll()``,
    ``returncode``; bwrap reports a signal as 128 + its number), ``output`` returns the
    tail of its stdout and stderr.
    """

    def __init__(self, sock: socket.socket, proc: Any, deadline: float, timeout: float,
                 output: Callable[[], str] = lambda: "", max_payload: int = wire.MAX_PAYLOAD) -> None:
        self.sock, self.proc, self.deadline, self.timeout = sock, proc, deadline, timeout
        self.output, self.max_payload = output, max_payload

    def _timeout(self) -> SubmissionRejected:
        return SubmissionRejected(f"timeout: the run exceeded the board's limit of {self.timeout:g} s")

    def send(self, msg: dict[str, Any]) -> None:
        """Send one message to the worker (it must read it before the deadline)."""
        try:
            wire.send(self.sock, msg, self.deadline)
        except TimeoutError:
            raise self._timeout() from None
        except OSError:
            raise SubmissionRejected(self._died()) from None

    def recv(self) -> tuple[str, tuple]:
        """The worker's next message as ``(op, args)``; its error reports become rejections."""
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self._timeout()
            if wire.wait_readable(self.sock, min(left, 0.5)):
                try:
                    msg = wire.recv(self.sock, self.deadline, self.max_payload)
                except wire.PeerClosed as e:
                    if e.partial:
                        raise SubmissionRejected(f"protocol violation: {e}") from None
                    raise SubmissionRejected(self._died()) from None
                except wire.WireError as e:
                    raise SubmissionRejected(f"protocol violation: malformed message: {e}") from None
                except TimeoutError:
                    raise self._timeout() from None
                except OSError:
                    raise SubmissionRejected(self._died()) from None
                if not (isinstance(msg, dict) and isinstance(msg.get("op"), str) and len(msg["op"]) <= 40
                        and msg["op"].isidentifier() and isinstance(msg.get("args", []), list)):
                    raise SubmissionRejected("protocol violation: malformed message: expected "
                                             "{\"op\": str, \"args\": [...]}")
                op, args = msg["op"], tuple(msg.get("args", []))
                if op == "error":
                    info = args[0] if args and isinstance(args[0], dict) else {"stage": "?", "message": str(args)}
                    raise SubmissionRejected(error_reason(info))
                return op, args
            if self.proc.poll() is not None and not wire.wait_readable(self.sock, 0):
                raise SubmissionRejected(self._died())

    def _died(self) -> str:
        try:
            rc = self.proc.wait(2)
        except Exception:  # noqa: BLE001 - still running: it closed its end of the socket
            rc = None
        sig = -rc if rc is not None and rc < 0 else rc - 128 if rc is not None and rc > 128 else None
        if sig in _SIGNALS:
            what = f"the worker {_SIGNALS[sig]}"
        elif sig is not None:
            what = f"the worker process died (signal {sig})"
        else:
            what = f"the worker process died (exit code {rc})"
        tail = _printable(self.output())[-600:]
        return f"crashed: {what}" + (f"; its last output: {tail}" if tail else "")


def _printable(s: str) -> str:
    """`s` without control characters (reasons reach a terminal)."""
    return "".join(c for c in str(s) if c.isprintable() or c in "\n\t")


def error_reason(info: dict[str, Any]) -> str:
    """The rejection reason for a worker's ``("error", {"stage", "message"})``."""
    stage, msg = _printable(info.get("stage"))[:20], _printable(info.get("message", ""))[-4000:].strip()
    last = msg.splitlines()[-1][:500] if msg else ""
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
    access: str = "full"
    trajectories: int = 0
    queries: int = 0
    prefix_queries: int = 0  # single-prefix queries so far (probs / sample / log_prob on observations)
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

    def _charge_prefixes(self, n: int) -> None:
        """Charge `n` single-prefix queries: n queries, and the trajectories they complete at H
        prefix queries per trajectory (the running total's ceiling: ``ceil(total / H)``)."""
        h, before = self.task.horizon, self.prefix_queries
        self._charge(-(-(before + n) // h) - -(-before // h), n)
        self.prefix_queries = before + n

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
        if op in PROB_OPS and self.access != "full":
            raise SubmissionRejected(f"protocol violation: `{op}` refused: this board's expert is sample-only "
                                     "(access = \"sample\"); use sample, sample_along or rollout (check "
                                     "expert.access first)")
        task, h = self.task, self.task.horizon
        try:
            if op in ("probs", "sample", "log_prob"):
                obs = self._arr(args[0], "observations", 2)
                self._check_issued(obs[:, : task.prompt_len])
                self._charge_prefixes(obs.shape[0])
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
            if op == "sample_along":
                chain = self._arr(args[1], "chain", 2)
                k = args[2] if len(args) > 2 else None
                if chain.shape != (n, h):
                    raise SubmissionRejected(f"protocol violation: sample_along needs complete chains "
                                             f"({n}, {h}), got {chain.shape}")
                if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_SAMPLES_PER_PREFIX:
                    raise SubmissionRejected(f"protocol violation: sample_along needs an integer k in "
                                             f"[1, {MAX_SAMPLES_PER_PREFIX}] samples per prefix, got {k!r}")
                self._charge(n, k * n * h)  # one trajectory per chain, k queries per prefix
                return self.expert.sample_along(prompts, chain, k)
            self._charge(n, n * h)
            chain = self.expert.rollout(prompts, generator=self.rng)
            if self.access != "full":  # the chain only: its distributions are not for this board
                return chain, None
            return chain, self.expert.probs_along(prompts, chain).astype(np.float32)
        except (ValueError, IndexError) as e:
            raise SubmissionRejected(f"protocol violation: malformed `{op}` request: {e}") from None
