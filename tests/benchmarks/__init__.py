"""Tests of the benchmark scripts (benchmarks/): helpers shared by them."""

from __future__ import annotations

import pytest

from benchmarks import old_policy


def _pinned_history_missing() -> str:
    """Why the old policy cannot be read from git here ('' when it can)."""
    try:
        old_policy.read_pinned()
    except old_policy.OldPolicyUnavailable as err:
        return str(err)
    return ""


_MISSING = _pinned_history_missing()
#: The old-path baseline needs the git history holding its pinned commit; a shallow clone or a
#: source archive lacks it (then these tests skip with the reason, and the scripts say what to run).
needs_pinned_history = pytest.mark.skipif(bool(_MISSING), reason=_MISSING or "history present")
