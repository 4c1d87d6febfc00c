"""The algorithm registry: a plain dict from name to :class:`Algorithm`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from noisy_expert_gym._util import did_you_mean, lookup


@dataclass(frozen=True)
class Algorithm:
    """One imitation algorithm over the shared trainer loop.

    Attributes:
        name: registry key.
        summary: one line for `neg train --list`.
        defaults: algorithm-specific hyperparameters and their defaults.
        collect: ``collect(ctx, params) -> Batch``: choose the prefixes to learn on
            (a student rollout, an expert rollout, a dataset minibatch) and query
            the expert there.
        loss: ``loss(logits, batch, params) -> (B, H)`` per-position loss.
        setup: optional ``setup(ctx, params)`` run once before training (e.g. build
            BC's dataset); its state lives in ``ctx.state``.
        uses_clean_expert: reads the clean expert (reference ceilings only; never on
            a leaderboard).
        checks: per-parameter validators returning an error message or None.
        run: optional ``run(cfg, params) -> RunResult`` for an algorithm that does not
            fit the student-prefix loop (e.g. the PPO reinforcement-learning reference);
            ``agents.train`` hands the whole run to it.
    """

    name: str
    summary: str
    defaults: dict[str, Any]
    collect: Callable[..., Any]
    loss: Callable[..., Any]
    setup: Callable[..., Any] | None = None
    uses_clean_expert: bool = False
    checks: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)
    run: Callable[..., Any] | None = None


ALGORITHMS: dict[str, Algorithm] = {}


def register(alg: Algorithm) -> Algorithm:
    if alg.name in ALGORITHMS:
        raise ValueError(f"algorithm `{alg.name}` is already registered")
    ALGORITHMS[alg.name] = alg
    return alg


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called `name`; unknown names raise ValueError with a suggestion."""
    return lookup(ALGORITHMS, name, "algorithm")


def unit_interval(name: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
        return None if ok else f"`{name}` must be in [0, 1], got {v!r}"
    return check


def non_negative(name: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        return None if ok else f"`{name}` must be >= 0, got {v!r}"
    return check


def one_of(name: str, values: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in values else (
            f"`{name}` must be one of {', '.join(values)}, got {v!r}.{did_you_mean(str(v), values)}")
    return check


def check_params(name: str, params: dict[str, Any]) -> list[str]:
    """Every problem with an algorithm name and its parameters (empty list: all fine)."""
    if name not in ALGORITHMS:
        return [f"unknown algorithm `{name}`; valid: {', '.join(ALGORITHMS)}.{did_you_mean(name, ALGORITHMS)}"]
    alg = ALGORITHMS[name]
    problems = []
    for k, v in params.items():
        if k not in alg.defaults:
            valid = ", ".join(alg.defaults) or "none"
            problems.append(f"`{name}` has no parameter `{k}` (valid: {valid}).{did_you_mean(k, alg.defaults)}")
        elif k in alg.checks and (msg := alg.checks[k](v)):
            problems.append(f"{name}: {msg}")
    return problems


def resolve_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `params`, or ValueError listing every problem."""
    problems = check_params(name, params)
    if problems:
        raise ValueError("; ".join(problems))
    return {**ALGORITHMS[name].defaults, **params}
