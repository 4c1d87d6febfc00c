"""The experiment spec, declared: its TOML tables, and the runs it expands into.

A spec names an env and a grid over its kwargs, algorithms (each with fixed
parameters and an optional grid), seeds, a budget, an evaluation schedule and the
training fields shared by every run. :class:`SpecFile` declares the file (its types
and constraints are the validation; :mod:`scoreboards.sweeps.specs` loads it and lists
every problem in one :class:`SpecError`); :class:`Spec` is the validated
experiment, and :meth:`Spec.runs` its grid of :class:`RunSpec` runs, each keyed by
its identity (:func:`run_key`).

A spec file (all tables but ``[train]``, ``[eval]`` and ``[report]`` required)::

    description = "README demo: BC vs NAIL-F vs OPD-F without and with noise"
    cost = "about 5 minutes on a 2-core CPU"   # expected cost, for people
    gpu_hours = 0.0                           # expected cost on one GPU (0: CPU-sized)
    seeds = [0, 1]                            # or a count: seeds = 2

    [env]
    id = "NoisyModAdd-v0"
    kwargs = { p = 7, m = 4, law = "absorbing" }   # fixed for every run
    grid = { eta = [0.0, 0.2] }                    # one env config per combination

    [budget]
    trajectories = 20000        # expert trajectories per run
    # queries = 1000000         # optional cap on expert prefix-queries

    [eval]
    every = 2000                # trajectories between evaluations (0: 20 over the budget)
    prompts = 512               # held-out prompts per evaluation
    # stop_at = 1.0             # stop a run once greedy full-chain accuracy reaches it

    [train]                     # any TrainConfig field not owned by the harness
    preset = "tiny"
    batch_size = 128

    [[algorithms]]
    name = "nail-mixed"                 # or your own: "path/to/file.py:Name", "module:Name"
    grid = { beta = [0.0, 0.5, 1.0] }   # one entry per value: nail-mixed(beta=0.5), ...
    # params = { ... }                  # fixed algorithm parameters
    # train = { lr = 1e-3 }             # per-algorithm TrainConfig overrides
    # label = "NAIL"                    # display name (default: name(params))

    [report]
    target = 0.99                        # accuracy for "trajectories to target"
    metric = "greedy_full_exact"         # headline metric of the report
    # horizon_boot = 500                 # bootstrap resamples of the horizon fits (sweeps over m)
    # scaling = "period"                 # fit trajectories-to-target against this swept kwarg (m, period, eta)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from agents.config import TrainConfig
from agents.registry import is_plugin, plugin_digest
from noisy_expert_gym.declarations import ConfigError
from noisy_expert_gym.utils import exact_number
from scoreboards.config import (
    BudgetTable,
    EnvTable,
    Grid,
    PositiveInt,
    SeedsOrCount,
    TomlModel,
    TrainFields,
    check_algorithm,
)
from scoreboards.provenance import code_version, short_hash

REPORT_METRICS = ("greedy_full_exact", "greedy_final_exact", "greedy_correct_prefix_len", "val_loss",
                  "sampled_full_exact", "greedy_expert_mode_full")
#: TrainConfig fields the runner sets for each execution of a run (where it checkpoints,
#: whether it resumes, whether it shows a bar): not part of a run's config.
RUNNER_SETS = ("checkpoint_dir", "resume", "progress")
#: The trainer's one list of fields that do not change a run's learning trajectory.
NOT_IDENTITY: frozenset[str] = TrainConfig.NOT_IDENTITY


class SpecError(ConfigError):
    """A spec with problems; ``problems`` lists every one of them, ``source`` names the file."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(f"spec {source}", list(problems))
        self.source = source


# ----- the experiment, expanded ------------------------------------------------------------------
@dataclass(frozen=True)
class AlgoEntry:
    """One algorithm of a spec, expanded over its parameter grid (one entry per point)."""

    name: str
    params: dict[str, Any]
    train: dict[str, Any]
    label: str
    varied: dict[str, Any] = field(default_factory=dict)
    """The grid point that produced this entry (empty without a grid)."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep: an algorithm entry x an env config x a seed."""

    key: str
    spec: str
    label: str
    algo: str
    params: dict[str, Any]
    env_id: str
    env_kwargs: dict[str, Any]
    env_varied: dict[str, Any]
    seed: int
    config: dict[str, Any]
    """Every TrainConfig field of the run but those the runner sets (:data:`RUNNER_SETS`)."""

    @property
    def group(self) -> str:
        """The env config as ``eta=0.2,m=4`` (the varied kwargs only)."""
        return env_label(self.env_varied)


