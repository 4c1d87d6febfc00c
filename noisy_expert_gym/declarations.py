"""Declared configuration: pydantic models whose types and constraints are the validation.

Every configuration of the suite -- an env's keyword arguments, training, algorithm
parameters, experiment specs, boards -- is a :class:`Declared` model: unknown keys are
refused (``extra="forbid"``) with a did-you-mean hint, and *every* problem of a file, a
command line or a call comes back at once, one line each that says where and how to fix
it. The declarations live here, in the lowest layer, because all three layers declare
with them.

- :class:`Declared`: the base model; :meth:`Declared.parse` (a :class:`ConfigError`
  listing every problem) and :meth:`Declared.check` (one ValueError, the problems joined
  with ``; ``: how an env's keyword arguments are refused).
- :func:`error_lines`: the one formatter of pydantic's errors into those lines; a layer
  that names places in its own words (a TOML file's ``[train] lr``) passes ``place``.
- Numbers: pydantic's own constrained types (:data:`NonNegativeInt`, :data:`PositiveFloat`,
  :data:`NonNegativeFloat`; :data:`PositiveInt` as ``Field(ge=1)``, a count) and
  :data:`UnitInterval`, each with one meaning everywhere, and a boolean is never a number
  (``True`` is not ``1`` here).
- :func:`checked`: a field validated by a check function of the layer that owns the rule,
  with that function's message (an env's keyword arguments keep the messages their
  classes give).
- :func:`field_docs`: each field's one-line description (command-line help).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Self

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WrapValidator,
)

from noisy_expert_gym.utils import did_you_mean


class ConfigError(ValueError):
    """A configuration with problems; ``problems`` lists every one (one line each)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} has {n} problem{'s' * (n != 1)}:\n{lines}")


class Declared(BaseModel):
    """Base of every declared configuration: unknown keys refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=True,
                              use_attribute_docstrings=True)

    @classmethod
    def field_names(cls) -> list[str]:
        """The model's fields, those the most derived class declares first, then its bases' (pydantic lists
        inherited fields first): the order messages and listings show them in."""
        out: list[str] = []
        for klass in cls.__mro__:
            out += [k for k in vars(klass).get("__annotations__", {}) if k in cls.model_fields and k not in out]
        return out + [k for k in cls.model_fields if k not in out]

    @classmethod
    def unknown_key(cls, key: str) -> str:
        """The problem of an unknown `key` in this model (a subclass may say more, e.g. where it belongs)."""
        valid = cls.field_names()
        return f"unknown key `{key}` (valid: {', '.join(valid)}).{did_you_mean(key, valid)}".rstrip(".")

    @classmethod
    def problems_in(cls, data: Mapping[str, Any]) -> list[str]:
        """Every problem with `data` as this model, one readable line each (empty: valid)."""
        try:
            cls.model_validate(dict(data))
        except ValidationError as e:
            return error_lines(e, cls)
        return []

    @classmethod
    def parse(cls, data: Mapping[str, Any], source: str) -> Self:
        """The validated model, or a :class:`ConfigError` naming `source` and every problem."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise ConfigError(source, error_lines(e, cls)) from None

    @classmethod
    def check(cls, data: Mapping[str, Any]) -> Self:
        """The validated model, or one ValueError whose message is every problem joined with ``; ``:
        how keyword arguments are refused. A validator's message stands alone (it names the
        argument: a single problem reads exactly as written); pydantic's get the argument's name."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            lines = error_lines(e, cls, place=lambda loc, kind: "" if kind == "value_error" or not loc
                                else f"`{dotted(loc)}`")
            raise ValueError("; ".join(lines)) from None


# ----- numbers ---------------------------------------------------------------------------------
def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(f"must be a number, not a boolean, got {v!r}")  # noqa: TRY004  (pydantic wants ValueError)
    return v


def _unit(v: float) -> float:
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"must be in [0, 1], got {v!r}")
    return v


NOT_BOOL = BeforeValidator(_not_bool)
"""Refuses booleans where a number is declared (pydantic would read ``True`` as ``1``)."""
PositiveInt = Annotated[int, Field(ge=1), NOT_BOOL]
"""An integer >= 1 (a count: refused as "greater than or equal to 1")."""
NonNegativeInt = Annotated[pydantic.NonNegativeInt, NOT_BOOL]
"""An integer >= 0."""
PositiveFloat = Annotated[pydantic.PositiveFloat, NOT_BOOL]
"""A number > 0."""
NonNegativeFloat = Annotated[pydantic.NonNegativeFloat, NOT_BOOL]
"""A number >= 0."""
UnitInterval = Annotated[float, NOT_BOOL, AfterValidator(_unit)]
"""A number in [0, 1] (a probability, a mixing weight)."""


def checked(check: Callable[[Any], object]) -> WrapValidator:
    """A field validator that runs ``check(value)`` first (it raises ValueError saying how to fix the
    value), then the declared type, and keeps the value as given: a keyword argument is passed on
    exactly as written (``7`` stays an ``int``, a numpy integer stays one)."""

    def validate(value: Any, handler: Callable[[Any], Any]) -> Any:
        check(value)
        handler(value)
        return value

    return WrapValidator(validate)


# ----- problems as lines -------------------------------------------------------------------------
def _model_in(hint: Any) -> type[BaseModel] | None:
    """The model a field's type holds (itself, or inside an ``X | None``, a list, a dict)."""
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    return next((m for a in typing.get_args(hint) if (m := _model_in(a)) is not None), None)


