"""Experiment specs: load a shipped spec or a TOML file, apply overrides, validate it as a whole.

The file format and the spec model are in :mod:`scoreboards.sweeps.spec_model`; this module
finds the file (a shipped name from ``scoreboards/sweeps/shipped_specs/`` or a path), applies
``--set section.key=value`` overrides and validates the result, collecting every
problem into one :class:`SpecError`::

    spec = load_spec("quick", overrides=["budget.trajectories=5000", "seeds=[0]"])
    spec.runs()     # every run of the grid, keyed by identity + seed + code version
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scoreboards.config import apply_overrides, load_toml, parse_override, shipped, validate
from scoreboards.sweeps.spec_model import (
    REPORT_METRICS,
    AlgoEntry,
    RunSpec,
    Spec,
    SpecError,
    SpecFile,
    env_label,
    run_config,
    run_identity,
    run_key,
)

SPEC_DIR = Path(__file__).resolve().parent / "shipped_specs"


def shipped_specs() -> list[str]:
    """Names of the specs shipped with the package."""
    return shipped(SPEC_DIR)


def load_spec(name_or_path: str | Path, overrides: Iterable[str] = (), check_envs: bool = True) -> Spec:
    """Load and validate a spec: a shipped spec's name (``quick``) or a TOML file path.

    Args:
        name_or_path: shipped spec name or path to a ``.toml`` file.
        overrides: dotted ``key=value`` edits applied before validation
            (``budget.trajectories=5000``, ``seeds=[0]``, ``train.device="cuda"``).
        check_envs: build every env config's problem once to validate its kwargs.

    Raises:
        SpecError: listing every problem found.
    """
    path, raw = load_toml(name_or_path, SPEC_DIR, "spec", SpecError, overrides)
    return parse_spec({"name": path.stem, **raw}, source=str(path), check_envs=check_envs)


def parse_spec(raw: dict[str, Any], source: str = "<dict>", check_envs: bool = True,
               check_params: Callable[[str, dict], list[str]] | None = None) -> Spec:
    """Validate a parsed spec table; raise one :class:`SpecError` listing every problem.

    Args:
        check_envs: build the problem of every env config (its kwargs are validated there).
        check_params: ``check_params(algo, params) -> problems`` (default
            ``agents.algos.check_params``).
    """
    context = {"check_envs": check_envs, "check_params": check_params}
    return validate(SpecFile, raw, source, SpecError, context).to_spec(source)


def needs_download(spec: Spec) -> bool:
    """Whether building the spec's envs or students would fetch weights: an ``hf:`` value among
    an env config's kwargs (expert, tokenizer), a run's preset or its evaluation env kwargs."""

    def hub(value: Any) -> bool:
        return isinstance(value, str) and value.startswith("hf:")

    return any(hub(v) for r in spec.runs()
               for v in (r.config["preset"], *r.env_kwargs.values(), *r.config["eval_env_kwargs"].values()))


__all__ = ["REPORT_METRICS", "SPEC_DIR", "AlgoEntry", "RunSpec", "Spec", "SpecError", "apply_overrides",
           "env_label", "load_spec", "needs_download", "parse_override", "parse_spec", "run_config", "run_identity", "run_key",
           "shipped_specs"]
