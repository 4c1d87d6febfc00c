"""Code provenance: the package version, git commit and library versions behind a result, and when.

A run's key includes :func:`code_version`, so results made by different code are
never mistaken for one another: re-running a spec after a commit re-runs it, and so does
re-running it after any edit of the code, committed or not (:func:`code_changes` digests
the content of every code file that differs from the commit, untracked ones included).
A plugin algorithm's own file is part of its runs' identity too
(:func:`agents.registry.plugin_digest`).
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


def _git(*args: str, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if strip else out.stdout


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout holding this package, or None (installed from a wheel, no git)."""
    top = _git("rev-parse", "--show-toplevel")
    # Only our own repository counts, not some enclosing one (e.g. a site-packages in a repo).
    if not top or Path(top).resolve() != _ROOT or not (_ROOT / "scoreboards").is_dir():
        return None
    return _git("rev-parse", "HEAD")


#: What a run can execute: the packages (modules, shipped specs and boards, templates) and the
#: project file; an untracked ``.py`` file anywhere else counts too (a helper or an algorithm beside
#: the packages), except under the folders no run imports.
CODE_PATHS = ("noisy_expert_gym/", "agents/", "scoreboards/", "pyproject.toml")
NOT_RUN = ("tests/", "benchmarks/", "docs/")


def _is_code(path: str, tracked: bool) -> bool:
    if path.startswith(CODE_PATHS):
        return True
    return not tracked and path.endswith(".py") and not path.startswith(NOT_RUN)


@functools.cache
def code_changes() -> str | None:
    """A digest (12 hex digits) of the code that differs from HEAD, or None for a clean checkout.

    Every code file (:data:`CODE_PATHS`) that git reports as changed, staged or not, deleted or
    untracked (ignored files excepted), hashed by path and content: each edit gives a new digest,
    and undoing it gives the old one back. One ``git status`` and the changed files' bytes, a few
    milliseconds (``tests/scoreboards/test_provenance.py`` measures it).
    """
    if git_commit() is None:
        return None
    out = _git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
               strip=False)
    if not out:
        return None
    h = hashlib.sha256()
    found = False
    for entry in sorted(e for e in out.split("\0") if len(e) > 3):
        state, path = entry[:2], entry[3:]
        if not _is_code(path, tracked=state != "??"):
            continue
        found = True
        file = _ROOT / path
        h.update(path.encode() + b"\0")
        h.update(file.read_bytes() if file.is_file() else b"<deleted>")
        h.update(b"\0")
    return h.hexdigest()[:12] if found else None


def git_dirty() -> bool:
    """Whether the checkout's code differs from HEAD (:func:`code_changes`)."""
    return code_changes() is not None


def package_version() -> str:
    try:
        return metadata.version("noisy-expert-gym")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@functools.cache
def code_version() -> str:
    """``<package version>+<commit[:12]>[.dirty-<digest of the changes>]`` (or just the version
    without git): every edit of the code, committed or not, is another version."""
    commit = git_commit()
    if commit is None:
        return package_version()
    changes = code_changes()
    return f"{package_version()}+{commit[:12]}{f'.dirty-{changes}' if changes else ''}"


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
