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

import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoreboards.leaderboard.submission import wire

#: Requests a worker may send while training; anything else is a protocol violation.
QUERY_OPS = ("probs", "sample", "log_prob", "probs_along", "sample_along", "rollout", "topk", "topk_along")
#: Requests that read the expert's probabilities: refused when a board's access is ``sample``.
PROB_OPS = ("probs", "log_prob", "probs_along")
#: Requests that read the top-k of the expert's rows: refused when a board's access is ``sample``; on a
#: ``topk`` board k is at most the board's ``top_k``.
TOPK_OPS = ("topk", "topk_along")
#: Most samples per prefix one ``sample_along`` request may ask for.
MAX_SAMPLES_PER_PREFIX = 1024
#: Prompts a submission may draw, as a multiple of its trajectory budget (plus a margin).
ISSUE_FACTOR, ISSUE_MARGIN = 4, 20_000
#: Seconds one message may take to cross the socket once begun, each way (a board may declare another).
MESSAGE_TIMEOUT_S = 30.0
#: Bytes the harness may spend answering one request (a board may declare another: ``request_mb``).
REQUEST_BYTES = 256 << 20
#: The arguments of each request, by name: ``obs`` (N, obs_len), ``actions`` (N,), ``prompts`` (N, P),
#: ``chain`` (N, H) integer arrays, ``k`` an integer.
REQUEST_ARGS = {"probs": ("obs",), "sample": ("obs",), "log_prob": ("obs", "actions"),
                "probs_along": ("prompts", "chain"), "sample_along": ("prompts", "chain", "k"),
                "rollout": ("prompts",), "topk": ("obs", "k"), "topk_along": ("prompts", "chain", "k")}
#: A safety factor over the arrays a request's answer needs (the expert's float64 temporaries),
#: measured in tests/scoreboards/leaderboard/submission/test_protocol_fuzz.py.
COST_FACTOR = 4


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
    """The socket to one worker, with the run's deadlines applied to every wait.

    Everything the worker sends is decoded by :mod:`~scoreboards.leaderboard.submission.wire` (bounded
    JSON headers and numeric arrays, no pickle); a message that breaks the format, a worker
    that dies or stalls, and a deadline that passes all end the run as
    :class:`SubmissionRejected`. Two deadlines: the run's wall limit (``deadline``, for the
    waits between messages: training takes what it takes), and ``message_s`` for one message
    once begun, each way -- a worker that stops mid-message, or does not read the harness's
    answer (a pipeline writing requests without reading answers fills the socket both ways),
    is cut off then, not at the wall limit. ``proc`` is the worker's process (``poll()``,
    ``returncode``; bwrap reports a signal as 128 + its number), ``output`` returns the tail
    of its stdout and stderr.
    """

    def __init__(self, sock: socket.socket, proc: Any, deadline: float, timeout: float,
                 output: Callable[[], str] = lambda: "", max_payload: int = wire.MAX_PAYLOAD,
                 message_s: float = MESSAGE_TIMEOUT_S) -> None:
        self.sock, self.proc, self.deadline, self.timeout = sock, proc, deadline, timeout
        self.output, self.max_payload, self.message_s = output, max_payload, message_s

    def _timeout(self) -> SubmissionRejected:
        return SubmissionRejected(f"timeout: the run exceeded the board's limit of {self.timeout:g} s")

    def _late(self, what: str) -> SubmissionRejected:
        if time.monotonic() >= self.deadline:
            return self._timeout()
        return SubmissionRejected(f"stalled: the worker {what} for more than {self.message_s:g} s (the board's "
                                  "message_timeout_s)")

    def _message_deadline(self) -> float:
        return min(self.deadline, time.monotonic() + self.message_s)

    def send(self, msg: dict[str, Any]) -> None:
        """Send one message to the worker (it must read it within ``message_s``)."""
        try:
            wire.send(self.sock, msg, self._message_deadline())
        except TimeoutError:
            raise self._late("did not read the harness's message (a pipeline that writes requests without "
                             "reading the answers deadlocks the socket)") from None
        except OSError:
            raise SubmissionRejected(self._died()) from None

    def recv(self, check: Callable[[Any, list[Any]], None] | None = None,
             max_payload: int | None = None) -> tuple[str, tuple]:
        """The worker's next message as ``(op, args)``; its error reports become rejections.

        Args:
            check: ``check(msg, arrays)`` on the header before any payload is read (see
                :func:`~scoreboards.leaderboard.submission.wire.recv`); by default only the
                message's form is checked.
            max_payload: the largest payload accepted (default: the session's).
        """
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self._timeout()
            if wire.wait_readable(self.sock, min(left, 0.5)):
                try:
                    msg = wire.recv(self.sock, self._message_deadline(), max_payload or self.max_payload,
                                    check or (lambda m, arrays: request_form(m)))
                except wire.PeerClosed as e:
                    if e.partial:
                        raise SubmissionRejected(f"protocol violation: {e}") from None
                    raise SubmissionRejected(self._died()) from None
                except wire.WireError as e:
                    raise SubmissionRejected(f"protocol violation: malformed message: {e}") from None
                except TimeoutError:
                    raise self._late("stopped in the middle of a message") from None
                except OSError:
                    raise SubmissionRejected(self._died()) from None
                op, args = request_form(msg)
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


