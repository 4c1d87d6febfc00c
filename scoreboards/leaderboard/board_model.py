"""The leaderboard file, declared: :class:`BoardFile` and the :class:`Board` it validates into.

The tables of ``scoreboards/leaderboard/shipped_boards/NAME.toml`` (the format is shown in
:mod:`scoreboards.leaderboard.boards`) are declared below; their types and constraints are the
validation, the env's kwargs are checked by building its problem once, and
:func:`scoreboards.config.validate` lists every problem in one :class:`BoardError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from noisy_expert_gym.declarations import ConfigError
from scoreboards.config import (
    BudgetTable,
    EnvTable,
    PositiveInt,
    Seeds,
    TomlModel,
    TrainFields,
    check_algorithm,
    report_with,
)
from scoreboards.leaderboard.hidden import HIDEABLE

BOARD_METRICS = ("greedy_full_exact", "greedy_final_exact", "greedy_correct_prefix_len")
#: How a board's expert may be queried (``[env] access``).
ACCESS_MODES = ("full", "sample", "topk")


@dataclass
class Board:
    """A validated board."""

    name: str
    description: str
    cost: str
    env_id: str
    env_kwargs: dict[str, Any]
    budget_trajectories: int
    budget_queries: int | None
    eval_prompts: int
    eval_seeds: list[int]
    metric: str
    train_seeds: list[int]
    timeout_s: float
    baselines: list[dict[str, Any]] = field(default_factory=list)
    hash: str = ""
    hidden: list[str] = field(default_factory=list)
    """Keyword arguments the harness draws from its secret for each run (hidden-rule boards)."""
    access: str = "full"
    """``full``: the expert answers with probabilities and samples; ``sample``: sampled tokens only; ``topk``:
    its ``top_k`` most likely tokens with their log-probabilities, and samples."""
    curve_points: int = 4
    """Evaluations per run (the last after training): the harness's learning curve of each entry."""
    top_k: int | None = None
    """The k of a ``topk`` board's answers (None otherwise)."""
    curve_prompts: int = 256
    """Prompts of the learning curve's set (apart from the scored ones)."""
    cpu_s: float | None = None
    """CPU seconds per process (None: the wall limit x the CPU count)."""
    memory_mb: int = 8192
    max_procs: int = 256
    scratch_mb: int = 1024
    device: str = "cpu"
    message_timeout_s: float = 30.0
    request_mb: int = 256
    verify_tolerance: float = 0.0
    """The sandbox's limits and the harness's (see :class:`Protocol`)."""

    @property
    def seed_salt(self) -> int:
        """Mixed into the harness's training RNGs so boards do not share prompt streams."""
        return int(self.hash[:8], 16) if self.hash else 0

    @property
    def rule(self) -> str:
        """``hidden`` (the task is a secret instance of its family) or ``open`` (a practice board)."""
        return "hidden" if self.hidden else "open"


# ----- the file, declared ------------------------------------------------------------------------
class BoardEnv(EnvTable):
    """``[env]``: the env, its public kwargs, what the harness hides, and the expert's access mode."""

    hidden: list[Literal[HIDEABLE]] = Field(default_factory=list)  # type: ignore[valid-type]
    """Keyword arguments the harness draws from its secret for each training seed (never shown to
    submissions): a hidden-rule board. Empty: an open practice board."""
    access: Literal[ACCESS_MODES] = "full"  # type: ignore[valid-type]
    """``full``: the expert answers with probabilities and samples; ``sample``: sampled tokens only
    (``probs``, ``probs_along``, ``log_prob`` are refused); ``topk``: the ``top_k`` most likely tokens
    and their log-probabilities (``topk``, ``topk_along``), and samples."""
    top_k: int | None = None
    """The k of a ``topk`` board (required there, at most the env's number of actions; unset otherwise)."""

    @model_validator(mode="after")
    def _hideable(self, info: ValidationInfo) -> BoardEnv:
        problems = []
        if len(set(self.hidden)) != len(self.hidden):
            problems.append(f"`hidden` has repeated names {self.hidden}")
        if "access" in self.kwargs:
            problems.append("declare the access mode as `[env] access`, not as an env kwarg (the harness "
                            "enforces it on every request)")
        if "top_k" in self.kwargs:
            problems.append("declare `top_k` as `[env] top_k`, not as an env kwarg (the harness enforces it on "
                            "every request)")
        if (self.access == "topk") != (self.top_k is not None) or (self.top_k is not None and self.top_k < 1):
            problems.append(f"`[env] top_k` is required with access = \"topk\" (an integer >= 1) and applies to it "
                            f"only; got access = {self.access!r}, top_k = {self.top_k!r}")
        shown = sorted(set(self.hidden) & set(self.kwargs))
        if shown:
            problems.append(f"{shown} are both hidden and given in kwargs; a hidden value is drawn by the "
                            "harness, remove it from kwargs")
        if self.hidden and not shown and (info.context or {}).get("check_envs", True):
            from noisy_expert_gym import make_problem

            try:  # the family must accept each hidden kwarg, with these kwargs
                make_problem(self.id, **self.kwargs, **dict.fromkeys(self.hidden, 1))
            except Exception as e:  # noqa: BLE001 - any builder error is a problem of the file
                problems.append(f"hidden {self.hidden}: {type(e).__name__}: {e}".replace("\n", " "))
        if problems:
            raise ValueError("\n".join(problems))
        return self


