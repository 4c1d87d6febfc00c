"""The code of a board entry: its files, their hash, and a content-addressed copy to re-run.

A submission is one file (``path/to/algo.py:Class``), a directory (``path/to/dir/:Class``:
``submission.py`` holds the class; every file below the directory is part of it), or an
importable module (``module:Class``: its source file). :func:`store_code` copies those
files into ``<results dir>/code/<sha256>/`` -- the digest of the relative paths and
bytes of every file (:func:`code_digest`), so equal code is stored once and a changed
byte is a different entry -- and returns the target that runs the copy. File and
directory submissions are run from that copy, so what ran is exactly what is stored;
module submissions run as given (they may import their package), and their stored
file is re-run as a file, which may fail (the entry is then marked as not re-runnable
when verified). Built-in algorithms are identified by the project's code version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from noisy_expert_gym.utils import atomic_path

#: The file holding the class of a directory submission (the worker's convention).
ENTRY_FILE = "submission.py"
#: Names never part of a directory submission's code.
IGNORED = ("__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True)
class SubmissionCode:
    """A submission's files: ``root`` and the relative paths under it."""

    kind: str  # "file", "dir" or "module"
    root: Path
    files: tuple[str, ...]
    entry: str  # the relative path of the file holding the class
    cls: str


def _is_dir_target(mod: str) -> bool:
    return ("/" in mod or os.sep in mod) and Path(mod).is_dir()


def submission_code(target: str) -> SubmissionCode:
    """The files of a (non-built-in) submission target.

    Raises:
        ValueError: a malformed target or one whose files cannot be found.
    """
    mod, sep, cls = target.rpartition(":")
    if not sep or not mod or not cls:
        raise ValueError(f"a submission must be `module:Class`, `path/to/file.py:Class` or `dir/:Class`, "
                         f"got {target!r}")
    if _is_dir_target(mod):
        root = Path(mod).resolve()
        files = tuple(sorted(str(p.relative_to(root)) for p in root.rglob("*")
                             if p.is_file() and not any(part in IGNORED or part.startswith(".")
                                                        for part in p.relative_to(root).parts)))
        if ENTRY_FILE not in files:
            raise ValueError(f"submission directory {mod} has no {ENTRY_FILE} (the file holding `{cls}`)")
        return SubmissionCode("dir", root, files, ENTRY_FILE, cls)
    if mod.endswith(".py") or "/" in mod or os.sep in mod:
        path = Path(mod).resolve()
        if not path.is_file():
            raise ValueError(f"submission file {mod} does not exist")
        return SubmissionCode("file", path.parent, (path.name,), path.name, cls)
    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ValueError(f"cannot find the source of module `{mod}`")
    path = Path(spec.origin).resolve()
    return SubmissionCode("module", path.parent, (path.name,), path.name, cls)


def code_digest(code: SubmissionCode) -> str:
    """SHA-256 over the relative path and bytes of every file (sorted)."""
    h = hashlib.sha256()
    for rel in sorted(code.files):
        data = (code.root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def code_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "code"


def rerun_target(results_dir: str | Path, digest: str) -> str | None:
    """The target that runs the stored copy `digest`, or None if it is not stored (intact)."""
    d = code_dir(results_dir) / digest
    try:
        manifest = json.loads((d / "manifest.json").read_text())
        code = SubmissionCode(manifest["kind"], d / "files", tuple(manifest["files"]), manifest["entry"],
                              manifest["class"])
    except (OSError, ValueError, KeyError):
        return None
    try:
        if code_digest(code) != digest:
            return None
    except OSError:
        return None
    if code.kind == "dir":
        return f"{code.root}/:{code.cls}"
    return f"{code.root / code.entry}:{code.cls}"


def store_code(target: str, results_dir: str | Path) -> tuple[str, str]:
    """Copy a submission's files into the content-addressed store.

    Returns:
        (sha256 digest, the target to run): the stored copy for file and directory
        submissions, `target` itself for module submissions.
    """
    code = submission_code(target)
    digest = code_digest(code)
    dest = code_dir(results_dir) / digest
    if rerun_target(results_dir, digest) is None:
        # The copy is built in a temporary folder renamed into place when complete (a copy killed
        # half-way is removed by the next store of this digest); an incomplete one there is replaced.
        with atomic_path(dest) as tmp:
            for rel in code.files:
                (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(code.root / rel, tmp / "files" / rel)
            (tmp / "manifest.json").write_text(json.dumps(
                {"kind": code.kind, "files": list(code.files), "entry": code.entry, "class": code.cls,
                 "target": target}, indent=1))
            shutil.rmtree(dest, ignore_errors=True)
    run = rerun_target(results_dir, digest)
    assert run is not None
    return digest, (target if code.kind == "module" else run)


__all__ = ["ENTRY_FILE", "SubmissionCode", "code_digest", "code_dir", "rerun_target", "store_code",
           "submission_code"]
