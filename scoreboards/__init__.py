"""Scoreboards: experiment specs, sweeps (local pool or Ray), a SQLite results store,
statistics, plots, reports, and leaderboards with verified submissions.

>>> from scoreboards import load_spec, run_sweep, build_report, ResultStore
>>> spec = load_spec("quick")                       # doctest: +SKIP
>>> with ResultStore("results/neg.sqlite") as db:   # doctest: +SKIP
...     run_sweep(spec, db)
...     print(build_report(spec, db).tables)

The top layer (it imports ``agents`` and ``noisy_expert_gym``; neither imports it), one
subpackage per concern: :mod:`scoreboards.sweeps` (specs and running them),
:mod:`scoreboards.analysis` (statistics, figures, reports, horizon scaling) and
:mod:`scoreboards.leaderboard` (boards, submissions and their sandbox, verification, the web
site), over what they share (:mod:`scoreboards.config`, :mod:`scoreboards.store`,
:mod:`scoreboards.export`, :mod:`scoreboards.provenance`). The ``neg`` entry point is
:mod:`scoreboards.cli`, collecting every package's subcommands; the scoreboards' own are
``neg bench run|report|horizon|export|list``, ``neg board show|list|baselines|verify|publish|secret``
and ``neg submit`` (:mod:`scoreboards.commands`). Specs and boards are declared models
(:mod:`scoreboards.sweeps.spec_model`, :mod:`scoreboards.leaderboard.board_model`, on
:mod:`scoreboards.config`). Modules are imported on first use (the submission worker must
not pull in the env package).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_spec": "scoreboards.sweeps.specs", "parse_spec": "scoreboards.sweeps.specs", "Spec": "scoreboards.sweeps.spec_model",
    "SpecError": "scoreboards.sweeps.spec_model", "RunSpec": "scoreboards.sweeps.spec_model",
    "run_sweep": "scoreboards.sweeps.runner", "SweepSummary": "scoreboards.sweeps.runner",
    "ResultStore": "scoreboards.store",
    "build_report": "scoreboards.analysis.report",
    "summarize": "scoreboards.analysis.stats", "probability_of_improvement": "scoreboards.analysis.stats",
    "load_board": "scoreboards.leaderboard.boards", "submit": "scoreboards.leaderboard.entries",
    "render_board": "scoreboards.leaderboard.render",
    "ExpertClient": "scoreboards.leaderboard.submission", "SubmissionRejected": "scoreboards.leaderboard.submission",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'scoreboards' has no attribute {name!r}")
