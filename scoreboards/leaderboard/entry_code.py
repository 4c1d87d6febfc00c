"""The code of a board entry: its files read once, their hash, and a private content-addressed copy.

A submission is one file (``path/to/algo.py:Class``), a directory (``path/to/dir/:Class``:
``submission.py`` holds the class; every file below the directory is part of it), or an
importable module (``module:Class``: its source file).

Submission files are untrusted, and the harness reads them before any sandbox exists, so
:func:`submission_code` reads them **once, without following links** (each file opened
with ``O_NOFOLLOW`` relative to its already-open folder, checked to be a regular file
with one link): only regular files and folders are accepted; a symbolic link, a hard
link, a FIFO, a socket or a device anywhere in the submission is refused with the name of
the offending file, so nothing outside the submission (the harness's secret file, its
``/proc/self/environ``, ...) is ever read on its behalf. The bytes read are what is
hashed (:func:`code_digest`), stored (:func:`store_code`) and shown to the worker (the
sandbox copies them in from the harness's memory: :mod:`~scoreboards.leaderboard.submission.sandbox`).

The copy lives in ``<results dir>/code/<digest>/`` (folders 0700, files 0600: private to
the harness's user). The digest covers the relative path and bytes of every file **and the
class the target names** (with the file holding it), so two classes of one file are two
entries' code, equal code and class are stored once, and a changed byte is a different
entry. File and directory submissions are run from that copy, so what ran is exactly what
is stored; module submissions run as given (they may import their package), and their
stored file is re-run as a file, which may fail (the entry is then marked as not
re-runnable when verified). Built-in algorithms are identified by the project's code version.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from noisy_expert_gym.utils import atomic_path

#: The file holding the class of a directory submission (the worker's convention).
ENTRY_FILE = "submission.py"
#: Names never part of a directory submission's code (not read, not stored, not shown to the worker).
IGNORED = ("__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache")
#: Most files, bytes and folder depth of one submission.
MAX_FILES, MAX_BYTES, MAX_DEPTH = 256, 16 << 20, 16
#: What the digest of a stored copy is computed under (bumped when the key changes).
DIGEST_VERSION = "neg-code/v2"


def shown(name: str) -> str:
    """A name from a submission as an error message may quote it (no control characters)."""
    return ascii(name)


@dataclass(frozen=True)
class SubmissionCode:
    """A submission's files, as read once: ``data`` maps each relative path to its bytes."""

    kind: str  # "file", "dir" or "module"
    root: Path
    data: dict[str, bytes] = field(repr=False)
    entry: str  # the relative path of the file holding the class
    cls: str

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(sorted(self.data))


