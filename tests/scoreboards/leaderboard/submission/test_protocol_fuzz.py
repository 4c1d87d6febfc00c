"""Every malformed message is a protocol rejection, never an internal error (issue 23, finding 8).

Hypothesis writes frames onto the socket -- well-formed headers with wrong types (bools for
counts, floats, strings, nested values), array descriptions with wrong dtypes, zero, negative or
huge dimensions, too many or unreferenced arrays, truncated payloads, and raw bytes -- and the
harness end reads each as it does in a run (``Session.recv`` checking the request from its
header, then ``ExpertServer.handle``). Each ends in an answer (a valid request) or a
:class:`SubmissionRejected` whose reason is a protocol violation or the budget, and no request
makes the harness allocate more than its per-request bound.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisy_expert_gym import make_problem
from scoreboards.leaderboard.submission import wire
from scoreboards.leaderboard.submission.server import (
    QUERY_OPS,
    ExpertServer,
    Session,
    SubmissionRejected,
)

PROBLEM = make_problem("NoisyModAdd-v0", p=7, m=3, eta=0.2)
TASK = PROBLEM.task
#: What a rejection may say: the request broke the protocol, or would exceed the budget, or (an
#: `error` message: the worker's own crash report) the submission crashed.
REJECTIONS = ("protocol violation: ", "over budget: ", "crashed in ", "malformed submission: ", "wrong interface: ")


class _Alive:
    """The worker process as the session sees it: running."""

    returncode = None

    def poll(self):
        return None

    def wait(self, timeout=None):
        return 0


def _harness_reads(frame: bytes, server: ExpertServer) -> tuple[str, object]:
    """Write `frame` as the worker and read it as the harness does; ("answer" | "rejected", detail)."""
    a, b = socket.socketpair()
    with a, b:
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        try:
            b.sendall(frame[: 1 << 20])
        except OSError:
            pass
        b.shutdown(socket.SHUT_WR)  # a truncated frame ends, instead of stalling
        session = Session(a, _Alive(), time.monotonic() + 10, 10, message_s=2, max_payload=server.max_payload)
        try:
            op, args = session.recv(check=server.admit)
            if op in ("done", "error", "act_failed"):
                return "answer", op
            return "answer", server.handle(op, args)
        except SubmissionRejected as e:
            return "rejected", e.reason


def _server() -> ExpertServer:
    srv = ExpertServer(PROBLEM.expert, TASK, np.random.default_rng(0), budget_trajectories=4096,
                       budget_queries=None, request_bytes=4 << 20)
    srv.issued_prompts = srv.handle("prompts", (8,))
    return srv


def frame(header: object, payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<I", len(raw)) + raw + payload


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                         st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                              max_size=3),
                           max_leaves=8)
dims = st.one_of(st.integers(0, 9), st.integers(-3, -1), st.integers(2**20, 2**62), st.booleans(),
                 st.floats(0, 10), st.just(TASK.prompt_len), st.just(TASK.obs_len), st.just(TASK.horizon))
dtypes = st.one_of(st.sampled_from(sorted(wire.DTYPES)), st.sampled_from(["|O", "<U4", ">i8", "<c8", "V8", ""]),
                   json_scalars)
array_desc = st.fixed_dictionaries({"dtype": dtypes, "shape": st.one_of(st.lists(dims, max_size=5), json_scalars)})
ops = st.one_of(st.sampled_from(["prompts", *QUERY_OPS, "done", "error", "act", "clean_probs"]), st.text(max_size=12))


@st.composite
def requests(draw) -> bytes:
    arrays = draw(st.lists(array_desc, max_size=4))
    n_refs = draw(st.integers(0, 4))
    args = draw(st.lists(st.one_of(json_values, st.builds(lambda i: {"$array": i}, st.integers(-1, 5))),
                         max_size=4))
    args = [{"$array": i} for i in range(n_refs)][: len(arrays)] + args[: max(0, 3 - n_refs)]
    msg = draw(st.one_of(st.fixed_dictionaries({"op": ops, "args": st.just(args)}), json_values))
    header = {"msg": msg, "arrays": arrays}
    declared = 0
    for a in arrays:
        try:
            declared += int(np.prod([int(d) for d in a["shape"]])) * np.dtype(a["dtype"]).itemsize
        except (TypeError, ValueError, OverflowError):
            pass
    size = draw(st.one_of(st.just(max(0, min(declared, 1 << 16))), st.integers(0, 256)))
    payload = draw(st.binary(min_size=size, max_size=size)) if size <= 256 else bytes(size)
    return frame(header, payload)


@st.composite
def well_typed(draw) -> bytes:
    """Requests of the right form with wrong values: rows, tokens, shapes, dtypes, k."""
    op = draw(st.sampled_from(["probs", "sample", "log_prob", "probs_along", "sample_along", "rollout"]))
    n = draw(st.integers(0, 9))
    width = {"probs": TASK.obs_len, "sample": TASK.obs_len, "log_prob": TASK.obs_len}.get(op, TASK.prompt_len)
    dtype = draw(st.sampled_from(["<i8", "<i4", "|u1", "<u8", "|i1", "<f4", "|b1"]))
    lo, hi = draw(st.sampled_from([(0, TASK.vocab_size), (-5, 0), (TASK.vocab_size, 2**31), (0, 2)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))

    def arr(shape):
        a = rng.integers(lo, hi, size=shape).astype(np.dtype(dtype))
        return {"dtype": dtype, "shape": list(shape)}, a.tobytes()

    parts = [arr((n, draw(st.sampled_from([width, width + 1, 0]))))]
    if op == "log_prob":
        parts.append(arr((draw(st.sampled_from([n, n + 1])),)))
    if op in ("probs_along", "sample_along"):
        parts.append(arr((n, draw(st.sampled_from([TASK.horizon, TASK.horizon - 1])))))
    args = [{"$array": i} for i in range(len(parts))]
    if op == "sample_along":
        args.append(draw(st.one_of(st.integers(-2, 2000), st.booleans(), st.floats(0, 3), st.none())))
    return frame({"msg": {"op": op, "args": args}, "arrays": [p[0] for p in parts]}, b"".join(p[1] for p in parts))


def _check(frame_bytes: bytes) -> None:
    outcome, detail = _harness_reads(frame_bytes, _server())
    if outcome == "rejected":
        closed = not frame_bytes and detail.startswith("crashed: the worker process died")  # no message at all
        assert detail.startswith(REJECTIONS) or closed, detail
        assert all(c.isprintable() for c in detail), detail


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_malformed_requests_are_protocol_rejections(frame_bytes):
    _check(frame_bytes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(well_typed())
def test_requests_with_wrong_values_are_protocol_rejections(frame_bytes):
    _check(frame_bytes)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_raw_bytes_are_protocol_rejections(raw):
    _check(raw)


@pytest.mark.parametrize("args, why", [
    ([True], "prompts(n) needs an integer n"),
    ([0], "prompts(n) needs an integer n"),
    ([2.0], "prompts(n) needs an integer n"),
    (["3"], "prompts(n) needs an integer n"),
    ([1, 2], "prompts(n) needs an integer n"),
    ([10**9], "asked for more than"),
])
def test_prompt_counts(args, why):
    outcome, detail = _harness_reads(frame({"msg": {"op": "prompts", "args": args}, "arrays": []}), _server())
    assert outcome == "rejected" and detail.startswith("protocol violation: ") and why in detail, detail


def test_huge_dimensions_are_refused_from_the_header():
    """Declared dimensions are checked before a byte of payload is read or allocated."""
    for shape in ([2**40, TASK.obs_len], [2**62, 2**62], [3, 2**61]):
        outcome, detail = _harness_reads(frame({"msg": {"op": "probs", "args": [{"$array": 0}]},
                                                "arrays": [{"dtype": "<i8", "shape": shape}]}), _server())
        assert outcome == "rejected" and detail.startswith("protocol violation: "), detail


def test_a_valid_request_is_answered():
    srv = _server()
    p = srv.issued_prompts
    obs = TASK.observe(p, p[:, :0])
    outcome, answer = _harness_reads(frame({"msg": {"op": "probs", "args": [{"$array": 0}]},
                                            "arrays": [{"dtype": "<i8", "shape": list(obs.shape)}]},
                                           obs.astype("<i8").tobytes()), srv)
    assert outcome == "answer" and answer.shape == (8, TASK.num_actions), answer


def _header(op: str, n: int, k: int = 1) -> tuple[dict, list]:
    """A request header for `op` on `n` rows: (msg, [(dtype, shape), ...])."""
    names = [a for a in {"probs": ["obs"], "sample": ["obs"], "log_prob": ["obs", "actions"],
                         "probs_along": ["prompts", "chain"], "sample_along": ["prompts", "chain"],
                         "rollout": ["prompts"], "topk": ["obs"], "topk_along": ["prompts", "chain"]}[op]]
    shape = {"obs": (n, TASK.obs_len), "actions": (n,), "prompts": (n, TASK.prompt_len), "chain": (n, TASK.horizon)}
    msg = {"op": op, "args": [{"$array": i} for i in range(len(names))] + ([k] if op in ("sample_along", "topk", "topk_along") else [])}
    return msg, [(np.dtype("<i8"), shape[a]) for a in names]


@pytest.mark.parametrize("op", list(QUERY_OPS))
def test_the_largest_admitted_request_costs_at_most_the_bound(op):
    """The cost model holds: answering a request of the most rows admitted allocates at most the
    board's per-request bound (tracemalloc follows numpy's allocations), payload included; one
    more row is refused from the header."""
    import tracemalloc

    bound = 16 << 20
    srv = ExpertServer(PROBLEM.expert, TASK, np.random.default_rng(0), budget_trajectories=10**9,
                       budget_queries=None, request_bytes=bound)
    k = 4 if op == "sample_along" else 1
    n = srv.max_rows(op, k)
    srv.admit(*_header(op, n, k))
    with pytest.raises(SubmissionRejected, match="request too large"):
        srv.admit(*_header(op, n + 1, k))
    per = srv.max_rows("prompts")
    p = np.concatenate([srv.handle("prompts", (per,)) for _ in range(-(-n // per))])[:n]
    chain = TASK.clean_chains(p)
    obs = TASK.observe(p, chain[:, :1])
    args = {"probs": (obs,), "sample": (obs,), "log_prob": (obs, chain[:, 1]), "probs_along": (p, chain),
            "sample_along": (p, chain, k), "rollout": (p,), "topk": (obs, TASK.num_actions),
            "topk_along": (p, chain, TASK.num_actions)}[op]
    payload = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
    tracemalloc.start()
    try:
        srv.handle(op, args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak + payload <= bound, f"{op}: {n:,} rows cost {peak + payload:,} bytes, bound {bound:,}"
