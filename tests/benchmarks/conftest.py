from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A results database path that does not exist yet (as tests/scoreboards' fixture)."""
    return tmp_path / "results" / "neg.sqlite"
