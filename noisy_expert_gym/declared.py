"""Declared configuration: pydantic models whose types and constraints are the validation.

Every configuration of the suite (training, algorithm parameters, experiment specs,
boards) is a :class:`Declared` model: unknown keys are refused (``extra="forbid"``)
with a did-you-mean hint, and :meth:`Declared.parse` collects *every* problem of a
file or a command line into one :class:`ConfigError` whose lines say where and how
to fix each one. Command-line options are generated from the same declarations
(:func:`field_docs` gives each field's one-line description).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

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
    def problems_in(cls, data: Mapping[str, Any], where: str = "") -> list[str]:
        """Every problem with `data` as this model, one readable line each (empty: valid)."""
        try:
            cls.model_validate(dict(data))
        except ValidationError as e:
            return error_lines(e, cls, where)
        return []

    @classmethod
    def parse(cls, data: Mapping[str, Any], source: str) -> Self:
        """The validated model, or a :class:`ConfigError` naming `source` and every problem."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise ConfigError(source, error_lines(e, cls, "")) from None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (sub)model that owns the last key of `loc`, for did-you-mean hints."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(cur, type) and issubclass(cur, BaseModel) and isinstance(part, str):
            f = cur.model_fields.get(part)
            ann = f.annotation if f else None
            cur = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)
                        and issubclass(a, BaseModel)), ann)
        elif isinstance(part, int):
            continue
        else:
            return None
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def error_lines(err: ValidationError, model: type[BaseModel], where: str = "") -> list[str]:
    """pydantic errors as one line each: ``where.loc: message, got value``, with hints."""
    out = []
    for e in err.errors(include_url=False):
        loc = tuple(e.get("loc", ()))
        path = ".".join(str(x) for x in loc)
        at = f"{where}.{path}" if where and path else (where or path or "(top level)")
        if e["type"] == "extra_forbidden":
            owner = _model_at(model, loc)
            valid = list(owner.model_fields) if owner else []
            hint = did_you_mean(str(loc[-1]), valid) if valid else ""
            listing = f" (valid: {', '.join(valid)})" if valid else ""
            out.append(f"{at}: unknown key{listing}.{hint}".replace(".. ", ". ").rstrip("."))
            continue
        msg = e["msg"]
        msg = msg.removeprefix("Value error, ").replace("Input should be", "must be")
        got = e.get("input")
        shown = "" if e["type"] == "missing" else f", got {got!r}"
        out.append(f"{at}: {msg}{shown}")
    return out


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Each field's one-line description (its docstring in the class body)."""
    return {k: (f.description or "") for k, f in model.model_fields.items()}


__all__ = ["ConfigError", "Declared", "error_lines", "field_docs"]
