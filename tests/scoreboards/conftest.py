from __future__ import annotations

from pathlib import Path

import pytest

TINY_SPEC = """
description = "test spec"
cost = "seconds"
seeds = [0, 1]

[env]
id = "NoisyModAdd-v0"
kwargs = { p = 7, m = 3, law = "absorbing" }
grid = { eta = [0.0, 0.2] }

[budget]
trajectories = 1000

[eval]
every = 500
prompts = 64

[train]
preset = "tiny"
batch_size = 128
device = "cpu"

[[algorithms]]
name = "bc"

[[algorithms]]
name = "nail-f"

[[algorithms]]
name = "nail-mixed"
grid = { beta = [0.0, 1.0] }
"""


@pytest.fixture
def tiny_spec_path(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_SPEC)
    return p


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results" / "neg.sqlite"
