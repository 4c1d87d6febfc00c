"""Fixtures of the leaderboard tests."""

from __future__ import annotations

import pytest

from scoreboards.leaderboard import hidden

#: A fixed test secret (hex), so the drawn instances and the scores of hidden boards are reproducible.
TEST_SECRET = "5eed" * 16


@pytest.fixture
def secret(tmp_path, monkeypatch) -> bytes:
    """The harness's secret (the practice instances) in a file of its own, as a results directory holds it."""
    path = tmp_path / "secret"
    path.write_text(TEST_SECRET + "\n")
    path.chmod(0o600)
    monkeypatch.setenv(hidden.SECRET_FILE_ENV, str(path))
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    return bytes.fromhex(TEST_SECRET)
