"""Experiment specs: declarative TOML files that expand into a grid of training runs.

A spec names an env and a grid over its kwargs, algorithms (each with fixed
parameters and an optional grid), seeds, a budget, an evaluation schedule and the
training fields shared by every run. It is validated as a whole before anything
runs: every problem is collected into one :class:`SpecError`.

A spec file (all sections but ``[train]``, ``[eval]`` and ``[report]`` required)::

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
    name = "nail-mixed"
    grid = { beta = [0.0, 0.5, 1.0] }   # one entry per value: nail-mixed(beta=0.5), ...
    # params = { ... }                  # fixed algorithm parameters
    # train = { lr = 1e-3 }             # per-algorithm TrainConfig overrides
    # label = "NAIL"                    # display name (default: name(params))

    [report]
    target = 0.99                        # accuracy for "trajectories to target"
    metric = "greedy_full_exact"         # headline metric of the report
"""

from __future__ import annotations

import copy
import itertools
import math
import tomllib
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoreboards.provenance import code_version, short_hash

SPEC_DIR = Path(__file__).resolve().parent / "specs"

#: TrainConfig fields the harness sets itself; a spec sets them through its own sections.
HARNESS_OWNED: dict[str, str] = {
    "algo": "list algorithms under [[algorithms]]",
    "algo_params": "use `params` or `grid` inside an [[algorithms]] entry",
    "env_id": "set [env] id",
    "env_kwargs": "set [env] kwargs / grid",
    "budget_trajectories": "set [budget] trajectories",
    "budget_queries": "set [budget] queries",
    "seed": "set the top-level `seeds`",
    "eval_every": "set [eval] every",
    "eval_prompts": "set [eval] prompts",
    "eval_seed": "set [eval] seed",
    "stop_at": "set [eval] stop_at",
    "checkpoint_dir": "the runner keeps checkpoints next to the results database",
    "resume": "the runner resumes interrupted runs by itself",
    "progress": "the runner shows progress by itself",
}
#: TrainConfig fields that do not change a run's result: left out of its key.
NON_IDENTITY = ("checkpoint_dir", "checkpoint_every", "resume", "progress", "tensorboard_dir", "data_dir")

_TOP_KEYS = ("name", "description", "cost", "gpu_hours", "seeds", "env", "budget", "eval", "train",
             "algorithms", "report")
_SECTION_KEYS = {
    "env": ("id", "kwargs", "grid"),
    "budget": ("trajectories", "queries"),
    "eval": ("every", "prompts", "seed", "stop_at"),
    "report": ("target", "metric"),
}
_ALGO_KEYS = ("name", "params", "grid", "train", "label")
REPORT_METRICS = ("greedy_full_exact", "greedy_final_exact", "greedy_correct_prefix_len", "val_loss",
                  "sampled_full_exact")


class SpecError(ValueError):
    """A spec with problems; ``problems`` lists every one of them."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"spec {source} has {n} problem{'s' * (n != 1)}:\n{lines}")


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
    """Every TrainConfig field of the run (harness-owned run-time fields excluded)."""

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
    train: dict[str, Any]
    algorithms: list[AlgoEntry]
    report: dict[str, Any]

    def env_configs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(full kwargs, varied kwargs) for every point of the env grid."""
        keys = list(self.env_grid)
        out = []
        for values in itertools.product(*(self.env_grid[k] for k in keys)):
            varied = dict(zip(keys, values))
            out.append(({**self.env_kwargs, **varied}, varied))
        return out

    def runs(self, version: str | None = None) -> list[RunSpec]:
        """Every run of the grid, keyed by config + seed + code version."""
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


def env_label(varied: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in varied.items()) or "default"


