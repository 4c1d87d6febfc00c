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
  (N, H), ``rollout(prompts)`` for the expert's own rollouts;
- ``expert.observe(prompts, chain)``: the observation layout (prompt, chain, pad);
- the budget: ``trajectories``, ``queries`` (spent), ``trajectories_left``,
  ``queries_left``, ``num_queries``.

Arrays may be numpy arrays or torch tensors (answers come back as the same kind, on
the same device). Costs, counted by the harness: every prefix answered is one
query; every complete chain queried (a row of ``probs_along`` or ``rollout``) is
one expert trajectory; a ``probs_along`` on the chains of the last ``rollout``
is free (the rollout already computed those distributions). A request that
would exceed either budget ends the run as invalid -- check ``*_left`` first.

After ``train`` returns, the harness evaluates: it samples held-out prompts from
evaluation seeds that the submission never sees, and builds greedy chains by
calling ``act`` step by step. The score (greedy full-chain exact match by default)
is computed by the harness. Crashes, timeouts, wrong interfaces, over-budget
runs, malformed answers and protocol violations (a query on a prompt the harness
did not issue, an unknown request) reject the submission with a reason.

The worker cannot import ``noisy_expert_gym`` (the env package holding the clean
expert): a guard against accidental peeking, not a security sandbox -- run
untrusted code in a container.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Requests a worker may send while training; anything else is a protocol violation.
QUERY_OPS = ("probs", "sample", "log_prob", "probs_along", "rollout")
#: Prompts a submission may draw, as a multiple of its trajectory budget (plus a margin).
ISSUE_FACTOR, ISSUE_MARGIN = 4, 20_000
#: Rows per `act` request during evaluation.
ACT_CHUNK = 4096
BLOCKED_PACKAGES = ("noisy_expert_gym",)


