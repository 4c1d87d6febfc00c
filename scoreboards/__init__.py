"""Scoreboards: experiment specs, sweeps (local pool or Ray), a SQLite results store,
statistics, plots, reports, and leaderboards with verified submissions.

>>> from scoreboards import load_spec, run_sweep, build_report, ResultStore
>>> spec = load_spec("quick")                       # doctest: +SKIP
>>> with ResultStore("results/neg.sqlite") as db:   # doctest: +SKIP
...     run_sweep(spec, db)
...     print(build_report(spec, db).tables)

The top layer (it imports ``agents`` and ``noisy_expert_gym``; neither imports it).
The ``neg`` entry point is :mod:`scoreboards.cli`, collecting every package's
subcommands; the scoreboards' own are ``neg bench run|report|export|list``,
``neg board show|list|baselines`` and ``neg submit`` (:mod:`scoreboards.commands`).
Specs and boards are declared models (:mod:`scoreboards.spec_model`,
:mod:`scoreboards.boards`, on :mod:`scoreboards.config`). Modules are imported on
first use (the submission worker must not pull in the env package).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_spec": "scoreboards.specs", "parse_spec": "scoreboards.specs", "Spec": "scoreboards.spec_model",
    "SpecError": "scoreboards.spec_model", "RunSpec": "scoreboards.spec_model",
    "run_sweep": "scoreboards.runner", "SweepSummary": "scoreboards.runner",
    "ResultStore": "scoreboards.store",
    "build_report": "scoreboards.report",
    "summarize": "scoreboards.stats", "probability_of_improvement": "scoreboards.stats",
    "load_board": "scoreboards.boards", "submit": "scoreboards.boards", "render_board": "scoreboards.boards",
    "ExpertClient": "scoreboards.submission", "SubmissionRejected": "scoreboards.submission",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scoreboards' has no attribute {name!r}")
