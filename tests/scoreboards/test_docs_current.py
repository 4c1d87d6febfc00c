"""The READMEs describe what the code does (issue 27: a stale `quick` row, "until the sandbox lands",
a quick start that never said where `neg` is)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_row_describes_the_shipped_quick_spec():
    spec = tomllib.loads((ROOT / "scoreboards/sweeps/shipped_specs/quick.toml").read_text())
    row = next(line for line in (ROOT / "scoreboards/README.md").read_text().splitlines()
               if line.startswith("| `quick` |"))
    horizons = "{" + ", ".join(str(m) for m in spec["env"]["grid"]["m"]) + "}"
    assert f"m in {horizons}" in row and spec["env"]["id"] in row, row
    for key, value in spec["env"]["kwargs"].items():  # every fixed kwarg, as `key = value` (the law by name)
        assert (f"{key} = {value}" if key != "law" else str(value)) in row, (key, row)
    assert f"{spec['budget']['trajectories'] // 1000}k-trajectory cap" in row, row
    assert f"{len(spec['seeds'])} seeds" in row, row
    for algo in {a["name"] for a in spec["algorithms"]}:
        assert algo.upper().replace("-", "") in row.upper().replace("-", ""), (algo, row)


def test_no_promise_of_a_sandbox_that_has_landed():
    assert (ROOT / "scoreboards/leaderboard/submission/sandbox.py").exists()
    assert "until the sandbox lands" not in (ROOT / "scoreboards/README.md").read_text().lower()


def test_the_quick_start_says_where_neg_lives():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert ". .venv/bin/activate" in quick_start and ".venv/bin/neg" in quick_start
