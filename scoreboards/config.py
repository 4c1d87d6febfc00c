"""What specs and boards share: their TOML files, declared field types and error lines.

Specs (:mod:`scoreboards.sweeps.spec_model`) and boards (:mod:`scoreboards.leaderboard.board_model`) are
:class:`~noisy_expert_gym.declarations.Declared` models: the types and constraints
below *are* their validation. :func:`validate` runs a model over a parsed TOML
table and turns every problem into one line that names the place in the file's
own words (``[budget] trajectories``, ``algorithms[2] (nail-mixed).grid.beta``)
and says how to fix it; :func:`load_toml` finds a shipped file by name, reads it
and applies ``--set section.key=value`` overrides.

The ``train`` tables take the fields of ``agents.config.TrainConfig`` (read from its
declaration) except those the harness owns (:data:`HARNESS_OWNED`).
"""

from __future__ import annotations

import copy
import os
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agents.config import TrainConfig
from noisy_expert_gym.declarations import ConfigError, Declared, PositiveInt, error_lines
from noisy_expert_gym.utils import did_you_mean

M = TypeVar("M", bound=BaseModel)


class TomlModel(Declared):
    """A table of a TOML file: unknown keys refused, values taken as typed (no ``"3"`` -> 3)."""

    model_config = ConfigDict(strict=True)

    @classmethod
    def unknown_key(cls, key: str) -> str:
        """The line for an unknown `key` in this table."""
        valid = list(cls.model_fields)
        return f"unknown key `{key}` (valid: {', '.join(valid)}).{did_you_mean(key, valid)}".rstrip(".")


# ----- field types ---------------------------------------------------------------------------
def _known_env(env_id: str) -> str:
    from noisy_expert_gym.problems import family_of

    family_of(env_id)  # unknown ids raise with the registered ones and a suggestion
    return env_id


def _distinct(values: list[Any]) -> list[Any]:
    if len({repr(v) for v in values}) != len(values):
        raise ValueError(f"has repeated values {values!r}")
    return values


def _count_to_seeds(v: Any) -> Any:
    """``seeds = 3`` means ``seeds = [0, 1, 2]``."""
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise ValueError(f"a count of seeds must be >= 1, got {v}")
        return list(range(v))
    return v


EnvId = Annotated[str, AfterValidator(_known_env)]
"""A registered noisy-expert env id (``NoisyModAdd-v0``)."""
Seeds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)]
"""A non-empty list of distinct integers >= 0."""
SeedsOrCount = Annotated[Seeds, BeforeValidator(_count_to_seeds)]
"""Seeds, or their count (``3`` -> ``[0, 1, 2]``)."""
Grid = dict[str, Annotated[list[Any], Field(min_length=1), AfterValidator(_distinct)]]
"""Values to sweep per key: one run per combination."""


class EnvTable(TomlModel):
    """``[env]``: the env and its kwargs; each config's problem is built once to check them."""

    id: EnvId
    """A registered noisy-expert env id, such as ``NoisyModAdd-v0``."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """The env's keyword arguments (fixed for every run)."""

    def configs(self) -> list[dict[str, Any]]:
        """The kwargs of every env config."""
        return [dict(self.kwargs)]

    @model_validator(mode="after")
    def _buildable(self, info: ValidationInfo) -> Self:
        if not (info.context or {}).get("check_envs", True):
            return self
        from noisy_expert_gym import make_problem

        problems = []
        for kw in self.configs():
            try:
                make_problem(self.id, **kw)  # the family's builder checks every kwarg
            except Exception as e:  # noqa: BLE001 - any builder error is a problem of the file
                label = ",".join(f"{k}={v}" for k, v in kw.items())
                problems.append(f"{label}: {type(e).__name__}: {e}".replace("\n", " "))
        if problems:
            raise ValueError("\n".join(dict.fromkeys(problems)))
        return self


def check_algorithm(name: str, points: list[dict[str, Any]], info: ValidationInfo,
                    problems: Sequence[str] = ()) -> None:
    """Raise with `problems` and every problem of algorithm `name` at each parameter point
    (``agents.algos.check_params``, or the validation context's ``check_params``), as
    problems of the whole entry (a field validator runs beside the other fields' checks)."""
    check = (info.context or {}).get("check_params")
    if check is None:
        from agents.algos import check_params as check
    found = [*problems, *(msg for params in points for msg in check(name, params))]
    if found:  # one line per bad value, not per grid point
        raise _problems("of_table", "\n".join(dict.fromkeys(found)))


