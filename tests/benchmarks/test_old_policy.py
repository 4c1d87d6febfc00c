"""The old-path baseline is read from git history (benchmarks.old_policy): where that history is
missing, the error says why and what to run instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import old_policy
from tests.benchmarks import needs_pinned_history


@needs_pinned_history
def test_the_pinned_file_is_the_old_policy_under_a_name_of_its_own() -> None:
    module = old_policy.load()
    assert module.__name__ == f"old_policy_{old_policy.PIN[:12]}"
    assert old_policy.BaselinePolicy is module.TransformerPolicy
    assert old_policy.load() is module  # read once per process


def test_no_repository_says_to_run_from_a_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(old_policy, "ROOT", tmp_path)  # a folder outside any git repository
    with pytest.raises(old_policy.OldPolicyUnavailable, match="from a git clone") as err:
        old_policy.read_pinned()
    assert "--no-baseline" in str(err.value)


def test_a_history_without_the_pin_says_to_unshallow() -> None:
    with pytest.raises(old_policy.OldPolicyUnavailable, match="git fetch --unshallow"):
        old_policy.read_pinned(pin="0" * 40)