def request_form(msg: Any) -> tuple[str, tuple]:
    """``(op, args)`` of a message ``{"op": str, "args": [...]}``, or a protocol rejection."""
    if not (isinstance(msg, dict) and set(msg) <= {"op", "args"} and type(msg.get("op")) is str
            and len(msg["op"]) <= 40 and msg["op"].isidentifier() and type(msg.get("args", [])) is list):
        raise SubmissionRejected("protocol violation: malformed message: expected {\"op\": str, \"args\": [...]}")
    return msg["op"], tuple(msg.get("args", []))


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
    return _hash_array(a, weights).tolist()


def _hash_array(a: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (np.asarray(a).astype(np.uint64) * weights[: a.shape[1]]).sum(axis=1, dtype=np.uint64)


def _weights() -> np.ndarray:
    """Odd 64-bit weights of the issued prompts' row hashes, drawn per server from the OS's
    randomness: nobody can craft a row that hashes like an issued prompt."""
    return np.random.default_rng(secrets.randbits(128)).integers(1, 2**63, size=4096, dtype=np.uint64) | np.uint64(1)


def _ref(x: Any) -> int | None:
    """The array index of a ``{"$array": i}`` reference in a header, else None."""
    return x["$array"] if isinstance(x, dict) and len(x) == 1 and type(x.get("$array")) is int else None


@dataclass
class ExpertServer:
    """Answers the client: issues prompts, answers queries, enforces the budget.

    Every request is checked twice: :meth:`admit` on its header alone, before any payload is
    read (its form, argument types, dtypes, shapes, and what answering it would cost the harness,
    at most ``request_bytes``), then :meth:`handle` on its values (tokens in range, prompts
    issued, the budget). Whatever a request holds, the outcome is an answer or a
    :class:`SubmissionRejected` (a protocol violation or over budget), never another error.
    """

    expert: Any
    task: Any
    rng: np.random.Generator
    budget_trajectories: int
    budget_queries: int | None
    access: str = "full"
    top_k: int | None = None  # the board's k with access "topk"
    request_bytes: int = REQUEST_BYTES
    """Most bytes the harness may spend answering one request (a board's ``request_mb``)."""
    trajectories: int = 0
    queries: int = 0
    prefix_queries: int = 0  # single-prefix queries so far (probs / sample / log_prob on observations)
    issued_count: int = 0
    issued: set[int] = field(default_factory=set)
    weights: np.ndarray = field(default_factory=_weights)
    reserved: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    """Row hashes of prompts never issued for training (the held-out and curve sets; sorted)."""

    def reserve(self, prompts: np.ndarray) -> None:
        """Never issue these prompts for training (nor, so, answer the expert on them)."""
        self.reserved = np.union1d(self.reserved, _hash_array(prompts, self.weights))

    def issued_any(self, prompts: np.ndarray) -> bool:
        """Whether any of these prompts was issued for training."""
        return bool(self.issued.intersection(_row_hashes(prompts, self.weights)))

    # ----- what a request costs, checked from its header ------------------------------------
    @property
    def max_payload(self) -> int:
        """The largest request payload the harness reads at all."""
        return self.request_bytes

    def row_cost(self, op: str, k: int = 1) -> int:
        """Bytes the harness spends per row of request `op`: its int64 inputs, the answer and the
        expert's probabilities, times :data:`COST_FACTOR` (temporaries)."""
        t = self.task
        a, h, p = t.num_actions, t.horizon, t.prompt_len
        if op == "prompts":
            return 8 * p * COST_FACTOR + 64  # the rows and their hashes in the issued set
        if op in ("probs", "sample", "log_prob"):
            elems = t.obs_len + 1 + 2 * a
        else:
            elems = p + h + 2 * h * a + h * k
        return 8 * elems * COST_FACTOR

    def max_rows(self, op: str, k: int = 1) -> int:
        """Most rows one request `op` may have (its cost at most ``request_bytes``)."""
        return max(1, self.request_bytes // self.row_cost(op, k))

    def admit(self, msg: Any, arrays: list[tuple[np.dtype, tuple[int, ...]]]) -> None:
        """Check a request from its header, before its payload is read (see the class docstring).

        Args:
            msg: the header's value, with ``{"$array": i}`` standing for array i.
            arrays: each array's (dtype, shape), as declared.
        """
        op, args = request_form(msg)
        if op in ("done", "error"):
            if arrays:
                raise SubmissionRejected(f"protocol violation: `{op}` carries no arrays")
            return
        if op == "prompts":
            if arrays:
                raise SubmissionRejected("protocol violation: `prompts` carries no arrays")
            self._count(args)
            return
        if op not in QUERY_OPS:
            raise SubmissionRejected(f"protocol violation: unknown request `{op}` (the client offers "
                                     f"prompts, {', '.join(QUERY_OPS)})")
        self._access(op)
        names = REQUEST_ARGS[op]
        if len(args) != len(names):
            raise SubmissionRejected(f"protocol violation: `{op}` takes {len(names)} argument(s) "
                                     f"({', '.join(names)}), got {len(args)}")
        refs = [_ref(a) for a, name in zip(args, names) if name != "k"]
        if None in refs or sorted(refs) != list(range(len(arrays))):
            raise SubmissionRejected(f"protocol violation: `{op}` takes {len(refs)} integer array(s) "
                                     f"({', '.join(n for n in names if n != 'k')}), each sent once")
        k = self._k(args[2]) if op == "sample_along" else 1
        t = self.task
        width = {"obs": t.obs_len, "prompts": t.prompt_len, "chain": t.horizon}
        rows = None
        for name, i in zip((n for n in names if n != "k"), refs):
            dtype, shape = arrays[i]
            want = (width[name],) if name in width else ()
            if dtype.kind not in "iu" or len(shape) != 1 + len(want) or tuple(shape[1:]) != want:
                raise SubmissionRejected(f"protocol violation: `{name}` must be an integer array of shape "
                                         f"(N, {', '.join(map(str, want))})".replace(", )", ")")
                                         + f", got {dtype.str} {tuple(shape)}")
            if rows is not None and shape[0] != rows:
                raise SubmissionRejected(f"protocol violation: `{op}`'s arrays have {rows} and {shape[0]} rows")
            rows = shape[0]
        if not rows:
            raise SubmissionRejected(f"protocol violation: `{op}` needs at least one row")
        if rows > self.max_rows(op, k):
            raise SubmissionRejected(f"protocol violation: request too large: `{op}` on {rows:,} rows would "
                                     f"cost the harness about {rows * self.row_cost(op, k) >> 20:,} MiB, more than "
                                     f"the board's {self.request_bytes >> 20:,} MiB per request (at most "
                                     f"{self.max_rows(op, k):,} rows): send smaller batches")

    def _count(self, args: tuple) -> int:
        n = args[0] if len(args) == 1 else None
        if type(n) is not int or n <= 0:
            raise SubmissionRejected(f"protocol violation: prompts(n) needs an integer n > 0, got "
                                     f"{_printable(repr(n))[:40]}")
        limit = ISSUE_FACTOR * self.budget_trajectories + ISSUE_MARGIN
        if self.issued_count + n > limit:
            raise SubmissionRejected(f"protocol violation: asked for more than {limit:,} prompts "
                                     f"({ISSUE_FACTOR}x the trajectory budget + {ISSUE_MARGIN:,})")
        if n > self.max_rows("prompts"):
            raise SubmissionRejected(f"protocol violation: request too large: prompts({n:,}); at most "
                                     f"{self.max_rows('prompts'):,} per request")
        return n

    def _k(self, k: Any) -> int:
        if type(k) is not int or not 1 <= k <= MAX_SAMPLES_PER_PREFIX:
            raise SubmissionRejected(f"protocol violation: sample_along needs an integer k in "
                                     f"[1, {MAX_SAMPLES_PER_PREFIX}] samples per prefix, got "
                                     f"{_printable(repr(k))[:40]}")
        return k

    def _access(self, op: str) -> None:
        if op in PROB_OPS and self.access == "topk":
            raise SubmissionRejected(f"protocol violation: `{op}` refused: this board's expert answers top-k and "
                                     "samples (access = \"topk\"); use topk, topk_along, sample, sample_along or "
                                     "rollout (check expert.access first)")
        if (op in PROB_OPS or op in TOPK_OPS) and self.access == "sample":
            raise SubmissionRejected(f"protocol violation: `{op}` refused: this board's expert is sample-only "
                                     "(access = \"sample\"); use sample, sample_along or rollout (check "
                                     "expert.access first)")

    # ----- values ---------------------------------------------------------------------------
    def _arr(self, x: Any, name: str, ndim: int, high: int) -> np.ndarray:
        """`x` as int64, if it is an integer array of `ndim` dimensions, at least one row, with
        every value in [0, high)."""
        if (not isinstance(x, np.ndarray) or x.ndim != ndim or x.dtype.kind not in "iu"
                or x.dtype.itemsize > 8 or not x.shape[0]):
            raise SubmissionRejected(f"protocol violation: `{name}` must be an integer array with {ndim} "
                                     f"dimensions and at least one row, got {type(x).__name__} "
                                     f"{getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >= high):
            raise SubmissionRejected(f"protocol violation: `{name}` holds values outside [0, {high})")
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
        """n fresh training prompts from the task's distribution without the reserved ones."""
        n = self._count(args)
        parts, have = [], 0
        for _ in range(1000):  # a board keeps its reserved prompts to a quarter of the space (board_model)
            if have >= n:
                break
            p = self.task.sample_prompts(self.rng, n - have)
            if self.reserved.size:
                p = p[~np.isin(_hash_array(p, self.weights), self.reserved)]
            parts.append(p)
            have += p.shape[0]
        else:
            raise RuntimeError("the reserved prompts fill the prompt space: the board should have been refused")
        p = np.concatenate(parts) if len(parts) > 1 else parts[0]
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
        self._access(op)
        task, h = self.task, self.task.horizon
        if len(args) != len(REQUEST_ARGS[op]):
            raise SubmissionRejected(f"protocol violation: `{op}` takes {len(REQUEST_ARGS[op])} argument(s) "
                                     f"({', '.join(REQUEST_ARGS[op])}), got {len(args)}")
        try:
            if op in TOPK_OPS:
                return self._topk(op, args)
            if op in ("probs", "sample", "log_prob"):
                obs = self._arr(args[0], "observations", 2, task.vocab_size)
                if obs.shape[1] != task.obs_len:
                    raise SubmissionRejected(f"protocol violation: observations must have {task.obs_len} tokens, "
                                             f"got {obs.shape[1]}")
                if hasattr(task, "validate_obs"):
                    task.validate_obs(obs)
                self._check_issued(obs[:, : task.prompt_len])
                acts = None
                if op == "log_prob":
                    acts = self._arr(np.asarray(args[1]).reshape(-1), "actions", 1, task.num_actions)
                    if acts.shape[0] != obs.shape[0]:
                        raise SubmissionRejected(f"protocol violation: log_prob needs one action per observation, "
                                                 f"got {acts.shape[0]} for {obs.shape[0]}")
                self._charge_prefixes(obs.shape[0])
                if op == "probs":
                    return self.expert.probs(obs).astype(np.float32)
                if op == "sample":
                    return self.expert.sample(obs)
                return self.expert.log_prob(obs, acts)
            prompts = self._arr(args[0], "prompts", 2, task.vocab_size)
            self._check_issued(prompts)
            n = prompts.shape[0]
            if op == "probs_along":
                chain = self._arr(args[1], "chain", 2, task.num_actions)
                if chain.shape != (n, h):
                    raise SubmissionRejected(f"protocol violation: probs_along needs complete chains "
                                             f"({n}, {h}), got {chain.shape}")
                self._charge(n, n * h)
                return self.expert.probs_along(prompts, chain).astype(np.float32)
            if op == "sample_along":
                chain = self._arr(args[1], "chain", 2, task.num_actions)
                k = self._k(args[2])
                if chain.shape != (n, h):
                    raise SubmissionRejected(f"protocol violation: sample_along needs complete chains "
                                             f"({n}, {h}), got {chain.shape}")
                self._charge(n, k * n * h)  # one trajectory per chain, k queries per prefix
                return self.expert.sample_along(prompts, chain, k)
            self._charge(n, n * h)
            chain = self.expert.rollout(prompts, generator=self.rng)
            if self.access != "full":  # the chain only: its distributions are not for this board
                return chain, None
            return chain, self.expert.probs_along(prompts, chain).astype(np.float32)
        except (ValueError, IndexError, TypeError) as e:
            raise SubmissionRejected(f"protocol violation: malformed `{op}` request: "
                                     f"{_printable(str(e))[:300]}") from None

    def _topk(self, op: str, args: tuple) -> list[np.ndarray]:
        """``topk(obs, k)`` / ``topk_along(prompts, chain, k)``: [ids int64, log-probabilities float32], charged
        like ``probs`` / ``probs_along`` (one query per prefix)."""
        task, h = self.task, self.task.horizon
        k = args[-1] if len(args) >= 2 else None
        cap = self.top_k if self.access == "topk" else task.num_actions
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= cap:
            raise SubmissionRejected(f"protocol violation: `{op}` needs an integer k in [1, {cap}] (this board's "
                                     f"expert has access = \"{self.access}\"), got {k!r}")
        if op == "topk":
            obs = self._arr(args[0], "observations", 2, task.vocab_size)
            self._check_issued(obs[:, : task.prompt_len])
            self._charge_prefixes(obs.shape[0])
            t = self.expert.topk(obs, k)
        else:
            prompts = self._arr(args[0], "prompts", 2, task.vocab_size)
            self._check_issued(prompts)
            chain = self._arr(args[1], "chain", 2, task.num_actions)
            n = prompts.shape[0]
            if chain.shape != (n, h):
                raise SubmissionRejected(f"protocol violation: topk_along needs complete chains ({n}, {h}), got "
                                         f"{chain.shape}")
            self._charge(n, n * h)
            t = self.expert.topk_along(prompts, chain, k)
        return [np.asarray(t.ids, dtype=np.int64), np.asarray(t.logprobs, dtype=np.float32)]