@dataclass
class Spec:
    """A validated experiment spec (see the module docstring for the file format)."""

    name: str
    source: str
    description: str
    cost: str
    gpu_hours: float
    seeds: list[int]
    env_id: str
    env_kwargs: dict[str, Any]
    env_grid: dict[str, list[Any]]
    budget_trajectories: int
    budget_queries: int | None
    eval: dict[str, Any]
    """The evaluation's TrainConfig fields (``eval_every``, ...): those the spec sets."""
    train: dict[str, Any]
    algorithms: list[AlgoEntry]
    report: dict[str, Any]

    def env_configs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(full kwargs, varied kwargs) for every point of the env grid."""
        return [({**self.env_kwargs, **varied}, varied) for varied in grid_points(self.env_grid)]

    def runs(self, version: str | None = None) -> list[RunSpec]:
        """Every run of the grid, keyed by identity + seed + code version."""
        version = version or code_version()
        out = []
        for kwargs, varied in self.env_configs():
            for alg in self.algorithms:
                for seed in self.seeds:
                    cfg = run_config(self, alg, kwargs, seed)
                    out.append(RunSpec(key=run_key(cfg, version), spec=self.name, label=alg.label,
                                       algo=alg.name, params=alg.params, env_id=self.env_id,
                                       env_kwargs=kwargs, env_varied=varied, seed=seed, config=cfg))
        return out

    @property
    def labels(self) -> list[str]:
        return [a.label for a in self.algorithms]


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid's values, as ``{key: value}`` (one empty point without a grid)."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def env_label(varied: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in varied.items()) or "default"


def run_config(spec: Spec, alg: AlgoEntry, env_kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """The TrainConfig fields of one run (without those the runner sets)."""
    cfg = TrainConfig().to_dict()
    cfg.update(spec.train)
    cfg.update(alg.train)
    cfg.update(algo=alg.name, algo_params=dict(alg.params), env_id=spec.env_id,
               env_kwargs=dict(env_kwargs), budget_trajectories=spec.budget_trajectories,
               budget_queries=spec.budget_queries, seed=seed, **spec.eval)
    for k in RUNNER_SETS:
        cfg.pop(k, None)
    return cfg


def run_identity(config: dict[str, Any]) -> dict[str, Any]:
    """What makes two runs the same run: the trainer's identity (TrainConfig.NOT_IDENTITY
    left out), plus ``stop_at`` (a sweep's result depends on where it stops), plus a plugin
    algorithm's file digest (``algo_code``: an edited plugin is another run)."""
    out = {k: v for k, v in config.items() if k not in NOT_IDENTITY or k == "stop_at"}
    if (digest := plugin_digest(config["algo"])) is not None:
        out["algo_code"] = digest
    return out


def run_key(config: dict[str, Any], version: str) -> str:
    """Hash of a run's identity (seed included) and the code version."""
    return short_hash(run_identity(config), version)


# ----- the file, declared ------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    """A grid value in a label, exactly (two values, two labels)."""
    return exact_number(v) if isinstance(v, float) else str(v)


class SpecEnv(EnvTable):
    """``[env]`` of a spec: the env, its fixed kwargs and a grid over more of them."""

    grid: Grid = Field(default_factory=dict)
    """One env config per combination of these values."""

    @field_validator("grid")
    @classmethod
    def _not_fixed(cls, grid: dict[str, list[Any]], info: ValidationInfo) -> dict[str, list[Any]]:
        if both := [k for k in grid if k in info.data.get("kwargs", {})]:
            raise ValueError("\n".join(f"`{k}` is both in kwargs and grid; keep one" for k in both))
        return grid

    def configs(self) -> list[dict[str, Any]]:
        return [{**self.kwargs, **point} for point in grid_points(self.grid)]


class EvalTable(TomlModel):
    """``[eval]``: the trainer's evaluation schedule (each key a TrainConfig field)."""

    every: Annotated[int, Field(ge=0)] | None = None
    """Trajectories between evaluations (0: 20 over the budget)."""
    prompts: PositiveInt | None = None
    """Held-out prompts per evaluation."""
    seed: int | None = None
    """Seed of the held-out evaluation prompts."""
    stop_at: Annotated[float, Field(gt=0, le=1)] | None = None
    """Stop a run once greedy full-chain accuracy reaches it."""

    def train_fields(self) -> dict[str, Any]:
        """The TrainConfig fields this table sets."""
        names = {"every": "eval_every", "prompts": "eval_prompts", "seed": "eval_seed", "stop_at": "stop_at"}
        return {names[k]: v for k, v in self.model_dump(exclude_none=True).items()}


class ReportTable(TomlModel):
    """``[report]``: what the report leads with."""

    target: Annotated[float, Field(gt=0, le=1)] = 0.99
    """Accuracy for "trajectories to target"."""
    metric: Literal[REPORT_METRICS] = "greedy_full_exact"  # type: ignore[valid-type]
    """Headline metric of the report."""
    horizon_boot: Annotated[int, Field(ge=0)] = 500
    """Bootstrap resamples of the horizon-scaling fits (specs sweeping ``m`` with ``stop_at``; 0: no CIs)."""
    scaling: Literal["m", "period", "eta"] | None = None
    """The swept env kwarg the scaling section fits trajectories-to-target against (default: `m`, else `period`, whichever the grid sweeps; needs ``stop_at``)."""


class AlgorithmTable(TomlModel):
    """One ``[[algorithms]]`` entry: an algorithm, its parameters and an optional grid over them."""

    name: str
    """An algorithm from `neg train --list`, or your own: `path/to/file.py:Name` or `module:Name` (labelled `Name`)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Fixed algorithm parameters."""
    grid: Grid = Field(default_factory=dict, validate_default=True)
    """One entry per combination: ``nail-mixed(beta=0.5)``, ..."""
    train: TrainFields = Field(default_factory=TrainFields)
    """Per-algorithm TrainConfig overrides."""
    label: str | None = None
    """Display name (default: name(params))."""

    def entries(self) -> list[AlgoEntry]:
        """One entry per grid point, labelled ``label(varied)`` or ``name(params)``."""
        out = []
        for varied in grid_points(self.grid):
            full = {**self.params, **varied}
            tag = ",".join(f"{k}={_fmt(v)}" for k, v in (varied if self.label else full).items())
            base = self.label or (self.name.rpartition(":")[2] if is_plugin(self.name) else self.name)
            out.append(AlgoEntry(name=self.name, params=full, train=self.train.fields(), varied=varied,
                                 label=f"{base}({tag})" if tag else base))
        return out

    @field_validator("grid")
    @classmethod
    def _known_params(cls, grid: dict[str, list[Any]], info: ValidationInfo) -> dict[str, list[Any]]:
        """The algorithm's parameters at every grid point (a field check: listed with the others)."""
        if "name" in info.data and "params" in info.data:
            params = info.data["params"]
            both = [f"`{k}` is both in params and grid; keep one" for k in grid if k in params]
            check_algorithm(info.data["name"], [{**params, **p} for p in grid_points(grid)], info, both)
        return grid


def _labelled_once(tables: list[AlgorithmTable]) -> list[AlgorithmTable]:
    if not tables:
        raise ValueError('list at least one algorithm (e.g. [[algorithms]] name = "nail-f")')
    labels = [e.label for t in tables for e in t.entries()]
    dups = sorted({x for x in labels if labels.count(x) > 1})
    if dups:
        raise ValueError("\n".join(f"two entries are both labelled `{d}`; give one a `label`" for d in dups))
    return tables


def _word(name: str) -> str:
    if not name or any(c in name for c in "/\\ "):
        raise ValueError(f"must be a short word (no spaces or slashes), got {name!r}")
    return name


class SpecFile(TomlModel):
    """A spec file (the module docstring shows one)."""

    name: Annotated[str, AfterValidator(_word)] = "spec"
    """The spec's name (default: the file's stem)."""
    description: str = ""
    """What the spec measures, in a line."""
    cost: str = ""
    """Expected cost, for people."""
    gpu_hours: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Expected cost on one GPU (0: CPU-sized)."""
    seeds: SeedsOrCount
    """Training seeds, or their count."""
    env: SpecEnv
    budget: BudgetTable
    eval: EvalTable = Field(default_factory=EvalTable)
    train: TrainFields = Field(default_factory=TrainFields)
    """TrainConfig fields shared by every run."""
    algorithms: Annotated[list[AlgorithmTable], AfterValidator(_labelled_once)] = Field(
        default_factory=list, validate_default=True)
    report: ReportTable = Field(default_factory=ReportTable)

    @field_validator("eval")
    @classmethod
    def _within_budget(cls, ev: EvalTable, info: ValidationInfo) -> EvalTable:
        budget = info.data.get("budget")
        if budget is not None and ev.every is not None and ev.every > budget.trajectories:
            raise ValueError(f"`every` ({ev.every}) exceeds the budget of {budget.trajectories} trajectories")
        return ev

    def to_spec(self, source: str) -> Spec:
        """The experiment this file declares."""
        return Spec(name=self.name, source=source, description=self.description, cost=self.cost,
                    gpu_hours=self.gpu_hours, seeds=list(self.seeds), env_id=self.env.id,
                    env_kwargs=dict(self.env.kwargs), env_grid=dict(self.env.grid),
                    budget_trajectories=self.budget.trajectories, budget_queries=self.budget.queries,
                    eval=self.eval.train_fields(), train=self.train.fields(),
                    algorithms=[e for t in self.algorithms for e in t.entries()],
                    report=self.report.model_dump())
