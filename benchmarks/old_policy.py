"""The policy before the speed work, read from git history: the ``impl=old`` baseline of
:mod:`benchmarks.train_speed`.

``agents/policy.py`` as it stood at :data:`PIN` (the parent of 3ef6140, "Policy speed (issue
12)") is the eager path the speed-up is measured against: SDPA attention, rotary embeddings by
chunk/multiply/cat, the head and the last block run at every position, a cached rollout step
through the modules. That file imports torch and nothing of this project, and its
``TransformerPolicy`` has the parameter names of today's :class:`agents.policy.TransformerPolicy`
and reads from its config only fields today's :class:`agents.policy.PolicyConfig` still has, so
``BaselinePolicy(cfg).load_state_dict(policy.state_dict())`` gives the same function
(``tests/benchmarks/test_train_speed.py`` checks it). Benchmarks only: nothing trains with it.

It is read with ``git show PIN:agents/policy.py`` on first use of ``BaselinePolicy`` (or
:func:`load`), rather than kept as a second copy of the policy in the tree; so the ratio needs a
clone that has that commit. A source archive (no ``.git``) or a shallow clone raises
:class:`OldPolicyUnavailable` saying so; ``train_speed --no-baseline``, and ``--compare`` without
``impl=old``, need no history.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PIN = "8cf22d0383e257ac0de142a49fafc9432f3b9fc2"
"""The commit whose ``agents/policy.py`` is the old policy (the last one before issue 12's speed work)."""
PATH = "agents/policy.py"
"""The file read at :data:`PIN`."""


class OldPolicyUnavailable(RuntimeError):
    """The pinned file cannot be read: no git, no repository, or a history without :data:`PIN`."""


class _PinnedSource(importlib.abc.InspectLoader):
    """A loader of source text held in memory, so tracebacks still show its lines."""

    def __init__(self, source: str, filename: str) -> None:
        self.source, self.filename = source, filename

    def get_source(self, fullname: str) -> str:
        return self.source

    def get_code(self, fullname: str) -> CodeType:
        return compile(self.source, self.filename, "exec", dont_inherit=True)


def read_pinned(pin: str = PIN, path: str = PATH) -> str:
    """The text of `path` at commit `pin` of the repository this file is in.

    Raises:
        OldPolicyUnavailable: git is missing, this is no git checkout, or `pin` is not in its history.
    """
    cmd = ["git", "-C", str(ROOT), "show", f"{pin}:{path}"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OldPolicyUnavailable(
            f"the old-path baseline (impl=old) is {path} at commit {pin[:12]}, read with git, and git is not "
            "installed; install git, or measure without it (train_speed --no-baseline)") from None
    if out.returncode:
        raise OldPolicyUnavailable(
            f"the old-path baseline (impl=old) is {path} at commit {pin[:12]}, read from this checkout's git "
            f"history, and `{' '.join(cmd)}` failed: {out.stderr.strip()}\n"
            "Run from a git clone of the project (a shallow one: `git fetch --unshallow` first; a source "
            "archive has no history), or measure without the baseline (train_speed --no-baseline, or "
            "--compare settings without impl=old).")
    return out.stdout


def load(pin: str = PIN, path: str = PATH) -> ModuleType:
    """`path` at commit `pin`, executed as a module of its own (``old_policy_<pin>``).

    The module is registered in ``sys.modules`` while it runs, as any import is (its dataclasses
    look their module up there), under a name of its own: it never stands in for ``agents.policy``.
    """
    name = f"old_policy_{pin[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    loader = _PinnedSource(read_pinned(pin, path), f"<git {pin[:12]}:{path}>")
    spec = importlib.util.spec_from_loader(name, loader, origin=f"git:{pin}:{path}")
    assert spec is not None  # spec_from_loader with a loader always gives one
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def __getattr__(name: str) -> Any:
    """``BaselinePolicy``, the old policy class (``BaselinePolicy(cfg)`` for a
    :class:`agents.policy.PolicyConfig`), read from git on first use, not on import."""
    if name == "BaselinePolicy":
        return load().TransformerPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