class BudgetTable(TomlModel):
    """``[budget]``: what each run may spend."""

    trajectories: PositiveInt
    """Expert trajectories per run."""
    queries: PositiveInt | None = None
    """Optional cap on expert prefix-queries per run."""


# ----- training fields -------------------------------------------------------------------------
#: TrainConfig fields the harness sets itself; a spec or board sets them through its own sections.
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


def _keep_int(value: Any, handler: Callable[[Any], Any]) -> Any:
    """Check an integer against a float field, but keep it as written (run keys hash the value)."""
    out = handler(value)
    return value if type(value) is int else out


def _as_written(hint: Any) -> Any:
    args = typing.get_args(hint)
    takes_float = hint is float or (typing.get_origin(hint) in (typing.Union, UnionType) and float in args)
    return Annotated[hint, WrapValidator(_keep_int)] if takes_float else hint


def _constrained(hint: Any, metadata: list[Any]) -> Any:
    return Annotated[hint, *metadata] if metadata else hint


def _train_field_types() -> dict[str, Any]:
    """Each settable TrainConfig field's type, constraints included, from its declaration."""
    return {k: _constrained(_as_written(f.annotation), f.metadata) for k, f in TrainConfig.model_fields.items()}


class _TrainBase(TomlModel):
    @classmethod
    def unknown_key(cls, key: str) -> str:
        if key in HARNESS_OWNED:
            return f"`{key}` is set by the harness; {HARNESS_OWNED[key]}"
        return (f"`{key}` is not a training field.{did_you_mean(key, cls.model_fields)} "
                "(`neg train --help` lists them)")

    def fields(self) -> dict[str, Any]:
        """The fields this table sets (the rest keep TrainConfig's defaults)."""
        return self.model_dump(exclude_unset=True)


TrainFields: type[_TrainBase] = create_model(
    "TrainFields", __base__=_TrainBase, __doc__="TrainConfig fields shared by runs (harness-owned ones excluded).",
    **{k: (t, None) for k, t in _train_field_types().items() if k not in HARNESS_OWNED})


def train_problems(train: Mapping[str, Any]) -> list[str]:
    """Every problem with training fields given on their own (``neg submit --train``)."""
    try:
        TrainFields.model_validate(dict(train))
    except ValidationError as e:
        return problem_lines(e, TrainFields, {}, at=("train",))
    return []


# ----- problems as lines -------------------------------------------------------------------------
#: Tables shown as ``[name]``, and arrays of tables with the key that names an entry.
SECTIONS = ("env", "budget", "eval", "train", "report", "protocol")
TABLE_ARRAYS = {"algorithms": "name", "baselines": "algo"}


def where(loc: tuple[Any, ...], raw: Mapping[str, Any]) -> str:
    """A pydantic location in the file's words: ``[env] grid.eta``, ``algorithms[1] (bc).train``."""
    if not loc:
        return "top level"
    head, rest = str(loc[0]), [str(p) for p in loc[1:]]
    if head in TABLE_ARRAYS:
        if not rest:
            return f"[[{head}]]"
        i, rest = loc[1], rest[1:]
        entries = raw.get(head)
        entry = entries[i] if isinstance(entries, list) and isinstance(i, int) and i < len(entries) else None
        name = entry.get(TABLE_ARRAYS[head]) if isinstance(entry, dict) else None
        return f"{head}[{i}]" + (f" ({name})" if isinstance(name, str) else "") + "".join(f".{p}" for p in rest)
    if head in SECTIONS:
        return f"[{head}]" + (f" {'.'.join(rest)}" if rest else "")
    return f"`{'.'.join([head, *rest])}`"


def problem_lines(err: ValidationError, model: type[BaseModel], raw: Mapping[str, Any],
                  at: tuple[str, ...] = ()) -> list[str]:
    """One line per problem, places in the file's words (:func:`where`); a validator that found
    several lists them one per line.

    ``at``: where `model`'s table sits in the file (``("train",)``), when validated alone.
    """
    return error_lines(err, model, own_kinds=("value_error", *_KINDS), pydantic_words=True,
                       place=lambda loc, kind: where((*at, *(loc[:-1] if kind == "of_table" else loc)), raw))


