"""The algorithm registry: a plain dict, name -> :class:`~agents.algos.base.Algorithm`.

:func:`agents.algos.base.register` adds to it, and the algorithm files register when
:mod:`agents.algos` is imported, which ``import agents`` does before anything else.
This module imports nothing of ``agents``: the training configuration
(:class:`~agents.config.TrainConfig`) checks ``algo`` and ``algo_params`` here (each
algorithm's declared parameters) without importing the algorithms, which sit above
the configuration (their contract and plumbing take a ``TrainConfig``). For the same
reason the dict's values are typed loosely here; each is an ``Algorithm``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from noisy_expert_gym.declarations import Declared, dotted, error_lines
from noisy_expert_gym.utils import did_you_mean

#: Every registered algorithm by name, in registration order (an ``agents.algos.base.Algorithm`` each).
ALGORITHMS: dict[str, Any] = {}


def check_params(name: str, params: dict[str, Any]) -> list[str]:
    """Every problem with an algorithm name and its parameters (empty list: all fine)."""
    if name not in ALGORITHMS:
        return [f"unknown algorithm `{name}`; valid: {', '.join(ALGORITHMS)}.{did_you_mean(name, ALGORITHMS)}"]
    model: type[Declared] = ALGORITHMS[name].params
    try:
        model.model_validate(dict(params))
    except ValidationError as err:
        valid = list(model.model_fields)
        return error_lines(
            err, model, place=lambda loc, kind: f"{name}: {dotted(loc)}" if loc else name,
            unknown=lambda loc: f"`{name}` has no parameter `{loc[0]}` (valid: {', '.join(valid) or 'none'})."
                                f"{did_you_mean(str(loc[0]), valid)}")
    return []


def resolve_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `params`, or ValueError listing every problem."""
    problems = check_params(name, params)
    if problems:
        raise ValueError("; ".join(problems))
    return ALGORITHMS[name].params.model_validate(dict(params)).model_dump()


__all__ = ["ALGORITHMS", "check_params", "resolve_params"]
