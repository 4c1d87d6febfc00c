"""Verified submissions: a user's algorithm trains and acts in a separate worker process.

The submission interface
========================

A submission is a class (``module:Class`` or ``path/to/file.py:Class``)::

    class MyAlgo:
        def __init__(self, spec: dict) -> None:
            '''spec: the board's public facts -- board, env_id, env_kwargs, seed,
            vocab_size, num_actions, horizon (H), prompt_len (P), obs_len,
            pad_token, budget_trajectories, budget_queries.'''

        def train(self, expert: ExpertClient) -> None:
            '''Learn from the noisy expert, within the budget.'''

        def act(self, observations: np.ndarray) -> np.ndarray:
            '''Greedy next actions (N,) ints in [0, num_actions) for prefixes (N, obs_len).'''

During ``train`` the submission sees only what :class:`ExpertClient` offers:

- ``expert.prompts(n)``: n fresh training prompts (N, P) drawn by the harness;
- the noisy expert on prefixes of those prompts (and only those):
  ``probs(obs)``, ``sample(obs)``, ``log_prob(obs, actions)`` for single prefixes
  (N, obs_len), ``probs_along(prompts, chain)`` at every prefix of complete chains
  (N, H), ``sample_along(prompts, chain, k)`` (k samples at every prefix: (N, H, k)),
  ``rollout(prompts)`` for the expert's own rollouts; ``topk(obs, k)`` and
  ``topk_along(prompts, chain, k)`` (the k most likely tokens and their
  log-probabilities, ties in increasing id: ``.ids``, ``.logprobs``; counted like
  ``probs`` / ``probs_along``); ``expert.access`` is ``full``, ``topk`` on a top-k
  board (``[env] access = "topk"``, ``expert.top_k`` = the board's k, the most a
  ``topk`` request may ask), or ``sample`` on a sample-only board; what the mode does
  not answer (``probs``, ``probs_along``, ``log_prob``; and ``topk*`` on sample-only
  boards) raises :class:`ExpertAccessError` in the client (and ends the run if sent
  past it);
- ``expert.observe(prompts, chain)``: the observation layout (prompt, chain, pad);
- the budget: ``trajectories``, ``queries`` (spent), ``trajectories_left``,
  ``queries_left``, ``num_queries``.

Arrays may be numpy arrays or torch tensors (answers come back as the same kind, on
the same device). Costs, counted by the harness: every prefix answered is one
query (``sample_along`` with k samples: k queries per prefix); every complete chain
queried (a row of ``probs_along``, ``sample_along`` or ``rollout``) is one expert
trajectory, and so is every H single-prefix queries (``probs``, ``sample``, ``log_prob``
on observations; the running total rounded up: labelling prefixes one step at a time,
as DAgger does, spends the trajectory budget at the same rate as whole chains; k samples
of one prefix by ``sample`` cost k queries, by ``sample_along(..., k)`` one); a ``probs_along`` on the chains of the last ``rollout`` is free (the
rollout already computed those distributions; not on sample-only boards). A request that
would exceed either budget ends the run as invalid -- check ``*_left`` first.

After ``train`` returns, the harness evaluates: it samples held-out prompts from
evaluation seeds that the submission never sees -- prompts it never issued for training
(the expert was never asked about them) and never showed before -- and builds greedy
chains by calling ``act`` step by step. The score (greedy full-chain exact match by
default) is computed by the harness. The harness also calls ``act`` while the submission
trains, at equal fractions of the trajectory budget (``[eval] curve_points``), for the
entry's learning curve, on a separate, unscored set of prompts (also never issued); an
``act`` that fails then only loses that point.

On a hidden-rule board (:mod:`scoreboards.leaderboard.hidden`) the task is a secret instance of
its family drawn for each training seed; the spec carries only the public kwargs. Crashes, timeouts, wrong interfaces, over-budget
runs, malformed answers and protocol violations (a query on a prompt the harness
did not issue, an unknown request) reject the submission with a reason.

The worker runs in an OS sandbox (:mod:`scoreboards.leaderboard.submission.sandbox`: bubblewrap, no network,
its own PID namespace, a read-only minimal view of the files, resource limits), and
its only channel out is one socket to the harness, spoken in
:mod:`~scoreboards.leaderboard.submission.wire` (length-prefixed JSON headers and raw numeric
arrays; the harness never unpickles). Where no sandbox can be set up,
:func:`run_submission` refuses (:class:`~scoreboards.leaderboard.submission.sandbox.SandboxUnavailable`)
unless called with ``sandbox="none"`` or inside :func:`unsandboxed` (``neg submit
--no-sandbox``, for one's own code); each run records which (``RunOutcome.sandbox``).
Every worker may import the project's packages (read-only in the sandbox): a submission
may build on the shipped student, trainer and losses.

The package, one job per module
===============================

- :mod:`~scoreboards.leaderboard.submission.client`: :class:`ExpertClient`, the worker-side view;
- :mod:`~scoreboards.leaderboard.submission.worker`: the worker process (its own limits, the
  import guard, loading the target, the interface check, train then act);
- :mod:`~scoreboards.leaderboard.submission.server`: the harness end of the socket
  (:class:`Session`) and :class:`ExpertServer` (issues prompts, answers, budgets);
- :mod:`~scoreboards.leaderboard.submission.wire`: the message format on the socket;
- :mod:`~scoreboards.leaderboard.submission.scoring`: the harness's evaluation of ``act``;
- here: :func:`run_submission`, one run from start to score. The harness builds the
  board's problem once (``noisy_expert_gym.make_problem``) and serves its experts.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoreboards.leaderboard.submission.client import (
    BudgetExceeded,
    ExpertAccessError,
    ExpertClient,
    ProtocolError,
)
from scoreboards.leaderboard.submission.scoring import (
    ACT_CHUNK,
    LearningCurve,
    curve_prompts,
    evaluate_greedy,
    held_out_prompts,
)
from scoreboards.leaderboard.submission.server import (
    ISSUE_FACTOR,
    ISSUE_MARGIN,
    PROB_OPS,
    QUERY_OPS,
    ExpertServer,
    Session,
    SubmissionRejected,
)
from scoreboards.leaderboard.submission.worker import check_interface, load_target

#: The sandbox mode of runs that do not name one (see :func:`unsandboxed`).
_SANDBOX: ContextVar[str] = ContextVar("neg_submission_sandbox", default="bwrap")


@contextmanager
def unsandboxed() -> Iterator[None]:
    """Run the submissions started in this block without a sandbox (``neg submit
    --no-sandbox``: one's own code only); their runs record ``sandbox = "none"``."""
    token = _SANDBOX.set("none")
    try:
        yield
    finally:
        _SANDBOX.reset(token)


@dataclass
class RunOutcome:
    """One accepted run of a submission: the harness's scores and the budget spent."""

    seed: int
    metrics: dict[str, float]
    trajectories: int
    queries: int
    wall_time: float
    train_time: float
    sandbox: str
    """How the worker was isolated: ``"bwrap"``, or ``"none"`` (unverified)."""
    curve: list[dict[str, float]] = field(default_factory=list)
    """The harness's evaluations during training, then the score's: trajectories, queries, metrics."""


def public_spec(board: Any, task: Any, seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a submission is told: the board's public facts (never its evaluation seeds, nor
    the hidden kwargs of a hidden-rule board)."""
    return {
        "board": board.name, "env_id": board.env_id, "env_kwargs": dict(board.env_kwargs), "seed": seed,
        "rule": board.rule, "hidden": list(board.hidden), "access": board.access,
        "vocab_size": task.vocab_size, "num_actions": task.num_actions, "horizon": task.horizon,
        "prompt_len": task.prompt_len, "obs_len": task.obs_len, "pad_token": task.pad_token,
        "budget_trajectories": board.budget_trajectories, "budget_queries": board.budget_queries,
        **({"top_k": board.top_k} if board.access == "topk" else {}),  # a top-k board's k (public)
        **(extra or {}),
    }


def _serve(session: Session, server: ExpertServer, curve: LearningCurve | None = None) -> None:
    """Answer the worker's requests until it reports that training is done."""
    while True:
        op, args = session.recv(check=server.admit)  # its form and cost, from its header
        if op == "done":
            return
        if curve is not None:  # the worker waits for this answer: evaluate its act first when due
            curve.maybe_measure(session, server)
        try:
            answer = server.handle(op, args)
        except SubmissionRejected as e:
            session.send({"op": "over_budget" if e.reason.startswith("over budget") else "rejected",
                          "reason": e.reason})
            raise
        session.send({"op": "ok", "answer": answer, "trajectories": server.trajectories,
                      "queries": server.queries})


def run_submission(board: Any, target: str, seed: int, clean: bool = False,
                   extra_spec: dict[str, Any] | None = None, timeout: float | None = None,
                   sandbox: str | None = None, secret: bytes | None = None,
                   protect: list[Any] | tuple[Any, ...] = ()) -> RunOutcome:
    """Train and evaluate one run of a submission under the board's protocol.

    Args:
        board: a :class:`~scoreboards.leaderboard.board_model.Board` (its ``timeout_s`` and optional
            sandbox limits, :meth:`~scoreboards.leaderboard.submission.sandbox.Limits.for_board`).
        target: ``module:Class`` or ``path/to/file.py:Class``.
        seed: the training seed (the harness's prompt and expert RNGs derive from it).
        clean: serve the clean expert (the ``bc-clean`` reference ceiling only).
        extra_spec: extra public spec entries (the built-in adapter's algorithm).
        timeout: wall-clock limit in seconds (default: the board's).
        sandbox: ``"bwrap"`` or ``"none"`` (default: ``"bwrap"``, or ``"none"`` inside
            :func:`unsandboxed`).
        secret: the harness's secret (hidden-rule boards: :mod:`scoreboards.leaderboard.hidden`).
        protect: results folders the sandbox must never show (the default one always is).

    Raises:
        SubmissionRejected: with the reason.
        SandboxUnavailable: no sandbox can be set up here (the message says how to enable one).
    """
    from noisy_expert_gym import make_problem
    from scoreboards.leaderboard.hidden import instance
    from scoreboards.leaderboard.submission.sandbox import Limits, launch

    limits = Limits.for_board(board, timeout)
    mode = sandbox or _SANDBOX.get()
    # The task instance (hidden kwargs drawn from the secret) and the harness's random streams:
    # the noisy expert's draws, the training prompts, the held-out evaluation prompts.
    run = instance(board, seed, secret)
    problem = make_problem(board.env_id, **run.env_kwargs).with_rng(np.random.default_rng(run.expert_seed))
    task = problem.task
    server = ExpertServer(problem.clean_expert if clean else problem.expert, task,
                          np.random.default_rng(run.prompt_seed), board.budget_trajectories,
                          board.budget_queries, access=board.access, top_k=board.top_k, request_bytes=limits.request_mb << 20)
    # The scored prompts and the curve's, reserved before training: never issued, so never answered
    # by the expert; the scored ones are shown to `act` only after `train` returns.
    eval_prompts = held_out_prompts(task, run.eval_seeds, board.eval_prompts)
    shown = curve_prompts(task, run.curve_seed, board.curve_prompts, apart_from=eval_prompts)
    server.reserve(eval_prompts)
    server.reserve(shown)
    curve = LearningCurve(task, shown, board.budget_trajectories, board.curve_points)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        theirs.set_inheritable(True)
        worker = launch(target, limits, theirs.fileno(), mode, protect)
    except ValueError as e:
        ours.close()
        raise SubmissionRejected(f"malformed submission: {e}") from None
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    t0 = time.monotonic()
    session = Session(ours, worker.proc, t0 + limits.wall_s, limits.wall_s, worker.output.text,
                      max_payload=server.max_payload, message_s=limits.message_s)
    try:
        session.send({**worker.start, "spec": public_spec(board, task, seed, extra_spec)})
        _serve(session, server, curve)
        train_time = time.monotonic() - t0
        if server.issued_any(eval_prompts):  # never: the server draws training prompts around them
            raise RuntimeError("a held-out prompt was issued for training")
        metrics = evaluate_greedy(session, task, eval_prompts)  # the score, then the curve's last point
        points = [*curve.values, {"trajectories": server.trajectories, "queries": server.queries,
                                  **evaluate_greedy(session, task, shown)}]
        out = RunOutcome(seed=seed, metrics=metrics, trajectories=server.trajectories, queries=server.queries,
                         wall_time=time.monotonic() - t0, train_time=train_time, sandbox=mode, curve=points)
        try:  # let an accepted worker exit by itself (a rejected one is simply killed)
            session.deadline = time.monotonic() + 2
            session.send({"op": "exit"})
            worker.proc.wait(2)
        except (SubmissionRejected, OSError, subprocess.TimeoutExpired):
            pass
        return out
    except SubmissionRejected as e:
        if worker.oom_killed():  # the kernel stopped a process of the sandbox: say so, whatever followed
            raise SubmissionRejected(f"crashed: the sandbox ran out of memory (the board's memory_mb = "
                                     f"{limits.memory_mb} MiB for all its processes together); then: "
                                     f"{e.reason}") from None
        raise
    finally:
        worker.kill()
        ours.close()


__all__ = [
    "ACT_CHUNK",
    "ISSUE_FACTOR",
    "ISSUE_MARGIN",
    "PROB_OPS",
    "QUERY_OPS",
    "BudgetExceeded",
    "ExpertAccessError",
    "ExpertClient",
    "ExpertServer",
    "LearningCurve",
    "ProtocolError",
    "RunOutcome",
    "Session",
    "SubmissionRejected",
    "check_interface",
    "curve_prompts",
    "evaluate_greedy",
    "held_out_prompts",
    "load_target",
    "public_spec",
    "run_submission",
    "unsandboxed",
]