#: Our own error kinds: problems of the table holding the field, problems found across tables.
_KINDS = ("of_table", "whole_file")


def _problems(kind: str, lines: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{lines}", {"lines": lines})


def report_with(handler: Callable[[Any], Any], data: Any, model: str, problems: list[tuple[tuple, str]]) -> Any:
    """Validate `data` with `handler` and report `problems` (location, message) with its own.

    For checks across sections that read the raw table: a model's after-validators run only
    once every field is valid, these are listed together with any other problem.
    """
    if not problems:
        return handler(data)
    errors: list[Any] = []
    try:
        handler(data)
    except ValidationError as e:  # re-raised below with the others (our own kinds rebuilt)
        errors = [{**x, "type": _problems(x["type"], x["msg"])} if x["type"] in _KINDS else x for x in e.errors()]
    errors += [{"type": _problems("whole_file", msg), "loc": loc, "input": data} for loc, msg in problems]
    raise ValidationError.from_exception_data(model, errors)


def validate(model: type[M], raw: Mapping[str, Any], source: str,
             error: Callable[[str, list[str]], ConfigError] = ConfigError,
             context: dict[str, Any] | None = None) -> M:
    """`raw` as a `model`, or `error(source, lines)` listing every problem."""
    try:
        return model.model_validate(dict(raw), context=context)
    except ValidationError as e:
        raise error(source, problem_lines(e, model, raw)) from None


# ----- files ------------------------------------------------------------------------------------
def looks_like_path(text: str | Path) -> bool:
    """Whether a name the user typed is a path: a ``Path``, or text with a ``/`` (``./quick``,
    ``specs/quick.toml``), a ``.toml`` suffix or a leading ``~``. Anything else is a shipped name,
    so a folder or file called ``quick`` in the working directory never shadows the shipped ``quick``."""
    if isinstance(text, Path):
        return True
    return "/" in text or os.sep in text or text.endswith(".toml") or text.startswith("~")


def resolve_path(name_or_path: str | Path, directory: Path, what: str) -> Path:
    """A shipped file's path from its name, or the given path (:func:`looks_like_path` decides which,
    one way only); raise with a suggestion and the fix."""
    names = shipped(directory)
    if looks_like_path(name_or_path):
        p = Path(name_or_path).expanduser()
        if p.is_dir():
            raise ValueError(f"{what} path {p} is a folder; give a {what} file (.toml), or a shipped {what}'s "
                             f"name ({', '.join(names)})")
        if not p.exists():
            raise FileNotFoundError(f"{what} file {p} does not exist; give an existing .toml file, or a "
                                    f"shipped {what}'s name ({', '.join(names)})")
        return p
    cand = directory / f"{name_or_path}.toml"
    if cand.exists():
        return cand
    local = (f" (to use the {'folder' if Path(name_or_path).is_dir() else 'file'} `{name_or_path}` here, "
             f"write ./{name_or_path})" if Path(name_or_path).exists() else "")
    raise ValueError(f"unknown {what} `{name_or_path}`: the shipped {what}s are {', '.join(names)}; a file is "
                     f"given as a path (with a `/` or a .toml suffix){local}."
                     f"{did_you_mean(str(name_or_path), names)}")


def shipped(directory: Path) -> list[str]:
    """Names of the TOML files shipped in `directory`."""
    return sorted(p.stem for p in directory.glob("*.toml"))


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


def load_toml(name_or_path: str | Path, directory: Path, what: str,
              error: Callable[[str, list[str]], ConfigError], overrides: Iterable[str] = ()
              ) -> tuple[Path, dict[str, Any]]:
    """(path, table) of a shipped file's name or a path, with `overrides` applied."""
    path = resolve_path(name_or_path, directory, what)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise error(str(path), [f"not valid TOML: {e}"]) from None
    except UnicodeDecodeError:
        raise error(str(path), [f"not a text file: a {what} is a TOML file"]) from None
    return path, apply_overrides(raw, overrides)
