"""Code provenance: the package version, git commit and library versions behind a result, and when.

A run's key includes :func:`code_version`, so results made by different code are
never mistaken for one another (re-running a spec after a commit re-runs it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
#: Libraries whose versions are recorded with every run.
_LIBRARIES = ("noisy-expert-gym", "torch", "numpy", "gymnasium", "scipy")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout holding this package, or None (installed from a wheel, no git)."""
    top = _git("rev-parse", "--show-toplevel")
    # Only our own repository counts, not some enclosing one (e.g. a site-packages in a repo).
    if not top or Path(top).resolve() != _ROOT or not (_ROOT / "scoreboards").is_dir():
        return None
    return _git("rev-parse", "HEAD")


@functools.cache
def git_dirty() -> bool:
    """Whether the checkout's package sources differ from HEAD (uncommitted changes)."""
    if git_commit() is None:
        return False
    out = _git("status", "--porcelain", "--untracked-files=no", "--", "noisy_expert_gym", "agents",
               "scoreboards")
    return bool(out)


def package_version() -> str:
    try:
        return metadata.version("noisy-expert-gym")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@functools.cache
def code_version() -> str:
    """``<package version>+<commit[:12]>[.dirty]`` (or just the version without git)."""
    commit = git_commit()
    if commit is None:
        return package_version()
    return f"{package_version()}+{commit[:12]}{'.dirty' if git_dirty() else ''}"


@functools.cache
def package_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    out = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def now() -> str:
    """The time a result is recorded: UTC, ISO 8601, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal configs give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(*parts: Any, n: int = 16) -> str:
    """A hex digest of the canonical JSON of `parts` (first `n` characters)."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:n]


def file_hash(path: str | Path, n: int = 12) -> str:
    """A hex digest of a file's bytes (submissions are identified by their source)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:n]