def run_config(spec: Spec, alg: AlgoEntry, env_kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """The full TrainConfig fields of one run (without the run-time-only fields)."""
    from agents.config import TrainConfig

    cfg = TrainConfig().to_dict()
    cfg.update(spec.train)
    cfg.update(alg.train)
    cfg.update(algo=alg.name, algo_params=dict(alg.params), env_id=spec.env_id,
               env_kwargs=dict(env_kwargs), budget_trajectories=spec.budget_trajectories,
               budget_queries=spec.budget_queries, seed=seed, **spec.eval)
    for k in NON_IDENTITY:
        cfg.pop(k, None)
    return cfg


def run_key(config: dict[str, Any], version: str) -> str:
    """Hash of a run's full config (seed included) and the code version."""
    return short_hash(config, version)


# ----- loading -----------------------------------------------------------------------
def shipped_specs() -> list[str]:
    """Names of the specs shipped with the package."""
    return sorted(p.stem for p in SPEC_DIR.glob("*.toml"))


def resolve_path(name_or_path: str | Path, directory: Path, what: str, shipped: Iterable[str]) -> Path:
    """A shipped file's path from its name, or the given path; raise with a suggestion."""
    from noisy_expert_gym._util import did_you_mean

    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise FileNotFoundError(f"{what} file {p} does not exist")
        return p
    shipped = list(shipped)
    cand = directory / f"{name_or_path}.toml"
    if cand.exists():
        return cand
    raise ValueError(f"unknown {what} `{name_or_path}`: not a file, and the shipped {what}s are "
                     f"{', '.join(shipped)}.{did_you_mean(str(name_or_path), shipped)}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``budget.trajectories=5000`` -> (["budget", "trajectories"], 5000); values are TOML."""
    if "=" not in text:
        raise ValueError(f"an override must look like `section.key=value`, got {text!r}")
    path, value = text.split("=", 1)
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word is a string
    return path.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of `raw` with dotted ``key=value`` overrides applied (e.g. from ``--set``)."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {text!r}: `{k}` is not a table")  # noqa: TRY004
        node[keys[-1]] = value
    return raw


def load_spec(name_or_path: str | Path, overrides: Iterable[str] = (), check_envs: bool = True) -> Spec:
    """Load and validate a spec: a shipped spec's name (``quick``) or a TOML file path.

    Args:
        name_or_path: shipped spec name or path to a ``.toml`` file.
        overrides: dotted ``key=value`` edits applied before validation
            (``budget.trajectories=5000``, ``seeds=[0]``, ``train.device="cuda"``).
        check_envs: build every env config once to validate its kwargs.

    Raises:
        SpecError: listing every problem found.
    """
    path = resolve_path(name_or_path, SPEC_DIR, "spec", shipped_specs())
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(str(path), [f"not valid TOML: {e}"]) from None
    raw = apply_overrides(raw, overrides)
    raw.setdefault("name", path.stem)
    return parse_spec(raw, source=str(path), check_envs=check_envs)


# ----- validation ----------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def type_ok(value: Any, hint: Any) -> bool:
    """Whether `value` (parsed TOML) fits a TrainConfig field's type annotation."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, __import__("types").UnionType):
        return any(type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_num(value)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _unknown(keys: Iterable[str], allowed: Sequence[str], where: str) -> list[str]:
    from noisy_expert_gym._util import did_you_mean

    return [f"{where}: unknown key `{k}` (valid: {', '.join(allowed)}).{did_you_mean(k, allowed)}"
            for k in keys if k not in allowed]


def _table(raw: dict[str, Any], key: str, problems: list[str], required: bool = False) -> dict[str, Any]:
    v = raw.get(key)
    if v is None:
        if required:
            problems.append(f"missing required section [{key}]")
        return {}
    if not isinstance(v, dict):
        problems.append(f"`{key}` must be a table, got {type(v).__name__}")
        return {}
    return v


def _grid(v: Any, where: str, problems: list[str]) -> dict[str, list[Any]]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        problems.append(f"{where}: must be a table of lists, got {type(v).__name__}")
        return {}
    out = {}
    for k, vals in v.items():
        if not isinstance(vals, list) or not vals:
            problems.append(f"{where}.{k}: must be a non-empty list of values, got {vals!r}")
        elif len({repr(x) for x in vals}) != len(vals):
            problems.append(f"{where}.{k}: has repeated values {vals!r}")
        else:
            out[k] = vals
    return out


def _check_train_fields(train: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    from agents.config import TrainConfig
    from noisy_expert_gym._util import did_you_mean

    hints = typing.get_type_hints(TrainConfig)
    ok = {}
    for k, v in train.items():
        if k in HARNESS_OWNED:
            problems.append(f"{where}: `{k}` is set by the harness; {HARNESS_OWNED[k]}")
        elif k not in hints:
            problems.append(f"{where}: `{k}` is not a training field.{did_you_mean(k, hints)} "
                            f"(`neg train --help` lists them)")
        elif not type_ok(v, hints[k]):
            problems.append(f"{where}.{k}: must be {_type_name(hints[k])}, got {v!r}")
        elif k in ("batch_size", "eval_prompts") and v <= 0 or k == "lr" and v <= 0:
            problems.append(f"{where}.{k}: must be > 0, got {v!r}")
        else:
            ok[k] = v
    return ok


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _algorithms(raw: Any, problems: list[str], check_params: Callable[[str, dict], list[str]]
                ) -> list[AlgoEntry]:
    if not isinstance(raw, list) or not raw:
        problems.append("[[algorithms]]: list at least one algorithm (e.g. [[algorithms]] name = \"nail-f\")")
        return []
    out: list[AlgoEntry] = []
    for i, a in enumerate(raw):
        where = f"algorithms[{i}]"
        if not isinstance(a, dict):
            problems.append(f"{where}: must be a table with a `name`, got {a!r}")
            continue
        problems += _unknown(a, _ALGO_KEYS, where)
        name = a.get("name")
        if not isinstance(name, str):
            problems.append(f"{where}: missing `name` (an algorithm from `neg train --list`)")
            continue
        where = f"algorithms[{i}] ({name})"
        params = a.get("params", {})
        if not isinstance(params, dict):
            problems.append(f"{where}.params: must be a table, got {params!r}")
            params = {}
        grid = _grid(a.get("grid"), f"{where}.grid", problems)
        for k in set(grid) & set(params):
            problems.append(f"{where}: `{k}` is both in params and grid; keep one")
        train = a.get("train", {})
        if not isinstance(train, dict):
            problems.append(f"{where}.train: must be a table, got {train!r}")
            train = {}
        train = _check_train_fields(train, f"{where}.train", problems)
        label = a.get("label")
        if label is not None and not isinstance(label, str):
            problems.append(f"{where}.label: must be a string, got {label!r}")
            label = None
        keys = list(grid)
        seen_msgs: set[str] = set()
        for values in itertools.product(*(grid[k] for k in keys)):
            varied = dict(zip(keys, values))
            full = {**params, **varied}
            for msg in check_params(name, full):
                if msg not in seen_msgs:  # one message per bad value, not per grid point
                    seen_msgs.add(msg)
                    problems.append(f"{where}: {msg}")
            shown = varied if label else full
            tag = ",".join(f"{k}={_fmt(v)}" for k, v in shown.items())
            base = label or name
            out.append(AlgoEntry(name=name, params=full, train=train, varied=varied,
                                 label=f"{base}({tag})" if tag else base))
    labels = [e.label for e in out]
    for dup in sorted({x for x in labels if labels.count(x) > 1}):
        problems.append(f"[[algorithms]]: two entries are both labelled `{dup}`; give one a `label`")
    return out


def _default_check_params(name: str, params: dict[str, Any]) -> list[str]:
    from agents.algos import check_params

    return check_params(name, params)


def _check_env(env_id: Any, configs: list[dict[str, Any]], problems: list[str], build: bool) -> None:
    import gymnasium as gym

    import noisy_expert_gym  # noqa: F401  (registers the envs)
    from noisy_expert_gym._util import did_you_mean

    if not isinstance(env_id, str):
        problems.append(f"[env] id: must be a registered env id such as \"NoisyModAdd-v0\", got {env_id!r}")
        return
    if env_id not in gym.registry:
        ours = [k for k in gym.registry if k.startswith("Noisy")]
        problems.append(f"[env] id: unknown env `{env_id}`; noisy-expert envs: {', '.join(ours)}."
                        f"{did_you_mean(env_id, gym.registry)}")
        return
    if not build:
        return
    seen: set[str] = set()
    for kw in configs:
        try:
            env = gym.make(env_id, **kw)
        except Exception as e:  # noqa: BLE001 - any constructor error is a spec problem
            msg = f"[env] {env_label(kw)}: {type(e).__name__}: {e}"
            if msg not in seen:
                seen.add(msg)
                problems.append(msg)
            continue
        if getattr(env.unwrapped, "expert", None) is None:
            problems.append(f"[env] id: `{env_id}` has no expert oracle (env.unwrapped.expert)")
            env.close()
            return
        env.close()


def parse_spec(raw: dict[str, Any], source: str = "<dict>", check_envs: bool = True,
               check_params: Callable[[str, dict], list[str]] | None = None) -> Spec:
    """Validate a parsed spec table; raise one :class:`SpecError` listing every problem."""
    problems: list[str] = []
    check_params = check_params or _default_check_params
    problems += _unknown(raw, _TOP_KEYS, "top level")
    for sec, allowed in _SECTION_KEYS.items():
        if isinstance(raw.get(sec), dict):
            problems += _unknown(raw[sec], allowed, f"[{sec}]")

    name = raw.get("name", "spec")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ "):
        problems.append(f"`name` must be a short word (no spaces or slashes), got {name!r}")
        name = "spec"
    description = raw.get("description", "")
    cost = raw.get("cost", "")
    for k, v in (("description", description), ("cost", cost)):
        if not isinstance(v, str):
            problems.append(f"`{k}` must be a string, got {v!r}")
    gpu_hours = raw.get("gpu_hours", 0.0)
    if not _is_num(gpu_hours) or gpu_hours < 0:
        problems.append(f"`gpu_hours` (expected cost) must be a number >= 0, got {gpu_hours!r}")
        gpu_hours = 0.0

    seeds = raw.get("seeds")
    if _is_int(seeds) and seeds > 0:
        seeds = list(range(seeds))
    if not (isinstance(seeds, list) and seeds and all(_is_int(s) and s >= 0 for s in seeds)):
        problems.append(f"`seeds` must be a count >= 1 or a non-empty list of integers >= 0, got {seeds!r}")
        seeds = [0]
    elif len(set(seeds)) != len(seeds):
        problems.append(f"`seeds` has repeated values: {seeds}")

    env = _table(raw, "env", problems, required=True)
    env_kwargs = env.get("kwargs", {})
    if not isinstance(env_kwargs, dict):
        problems.append(f"[env] kwargs: must be a table, got {env_kwargs!r}")
        env_kwargs = {}
    env_grid = _grid(env.get("grid"), "[env] grid", problems)
    for k in set(env_grid) & set(env_kwargs):
        problems.append(f"[env]: `{k}` is both in kwargs and grid; keep one")

    budget = _table(raw, "budget", problems, required=True)
    traj = budget.get("trajectories")
    if not (_is_int(traj) and traj > 0):
        problems.append(f"[budget] trajectories: must be an integer > 0 (expert trajectories per run), got {traj!r}")
        traj = None
    queries = budget.get("queries")
    if queries is not None and not (_is_int(queries) and queries > 0):
        problems.append(f"[budget] queries: must be an integer > 0 or left out, got {queries!r}")
        queries = None

    ev = _table(raw, "eval", problems)
    evcfg: dict[str, Any] = {}
    if "every" in ev:
        if not (_is_int(ev["every"]) and ev["every"] >= 0):
            problems.append(f"[eval] every: must be an integer >= 0 (trajectories), got {ev['every']!r}")
        elif traj is not None and ev["every"] > traj:
            problems.append(f"[eval] every: {ev['every']} exceeds the budget of {traj} trajectories")
        else:
            evcfg["eval_every"] = ev["every"]
    if "prompts" in ev:
        if not (_is_int(ev["prompts"]) and ev["prompts"] > 0):
            problems.append(f"[eval] prompts: must be an integer > 0, got {ev['prompts']!r}")
        else:
            evcfg["eval_prompts"] = ev["prompts"]
    if "seed" in ev:
        if not _is_int(ev["seed"]):
            problems.append(f"[eval] seed: must be an integer, got {ev['seed']!r}")
        else:
            evcfg["eval_seed"] = ev["seed"]
    if "stop_at" in ev:
        if not (_is_num(ev["stop_at"]) and 0 < ev["stop_at"] <= 1):
            problems.append(f"[eval] stop_at: must be in (0, 1], got {ev['stop_at']!r}")
        else:
            evcfg["stop_at"] = float(ev["stop_at"])

    train = _table(raw, "train", problems)
    train = _check_train_fields(train, "[train]", problems)

    rep = _table(raw, "report", problems)
    report = {"target": 0.99, "metric": "greedy_full_exact", **rep}
    if not (_is_num(report["target"]) and 0 < report["target"] <= 1):
        problems.append(f"[report] target: must be an accuracy in (0, 1], got {report['target']!r}")
    if report["metric"] not in REPORT_METRICS:
        problems.append(f"[report] metric: must be one of {', '.join(REPORT_METRICS)}, got {report['metric']!r}")

    algorithms = _algorithms(raw.get("algorithms"), problems, check_params)

    spec = Spec(name=name, source=source, description=description if isinstance(description, str) else "",
                cost=cost if isinstance(cost, str) else "", gpu_hours=float(gpu_hours), seeds=seeds,
                env_id=env.get("id"), env_kwargs=env_kwargs, env_grid=env_grid,
                budget_trajectories=traj or 1, budget_queries=queries, eval=evcfg, train=train,
                algorithms=algorithms, report=report)
    if env:
        _check_env(env.get("id"), [kw for kw, _ in spec.env_configs()], problems, check_envs)
    if problems:
        raise SpecError(source, problems)
    return spec
