"""The benchmarks are scripts beside the packages, not part of the wheel."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_leaves_the_benchmarks_out() -> None:
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packaged = [pattern for pattern in find["include"] if fnmatch.fnmatch("benchmarks", pattern)]
    assert not packaged, f"pyproject.toml packages `benchmarks` (include {packaged}); they are scripts"
    assert (ROOT / "benchmarks" / "__init__.py").is_file()  # `python -m benchmarks.X` from the root