class _Reader:
    """Reads a tree of regular files without following links, within :data:`MAX_FILES` and
    :data:`MAX_BYTES`."""

    def __init__(self, what: str) -> None:
        self.what, self.data, self.total = what, {}, 0

    def refuse(self, rel: str, why: str) -> ValueError:
        return ValueError(f"{self.what}: {shown(rel)} {why}; a submission holds regular files and folders "
                          "only (they are read without following links)")

    def file(self, dfd: int, name: str, rel: str) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as e:
            if e.errno == 40:  # ELOOP: the name is a symbolic link
                raise self.refuse(rel, "is a symbolic link") from None
            raise ValueError(f"{self.what}: cannot read {shown(rel)} ({e.strerror})") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self.refuse(rel, "is not a regular file")
            if st.st_nlink != 1:
                raise self.refuse(rel, f"is a hard link ({st.st_nlink} names for one file): copy it")
            if len(self.data) >= MAX_FILES:
                raise ValueError(f"{self.what} has more than {MAX_FILES} files")
            if self.total + st.st_size > MAX_BYTES:
                raise ValueError(f"{self.what} is larger than {MAX_BYTES >> 20} MiB")
            chunks, got = [], 0
            while chunk := os.read(fd, min(1 << 20, MAX_BYTES - self.total - got + 1)):
                chunks.append(chunk)
                got += len(chunk)
                if self.total + got > MAX_BYTES:
                    raise ValueError(f"{self.what} is larger than {MAX_BYTES >> 20} MiB")
        finally:
            os.close(fd)
        self.total += got
        self.data[rel] = b"".join(chunks)

    def tree(self, dfd: int, prefix: str = "", depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(f"{self.what} nests folders deeper than {MAX_DEPTH}")
        for name in sorted(os.listdir(dfd)):
            rel = prefix + name
            if name in IGNORED or name.startswith("."):
                continue
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise self.refuse(rel, "is a symbolic link")
            if stat.S_ISREG(st.st_mode):
                self.file(dfd, name, rel)
            elif stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                except OSError as e:
                    raise ValueError(f"{self.what}: cannot open folder {shown(rel)} ({e.strerror})") from None
                try:
                    self.tree(sub, rel + "/", depth + 1)
                finally:
                    os.close(sub)
            else:
                raise self.refuse(rel, "is not a regular file (a FIFO, socket or device)")


def _open_dir(path: Path, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(f"{what}: cannot open {path} ({e.strerror})") from None


def read_tree(root: Path, what: str) -> dict[str, bytes]:
    """Every regular file below `root` (relative path -> bytes), read without following links."""
    reader = _Reader(what)
    fd = _open_dir(root, what)
    try:
        reader.tree(fd)
    finally:
        os.close(fd)
    return reader.data


def read_file(path: Path, what: str) -> bytes:
    """One regular file's bytes, read without following a link at its name."""
    reader = _Reader(what)
    fd = _open_dir(path.parent, what)
    try:
        reader.file(fd, path.name, path.name)
    finally:
        os.close(fd)
    return reader.data[path.name]


def _is_dir_target(mod: str) -> bool:
    return ("/" in mod or os.sep in mod) and Path(mod).is_dir()


def submission_code(target: str) -> SubmissionCode:
    """The files of a (non-built-in) submission target, read once without following links.

    Raises:
        ValueError: a malformed target, one whose files cannot be found, or one holding
            anything but regular files and folders (links, FIFOs, sockets, devices).
    """
    mod, sep, cls = target.rpartition(":")
    if not sep or not mod or not cls:
        raise ValueError(f"a submission must be `module:Class`, `path/to/file.py:Class` or `dir/:Class`, "
                         f"got {shown(target)}")
    if _is_dir_target(mod):
        if os.path.islink(mod.rstrip("/" + os.sep)):
            raise ValueError(f"submission directory {mod} is a symbolic link; give the folder itself")
        root = Path(mod).resolve()
        data = read_tree(root, f"submission directory {mod}")
        if ENTRY_FILE not in data:
            raise ValueError(f"submission directory {mod} has no {ENTRY_FILE} (the file holding `{cls}`)")
        return SubmissionCode("dir", root, data, ENTRY_FILE, cls)
    if mod.endswith(".py") or "/" in mod or os.sep in mod:
        if not os.path.lexists(mod):
            raise ValueError(f"submission file {mod} does not exist")
        path = Path(os.path.abspath(mod))
        path = path.parent.resolve() / path.name  # links in the folders above are the caller's
        return SubmissionCode("file", path.parent, {path.name: read_file(path, "submission file")}, path.name, cls)
    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        raise ValueError(f"cannot find the source of module `{mod}`")
    path = Path(spec.origin)
    path = path.parent.resolve() / path.name
    return SubmissionCode("module", path.parent, {path.name: read_file(path, f"module `{mod}`")}, path.name, cls)


def code_digest(code: SubmissionCode) -> str:
    """SHA-256 over the relative path and bytes of every file (sorted), the file holding the
    class and the class's name: the key of the stored copy."""
    h = hashlib.sha256(f"{DIGEST_VERSION}\0".encode())
    for rel in sorted(code.data):
        data = code.data[rel]
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    h.update(f"entry\0{code.entry}\0class\0{code.cls}".encode())
    return h.hexdigest()


def code_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "code"


def stored_code(results_dir: str | Path, digest: str) -> SubmissionCode | None:
    """The stored copy `digest`, read back (without following links) and checked against its
    digest; None if it is missing or altered."""
    if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        return None
    d = code_dir(results_dir) / digest
    try:
        manifest = json.loads(read_file(d / "manifest.json", "stored code"))
        data = read_tree(d / "files", "stored code")
        code = SubmissionCode(manifest["kind"], d / "files", data, manifest["entry"], manifest["class"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if sorted(manifest.get("files", [])) != sorted(data) or code_digest(code) != digest:
        return None
    return code


def rerun_target(results_dir: str | Path, digest: str) -> str | None:
    """The target that runs the stored copy `digest`, or None if it is not stored (intact)."""
    code = stored_code(results_dir, digest)
    if code is None:
        return None
    if code.kind == "dir":
        return f"{code.root}/:{code.cls}"
    return f"{code.root / code.entry}:{code.cls}"


def _private_dir(path: Path, top: Path | None = None) -> None:
    """`path` and its missing parents (below `top`) as folders only their owner can enter."""
    if top is not None and path != top and top in path.parents:
        _private_dir(path.parent, top)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def store_code(target: str, results_dir: str | Path) -> tuple[str, str]:
    """Read a submission's files once and copy those bytes into the private content-addressed store.

    Returns:
        (sha256 digest, the target to run): the stored copy for file and directory
        submissions, `target` itself for module submissions.

    Raises:
        ValueError: see :func:`submission_code`.
    """
    code = submission_code(target)
    digest = code_digest(code)
    top = code_dir(results_dir)
    _private_dir(top)
    dest = top / digest
    if stored_code(results_dir, digest) is None:
        # Built in a private temporary folder renamed into place when complete (a copy killed half-way
        # is removed by the next store of this digest); an incomplete one there is replaced.
        with atomic_path(dest) as tmp:
            _private_dir(tmp / "files", top)
            for rel, data in code.data.items():
                _private_dir((tmp / "files" / rel).parent, top)
                _write_private(tmp / "files" / rel, data)
            _write_private(tmp / "manifest.json", json.dumps(
                {"kind": code.kind, "files": list(code.files), "entry": code.entry, "class": code.cls},
                indent=1).encode())
            shutil.rmtree(dest, ignore_errors=True)
    run = rerun_target(results_dir, digest)
    assert run is not None
    return digest, (target if code.kind == "module" else run)


__all__ = ["ENTRY_FILE", "MAX_BYTES", "MAX_FILES", "SubmissionCode", "code_digest", "code_dir", "read_file",
           "read_tree", "rerun_target", "store_code", "stored_code", "submission_code"]