#: The largest part of a task's prompt space a board may reserve for its held-out and curve sets.
RESERVED_SHARE = 0.25


class BoardEval(TomlModel):
    """``[eval]``: the harness's held-out evaluation.

    The rule (scoreboards/README.md, "The evaluation"): the scored prompts are drawn before
    training from seeds the submission never sees, never issued to it as training prompts (so
    the expert is never asked about them), and shown to its ``act`` only after ``train``
    returns; the learning curve uses a separate set of ``curve_prompts``, never issued either.
    Both sets together may take at most :data:`RESERVED_SHARE` of the task's prompts (where the
    task counts them), so training prompts still come from most of the space.
    """

    prompts: PositiveInt
    """Held-out prompts per evaluation seed."""
    seeds: Seeds
    """The harness's held-out evaluation seeds (never shown to submissions)."""
    metric: Literal[BOARD_METRICS] = "greedy_full_exact"  # type: ignore[valid-type]
    """The score."""
    curve_points: int = Field(4, ge=1, le=20)
    """Evaluations per run at equal fractions of the trajectory budget (the last after training):
    each entry's learning curve, measured by the harness on the curve set."""
    curve_prompts: PositiveInt = 256
    """Prompts of the learning curve's set (apart from the held-out ones, never scored)."""


#: The devices a board may run its workers on.
DEVICES = ("cpu", "cuda")


class Protocol(TomlModel):
    """``[protocol]``: the runs of an entry and the limits of each run's sandbox.

    Every limit has a default (below); the shipped boards state each of theirs. The sandbox
    enforces them (:mod:`scoreboards.leaderboard.submission.sandbox`), the harness its side
    (``message_timeout_s``, ``request_mb``: :mod:`scoreboards.leaderboard.submission.server`).
    """

    train_seeds: Seeds
    """One independent run per seed; the score is their mean."""
    timeout_s: float = Field(1800.0, gt=0)
    """Wall-clock limit per run (training + evaluation), seconds."""
    cpu_s: float | None = Field(None, gt=0)
    """CPU seconds per process (RLIMIT_CPU). Default: the wall limit x the machine's CPU count."""
    memory_mb: int = Field(8192, gt=0)
    """Memory of the sandbox, MiB: its processes together where the harness can make a memory
    cgroup (shared memory, memory files and scratch files included), and per process always
    (RLIMIT_AS, except on GPU boards; RLIMIT_DATA)."""
    max_procs: int = Field(256, gt=0)
    """Processes and threads of the sandbox together (RLIMIT_NPROC under its own uid)."""
    scratch_mb: int = Field(1024, gt=0)
    """Size of each private tmpfs (``/tmp``, ``/dev/shm``) and the largest file (RLIMIT_FSIZE), MiB."""
    device: Literal[DEVICES] = "cpu"  # type: ignore[valid-type]
    """``cuda``: the GPU device nodes are passed through (and no address-space limit is set)."""
    message_timeout_s: float = Field(30.0, gt=0)
    """Seconds one message may take to cross the socket once begun, each way: a worker that stops
    mid-message or does not read the harness's answers is cut off then, not at the wall limit."""
    request_mb: int = Field(256, gt=0)
    """Most MiB the harness may spend answering one request (checked from its header)."""
    verify_tolerance: float = Field(0.0, ge=0, le=1)
    """How far a re-run's per-seed score may be from the stored one and count as reproduced
    (``neg board verify``). 0: equal, as a deterministic CPU run is."""