def model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (sub)model whose table `loc` names (``()``: `model` itself); None when it is no model."""
    cur: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = cur.model_fields.get(part) if cur is not None and isinstance(part, str) else None
        if field is None:
            return None
        cur = _model_in(field.annotation)
    return cur


def _choices(hint: Any) -> list[str]:
    """The string values of the ``Literal`` in a field's type (for a did-you-mean)."""
    if typing.get_origin(hint) is typing.Literal:
        return [c for c in typing.get_args(hint) if isinstance(c, str)]
    return [c for a in typing.get_args(hint) for c in _choices(a)]


def dotted(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a dotted path, ``grid.beta`` (empty at the top level)."""
    return ".".join(str(p) for p in loc)


def error_lines(err: ValidationError, model: type[BaseModel], *,
                place: Callable[[tuple[Any, ...], str], str] | None = None,
                unknown: Callable[[tuple[Any, ...]], str] | None = None,
                own_kinds: Iterable[str] = ("value_error",), pydantic_words: bool = False) -> list[str]:
    """pydantic's errors as one line each, ``place: problem`` (every layer's one formatter).

    - an unknown key: the owning model's :meth:`Declared.unknown_key` (valid keys, a suggestion);
    - a missing one: ``required but missing``;
    - a message of our own (``own_kinds``: our validators' ``ValueError``; a layer adds its own
      error kinds): as written (it says what it got), one line per line of it;
    - pydantic's: its message and ``, got <value>``, with a suggestion for a ``Literal`` typo.

    Args:
        err: the validation error.
        model: the model that was validated (finds the owners of unknown keys and ``Literal`` choices).
        place: ``place(loc, kind) -> text`` names where a problem is (default: the dotted
            field path, nothing at the top level); a layer names places in its own words.
        unknown: ``unknown(loc) -> line``: the whole line for an unknown key (default above).
        own_kinds: error kinds whose message is ours, shown as is.
        pydantic_words: keep pydantic's wording (``input should be ...``); by default it
            reads ``must be ...``.

    Returns:
        The lines, each problem once, in pydantic's order.
    """
    where = place or (lambda loc, kind: dotted(loc))
    own = set(own_kinds)
    out: list[str] = []
    for e in err.errors(include_url=False):
        kind, loc = e["type"], tuple(e.get("loc", ()))
        if kind == "extra_forbidden":
            if unknown is not None:
                out.append(unknown(loc))
                continue
            owner = model_at(model, loc[:-1])
            problems = [owner.unknown_key(str(loc[-1])) if owner is not None and issubclass(owner, Declared)
                        else "unknown key"]
            loc = loc[:-1]
        elif kind == "missing":
            problems = ["required but missing"]
        elif kind in own:
            problems = e["msg"].removeprefix("Value error, ").splitlines()
        else:
            msg = e["msg"]
            msg = f"{msg[:1].lower()}{msg[1:]}" if pydantic_words else msg.replace("Input should be", "must be")
            problems = [f"{msg}, got {e.get('input')!r}"]
            owner = model_at(model, loc[:-1]) if loc else None
            field = owner.model_fields.get(loc[-1]) if owner is not None and isinstance(loc[-1], str) else None
            if kind == "literal_error" and field is not None and (hint := did_you_mean(str(e.get("input")),
                                                                                       _choices(field.annotation))):
                problems[0] += f".{hint}"
        at = where(loc, kind)
        out += [f"{at}: {p}" if at else p for p in problems]
    return list(dict.fromkeys(out))


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's one-line description (its docstring in the class body)."""
    return {k: (f.description or "") for k, f in model.model_fields.items()}


__all__ = ["NOT_BOOL", "ConfigError", "Declared", "NonNegativeFloat", "NonNegativeInt", "PositiveFloat",
           "PositiveInt", "UnitInterval", "checked", "dotted", "error_lines", "field_docs", "model_at"]