class SubmissionRejected(Exception):
    """A submission run that cannot enter the board; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BudgetExceeded(RuntimeError):
    """Raised in the worker when the harness refused a request that exceeds the budget."""


class ProtocolError(RuntimeError):
    """Raised in the worker when the harness refused a request (and ended the run)."""


# =============================================================================== worker side
def _to_numpy(x: Any) -> tuple[Any, Any]:
    """(numpy array, torch device or None) for a numpy array or torch tensor."""
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy(), x.device
    return np.asarray(x), None


def _like(x: np.ndarray, device: Any) -> Any:
    if device is None:
        return x
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if t.dtype == torch.float64:
        t = t.float()
    return t.to(device)


class ExpertClient:
    """The submission's only view of the expert: requests over a pipe, counted by the harness."""

    def __init__(self, conn: Any, spec: dict[str, Any]) -> None:
        self._conn = conn
        self.spec = dict(spec)
        self.budget_trajectories: int = spec["budget_trajectories"]
        self.budget_queries: int | None = spec.get("budget_queries")
        self.trajectories = 0
        self.queries = 0
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
        self._conn.send((op, args))
        kind, payload = self._conn.recv()
        if kind == "ok":
            answer, self.trajectories, self.queries = payload
            return answer
        if kind == "over_budget":
            raise BudgetExceeded(payload)
        raise ProtocolError(payload)

    # ----- prompts and observations -----------------------------------------------
    def prompts(self, n: int, device: Any = None) -> Any:
        """n fresh training prompts (N, P); a torch tensor on `device` when one is given."""
        p = self._call("prompts", int(n))
        return _like(p, device) if device is not None else p

    def observe(self, prompts: Any, chain: Any) -> Any:
        """Observations (N, obs_len): prompt, the chain so far, then padding."""
        p, dev = _to_numpy(prompts)
        c, _ = _to_numpy(chain)
        pad = np.full((p.shape[0], self.spec["obs_len"] - p.shape[1] - c.shape[1]), self.spec["pad_token"])
        return _like(np.concatenate([p, c.astype(p.dtype), pad.astype(p.dtype)], axis=1), dev)

    # ----- the expert (the same methods as noisy_expert_gym.Expert) ------------------
    def probs(self, obs: Any) -> Any:
        o, dev = _to_numpy(obs)
        return _like(self._call("probs", o), dev)

    def sample(self, obs: Any, generator: Any = None) -> Any:
        """Expert actions at prefixes; drawn by the harness's seeded RNG (`generator` unused)."""
        o, dev = _to_numpy(obs)
        return _like(self._call("sample", o), dev)

    def log_prob(self, obs: Any, actions: Any) -> Any:
        o, dev = _to_numpy(obs)
        a, _ = _to_numpy(actions)
        return _like(self._call("log_prob", o, a), dev)

    def probs_along(self, prompts: Any, chain: Any) -> Any:
        p, dev = _to_numpy(prompts)
        c, _ = _to_numpy(chain)
        last = self._last_rollout
        if last is not None and last[0].shape == p.shape and last[1].shape == c.shape \
                and np.array_equal(last[0], p) and np.array_equal(last[1], c):
            return _like(last[2], dev)  # the rollout already paid for these
        return _like(self._call("probs_along", p, c), dev)

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The expert's own rollouts (N, H), drawn by the harness's seeded RNG."""
        p, dev = _to_numpy(prompts)
        chain, probs = self._call("rollout", p)
        self._last_rollout = (p, chain, probs)
        return _like(chain, dev)

    def torch_generator(self, device: Any) -> Any:
        """A torch.Generator on `device` seeded from the run's seed (for the submission's own draws)."""
        import torch

        dev = torch.device(device)
        if self._torch_gen is None or self._torch_gen.device != dev:
            self._torch_gen = torch.Generator(device=dev).manual_seed(int(self.spec["seed"]) * 7_919 + 1)
        return self._torch_gen

    def reset_queries(self) -> None:  # the harness's count is the only one that matters
        pass


class _ImportBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in BLOCKED_PACKAGES:
            raise ImportError(f"submissions may not import `{name}`: the env package holds the clean "
                              "expert; learn from the ExpertClient passed to train()")


def _block_env_imports() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED_PACKAGES:
            del sys.modules[name]
    sys.meta_path.insert(0, _ImportBlocker())


def load_target(target: str) -> type:
    """The class named by ``module:Class`` or ``path/to/file.py:Class``."""
    if ":" not in target:
        raise ValueError(f"a submission must be `module:Class` or `path/to/file.py:Class`, got {target!r}")
    mod_name, _, cls_name = target.rpartition(":")
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = Path(mod_name)
        if not path.is_file():
            raise FileNotFoundError(f"submission file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"_neg_submission_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise AttributeError(f"`{mod_name}` has no attribute `{cls_name}`")
    return cls


def check_interface(cls: Any) -> str | None:
    """Why `cls` does not implement the submission interface (None if it does)."""
    if not isinstance(cls, type):
        return f"{cls!r} is not a class"
    missing = [m for m in ("train", "act") if not callable(getattr(cls, m, None))]
    if missing:
        return (f"{cls.__name__} lacks {', '.join(f'`{m}()`' for m in missing)}; a submission defines "
                "__init__(self, spec), train(self, expert) and act(self, observations)")
    return None


def _worker_main(conn: Any, target: str, spec: dict[str, Any], trusted: bool, cwd: str) -> None:
    stage = "load"
    try:
        if not trusted:
            _block_env_imports()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        cls = load_target(target)
        stage = "interface"
        if (why := check_interface(cls)) is not None:
            conn.send(("error", {"stage": stage, "message": why}))
            return
        stage = "init"
        algo = cls(dict(spec))
        client = ExpertClient(conn, spec)
        stage = "train"
        algo.train(client)
        conn.send(("done", None))
        stage = "act"
        while True:
            op, payload = conn.recv()
            if op != "act":
                return
            a, _ = _to_numpy(algo.act(payload))
            conn.send(("actions", a))
    except (BudgetExceeded, ProtocolError, EOFError, BrokenPipeError):
        return  # the harness ended the run and knows why
    except BaseException:  # noqa: BLE001 - everything else is reported as a crash
        try:
            conn.send(("error", {"stage": stage, "message": traceback.format_exc()}))
        except (OSError, ValueError):
            pass


# =============================================================================== harness side
def _row_hashes(a: np.ndarray, weights: np.ndarray) -> list[int]:
    """64-bit hashes of the rows of an integer array (wrap-around arithmetic)."""
    with np.errstate(over="ignore"):
        return (a.astype(np.uint64) * weights[: a.shape[1]]).sum(axis=1, dtype=np.uint64).tolist()


@dataclass
class ExpertServer:
    """The harness end of the pipe: issues prompts, answers queries, enforces the budget."""

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

    def handle(self, op: str, args: tuple) -> Any:
        """Answer one request, or raise SubmissionRejected (budget / protocol)."""
        task, h = self.task, self.task.horizon
        if op == "prompts":
            n = args[0] if len(args) == 1 else None
            if not isinstance(n, int) or n <= 0:
                raise SubmissionRejected(f"protocol violation: prompts(n) needs an integer n > 0, got {n!r}")
            limit = ISSUE_FACTOR * self.budget_trajectories + ISSUE_MARGIN
            if self.issued_count + n > limit:
                raise SubmissionRejected(f"protocol violation: asked for more than {limit:,} prompts "
                                         f"({ISSUE_FACTOR}x the trajectory budget + {ISSUE_MARGIN:,})")
            p = task.sample_prompts(self.rng, n)
            self.issued.update(_row_hashes(p, self.weights))
            self.issued_count += n
            return p
        if op not in QUERY_OPS:
            raise SubmissionRejected(f"protocol violation: unknown request `{op}` (the client offers "
                                     f"prompts, {', '.join(QUERY_OPS)})")
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


@dataclass
class RunOutcome:
    """One accepted run of a submission: the harness's scores and the budget spent."""

    seed: int
    metrics: dict[str, float]
    trajectories: int
    queries: int
    wall_time: float
    train_time: float