class Baseline(TomlModel):
    """One ``[[baselines]]`` entry: a built-in algorithm `neg board baselines` enters."""

    algo: str
    """A built-in algorithm name."""
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Algorithm parameters."""
    train: TrainFields = Field(default_factory=TrainFields)
    """TrainConfig fields."""
    name: str | None = None
    """Display name (default: the algorithm's)."""

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "algo" in info.data:
            check_algorithm(info.data["algo"], [params], info)
        return params


def _seed_set(data: Any, table: str, key: str) -> set[int]:
    t = data.get(table) if isinstance(data, dict) else None
    v = t.get(key) if isinstance(t, dict) else None
    return {s for s in v if isinstance(s, int)} if isinstance(v, list) else set()


class BoardFile(TomlModel):
    """A board file (the module docstring shows one)."""

    name: str = ""
    """The board's name (default: the file's stem)."""
    description: str = ""
    cost: str = ""
    """Expected cost per entry, for people."""
    env: BoardEnv
    budget: BudgetTable
    eval: BoardEval
    protocol: Protocol
    baselines: list[Baseline] = Field(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _seeds_apart(cls, data: Any, handler: Callable[[Any], BoardFile]) -> BoardFile:
        """Evaluation seeds stay held out: read from the raw tables, so this is listed with any
        other problem."""
        shared = _seed_set(data, "eval", "seeds") & _seed_set(data, "protocol", "train_seeds")
        msg = f"shares {sorted(shared)} with [eval] seeds; [eval] seeds and [protocol] train_seeds must not overlap"
        return report_with(handler, data, cls.__name__, [(("protocol", "train_seeds"), msg)] if shared else [])

    @model_validator(mode="after")
    def _reserved_share(self, info: ValidationInfo) -> BoardFile:
        """The held-out and curve sets leave most prompts for training (see :class:`BoardEval`)."""
        if not (info.context or {}).get("check_envs", True):
            return self
        from noisy_expert_gym import make_problem  # built once by the [env] check (cached)

        space = getattr(make_problem(self.env.id, **self.env.kwargs).task, "num_prompts", None)
        reserved = self.eval.prompts * len(self.eval.seeds) + self.eval.curve_prompts
        if space is not None and reserved > RESERVED_SHARE * space:
            raise ValueError(f"[eval] prompts x seeds + curve_prompts = {reserved:,} would reserve more than "
                             f"{RESERVED_SHARE:.0%} of the task's {space:,} prompts (never issued for training): "
                             "draw fewer evaluation prompts, or make the prompt space larger (a longer horizon)")
        return self

    @model_validator(mode="after")
    def _default_queries(self) -> BoardFile:
        # Without an explicit cap, single-prefix queries are bounded by what the
        # trajectory budget buys along complete chains.
        if self.budget.queries is None:
            from noisy_expert_gym import make_problem  # built once by the [env] check (cached)

            horizon = make_problem(self.env.id, **self.env.kwargs).task.horizon
            self.budget.queries = self.budget.trajectories * horizon
        return self

    @model_validator(mode="after")
    def _baselines_fit_access(self) -> BoardFile:
        if self.env.access == "sample":
            from scoreboards.leaderboard.builtin import needs_probs

            bad = [b.algo for b in self.baselines if needs_probs(b.algo, b.params)]
            if bad:
                raise ValueError(f"[[baselines]] {', '.join(bad)} need the expert's probabilities, and this "
                                 "board's expert is sample-only ([env] access = \"sample\"); list algorithms "
                                 "that learn from sampled tokens")
        if self.env.access == "topk":
            from scoreboards.leaderboard.builtin import topk_refusal

            bad = [f"{b.algo}: {why}" for b in self.baselines
                   if (why := topk_refusal(b.algo, b.params, self.env.top_k))]
            if bad:
                raise ValueError(f"[[baselines]] need more than this board's top-k expert answers ([env] access = "
                                 f"\"topk\", top_k = {self.env.top_k}): {'; '.join(bad)}")
        return self

    def to_board(self, hash: str) -> Board:
        return Board(name=self.name, description=self.description, cost=self.cost, env_id=self.env.id,
                     env_kwargs=dict(self.env.kwargs), budget_trajectories=self.budget.trajectories,
                     budget_queries=self.budget.queries, eval_prompts=self.eval.prompts,
                     eval_seeds=list(self.eval.seeds), metric=self.eval.metric,
                     train_seeds=list(self.protocol.train_seeds), timeout_s=self.protocol.timeout_s,
                     baselines=[b.model_dump(exclude_unset=True) for b in self.baselines], hash=hash,
                     hidden=list(self.env.hidden), access=self.env.access, curve_points=self.eval.curve_points,
                     top_k=self.env.top_k, curve_prompts=self.eval.curve_prompts,
                     **self.protocol.model_dump(exclude={"train_seeds", "timeout_s"}))


class BoardError(ConfigError):
    """A board with problems; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"board {source}", problems)
        self.source = source