def public_spec(board: Any, task: Any, seed: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a submission is told: the board's public facts (never its evaluation seeds)."""
    return {
        "board": board.name, "env_id": board.env_id, "env_kwargs": dict(board.env_kwargs), "seed": seed,
        "vocab_size": task.vocab_size, "num_actions": task.num_actions, "horizon": task.horizon,
        "prompt_len": task.prompt_len, "obs_len": task.obs_len, "pad_token": task.pad_token,
        "budget_trajectories": board.budget_trajectories, "budget_queries": board.budget_queries,
        **(extra or {}),
    }


class _Session:
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
                    raise SubmissionRejected(_error_reason(info))
                return msg
            if not self.proc.is_alive() and not self.conn.poll(0):
                raise SubmissionRejected(self._died())

    def _died(self) -> str:
        self.proc.join(1)
        return f"crashed: the worker process died (exit code {self.proc.exitcode})"


def _error_reason(info: dict[str, Any]) -> str:
    stage, msg = info.get("stage"), str(info.get("message", "")).strip()
    last = msg.splitlines()[-1] if msg else ""
    if stage == "load":
        return f"malformed submission: could not load it: {last}"
    if stage == "interface":
        return f"wrong interface: {last}"
    if stage == "act":
        return f"crashed in act(): {last}"
    return f"crashed in {stage}(): {last}"


def evaluate_greedy(session: _Session, task: Any, prompts: np.ndarray) -> dict[str, float]:
    """Greedy chains built by calling the submission's act step by step; the harness scores them."""
    n = prompts.shape[0]
    chain = np.empty((n, 0), dtype=np.int64)
    for _ in range(task.horizon):
        obs = task.observe(prompts, chain)
        acts = []
        for i in range(0, n, ACT_CHUNK):
            rows = obs[i:i + ACT_CHUNK]
            session.conn.send(("act", rows))
            kind, a = session.recv()
            if kind != "actions":
                raise SubmissionRejected(f"protocol violation: expected actions, got `{kind}`")
            a = np.asarray(a)
            if a.shape != (rows.shape[0],) or not np.issubdtype(a.dtype, np.integer):
                raise SubmissionRejected(f"wrong interface: act() must return ({rows.shape[0]},) integer "
                                         f"actions for {rows.shape[0]} observations, got {a.dtype} {a.shape}")
            if a.size and (a.min() < 0 or a.max() >= task.num_actions):
                raise SubmissionRejected(f"wrong interface: act() returned actions outside "
                                         f"[0, {task.num_actions - 1}]")
            acts.append(a.astype(np.int64))
        chain = np.concatenate([chain, np.concatenate(acts)[:, None]], axis=1)
    m = task.metrics(prompts, chain)
    return {"greedy_full_exact": float(np.mean(m["full_exact"])),
            "greedy_final_exact": float(np.mean(m["final_exact"])),
            "greedy_correct_prefix_len": float(np.mean(m["correct_prefix_len"]))}


def run_submission(board: Any, target: str, seed: int, trusted: bool = False, clean: bool = False,
                   extra_spec: dict[str, Any] | None = None, timeout: float | None = None) -> RunOutcome:
    """Train and evaluate one run of a submission under the board's protocol.

    Args:
        board: a :class:`~scoreboards.boards.Board`.
        target: ``module:Class`` or ``path/to/file.py:Class``.
        seed: the training seed (the harness's prompt and expert RNGs derive from it).
        trusted: the project's own adapter (may import the env package).
        clean: serve the clean expert (the ``bc-clean`` reference ceiling only).
        extra_spec: extra public spec entries (the built-in adapter's algorithm).
        timeout: wall-clock limit in seconds (default: the board's).

    Raises:
        SubmissionRejected: with the reason.
    """
    import gymnasium as gym

    import noisy_expert_gym  # noqa: F401  (registers the envs)

    timeout = float(timeout or board.timeout_s)
    env = gym.make(board.env_id, **board.env_kwargs)
    # The env's RNG (the noisy expert's draws) derives from the training seed and the board.
    env.reset(seed=int(np.random.SeedSequence([seed, board.seed_salt, 1]).generate_state(1)[0]))
    u = env.unwrapped
    task = u.task
    server = ExpertServer(u.clean_expert if clean else u.expert, task,
                          np.random.default_rng([seed, board.seed_salt, 2]),
                          board.budget_trajectories, board.budget_queries)
    spec = public_spec(board, task, seed, extra_spec)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(child, target, spec, trusted, os.getcwd()), daemon=True,
                       name=f"neg-submission-{seed}")
    t0 = time.monotonic()
    proc.start()
    child.close()
    session = _Session(parent, proc, t0 + timeout, timeout)
    try:
        while True:
            op, args = session.recv()
            if op == "done":
                break
            try:
                answer = server.handle(op, args if isinstance(args, tuple) else (args,))
            except SubmissionRejected as e:
                parent.send(("over_budget" if e.reason.startswith("over budget") else "rejected", e.reason))
                raise
            parent.send(("ok", (answer, server.trajectories, server.queries)))
        train_time = time.monotonic() - t0
        eval_prompts = np.concatenate([task.sample_prompts(np.random.default_rng(s), board.eval_prompts)
                                       for s in board.eval_seeds])
        metrics = evaluate_greedy(session, task, eval_prompts)
        return RunOutcome(seed=seed, metrics=metrics, trajectories=server.trajectories,
                          queries=server.queries, wall_time=time.monotonic() - t0, train_time=train_time)
    finally:
        try:
            parent.send(("exit", None))
        except OSError:
            pass
        proc.join(2)
        if proc.is_alive():
            proc.kill()
            proc.join(2)
        parent.close()
        env.close()
