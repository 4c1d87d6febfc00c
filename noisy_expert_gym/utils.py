"""Shared helpers, written once for every layer (public: ``agents`` and ``scoreboards``
import them too): name lookup with suggestions, array-backend dispatch, categorical
sampling, read-only mappings, atomic file writes, the command line's ``key=value`` options and one-line
errors."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean `x`?' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """Look `name` up in a plain-dict registry; unknown names raise with a suggestion."""
    try:
        return registry[name]
    except KeyError:
        valid = ", ".join(f"`{k}`" for k in registry)
        raise ValueError(
            f"unknown {what} `{name}`; valid values: {valid}.{did_you_mean(name, registry)}"
        ) from None


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping that pickles and deep-copies (``types.MappingProxyType`` does neither:
    gym#1866, Gymnasium#292). It equals any mapping with the same items; ``dict(m)`` is a copy to edit.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a FrozenMap is read-only; copy it with dict(m) to change it")

    def __reduce__(self) -> tuple[Any, ...]:
        return FrozenMap, (self._data,)


def is_torch(x: Any) -> bool:
    """True for a torch tensor (torch is imported lazily so numpy users never pay for it)."""
    return type(x).__module__.startswith("torch")


def check_rng_n(call: str, rng: Any, n: Any, torch_ok: bool = True) -> int:
    """Check the ``(rng, n)`` arguments of a task's sampling entry point; returns ``n`` as an int.

    ``rng`` must be a numpy ``Generator`` (or, where ``torch_ok``, a ``torch.Generator``) and ``n``
    a non-negative integer. Raises a TypeError naming `call`'s argument order (the common slip is
    ``sample_prompts(n, rng)``), or a ValueError for a negative ``n``.
    """
    kinds = "a numpy Generator" + (" or a torch.Generator" if torch_ok else "")
    ok = isinstance(rng, np.random.Generator) or (torch_ok and type(rng).__name__ == "Generator"
                                                    and type(rng).__module__.startswith("torch"))
    swapped = isinstance(n, np.random.Generator) or type(n).__name__ == "Generator"
    if not ok:
        hint = ": the arguments are swapped" if swapped else ""
        raise TypeError(f"{call}(rng, n): rng must be {kinds}, got {type(rng).__name__} {rng!r}{hint} "
                        f"(e.g. {call}(np.random.default_rng(0), 16))")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{call}(rng, n): n must be an integer count of prompts, got {type(n).__name__} {n!r}")
    if n < 0:
        raise ValueError(f"{call}(rng, n): n must be >= 0, got {n}")
    return int(n)


def cumsum(x: Any, axis: int) -> Any:
    """Cumulative sum along `axis` for numpy arrays and torch tensors."""
    return x.cumsum(dim=axis) if is_torch(x) else np.cumsum(x, axis=axis)


def one_hot(idx: Any, n: int, dtype: Any = None) -> Any:
    """One-hot float encoding of integer indices for numpy or torch, shape idx.shape + (n,)."""
    if is_torch(idx):
        import torch

        return torch.nn.functional.one_hot(idx.long(), n).to(dtype or torch.float32)
    idx = np.asarray(idx)
    out = np.zeros(idx.shape + (n,), dtype=dtype or np.float64)  # not np.eye(n): O(n^2) for a 262k vocabulary
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return out


def sample_categorical(probs: Any, generator: Any) -> Any:
    """One draw per row of `probs` (..., A) by inverse CDF: (...,) int64.

    numpy: ``generator`` is a ``np.random.Generator``; torch (any device): a
    ``torch.Generator`` on the tensor's device. One uniform per row, so a seeded
    generator gives the same draws on every call pattern of the same shapes.
    """
    if is_torch(probs):
        import torch

        u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
        return (u > probs.cumsum(-1)).sum(-1).clamp_(max=probs.shape[-1] - 1)
    u = generator.random(probs.shape[:-1] + (1,))
    return np.minimum((u > np.cumsum(probs, axis=-1)).sum(-1), probs.shape[-1] - 1).astype(np.int64)


# --------------------------------------------------------------------------- derived names
def exact_number(x: float) -> str:
    """A number as short text that names it exactly: ``f"{x:g}"`` where that reads back as `x` (0.2, 1e-05,
    3), else ``repr`` (0.1234567, not ``:g``'s 0.123457, which 0.1234571 shares). Distinct numbers, distinct
    texts: what every name derived from a value uses."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"exact_number takes a number, got {type(x).__name__}")
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    short = f"{float(x):g}"
    return short if float(short) == float(x) else repr(float(x))


def safe_name(name: str, allowed: str = "A-Za-z0-9._-") -> str:
    """`name` as a file name of the characters `allowed` (a regex class body), injectively: a name made of
    them only is itself; any other has them replaced by ``_`` and ``~`` plus 8 hex digits of its hash
    appended (``~`` is never in a name kept as it is, so no kept name equals a rewritten one)."""
    import hashlib
    import re

    if name and re.fullmatch(f"[{allowed}]+", name) and name not in (".", ".."):
        return name
    readable = re.sub(f"[^{allowed}]", "_", name)
    return f"{readable}~{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


# --------------------------------------------------------------------------- atomic file writes
#: A temporary whose writer is in another host or PID namespace (its pid means nothing here) is stale
#: once it has not been touched for this long; one of this namespace is stale as soon as its pid is dead.
STALE_AFTER_S = 3600.0


def _writer_tag() -> str:
    """This process's host and PID namespace, in 8 hex digits: pids are compared only within one."""
    import hashlib
    import socket

    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return hashlib.sha256(f"{socket.gethostname()}:{ns}".encode()).hexdigest()[:8]


_WRITER_TAG = _writer_tag()


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary name beside `path`: ``.<name>.<pid>.<writer tag>.<random>.tmp<suffix>``, the pattern
    :func:`remove_stale_temporaries` recognises."""
    import secrets

    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{_WRITER_TAG}.{secrets.token_hex(4)}.tmp{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's live process (or nothing we can tell): keep its file
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` (files or folders named by :func:`temp_sibling`, or by this helper's
    earlier ``.<name>.<pid>.<hex>.tmp`` pattern) that writers which died mid-write left behind.

    A temporary is stale when its writer's pid is dead, if the writer ran in this host and PID namespace;
    otherwise (another machine on a shared disk, a sandbox) when it has not been modified for
    :data:`STALE_AFTER_S`. A live writer's temporary -- a concurrent write of the same file -- is never
    touched. Returns what was removed.
    """
    import re
    import shutil
    import time

    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.(?:([0-9a-f]{{8}})\.)?[0-9a-f]+\.tmp")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None:
            continue
        pid, tag = int(m.group(1)), m.group(2)
        if tag in (None, _WRITER_TAG):
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:
            try:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            except OSError:
                continue
        if not stale:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        removed.append(Path(entry.path))
    return removed


def _fsync(path: Path, directory: bool = False) -> None:
    """Flush `path` (a file, or a folder's entries) to disk; where the platform cannot, nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(tmp: Path) -> None:
    import shutil

    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write (a file, or a folder the caller creates); on success
    flush it to disk and rename it over `path`. Every file this project writes goes through here.

    The rename is atomic on POSIX, so a reader sees the old file or the new one, never a
    half-written one; on an exception the temporary is removed and `path` is untouched. A process
    killed mid-write cannot remove its temporary: the next write of `path` removes it (and any other
    left by a dead writer, never a live one's: :func:`remove_stale_temporaries`). ``suffix`` keeps
    writers that pick a format from the name happy (``".png"``, ``".zip"``). Parent directories are
    created. A folder replaces only a missing `path` (or an empty folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temp_sibling(path, suffix)
    try:
        yield tmp
        if tmp.is_file():
            _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    finally:
        _remove(tmp)


@contextlib.contextmanager
def temporary_beside(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary folder beside `path` (same disk: what is built there can be renamed to `path` or
    next to it), removed on exit; one left by a killed process goes at the next call for `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temp_sibling(path)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        _remove(tmp)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write text or bytes to `path` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return Path(path)


def create_atomic(path: str | os.PathLike, data: str | bytes, mode: int = 0o600) -> bool:
    """Create `path` with `data` unless it exists, atomically: whoever reads it sees all of `data` or no
    file, and of concurrent creators exactly one wins (``O_EXCL`` semantics without its half-written
    file after a crash). Returns True if this call created it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temp_sibling(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if `path` exists: the first creator wins
        except FileExistsError:
            return False
        _fsync(path.parent, directory=True)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    """Command-line ``key=value`` pairs: ``['eta=0.2', 'law=mixture']`` -> ``{'eta': 0.2, 'law': 'mixture'}``.

    Values are parsed as JSON when they can be (numbers, booleans, lists, objects), else
    kept as strings. ``what`` names the option in the error (``"--env-kw"``).

    Raises:
        ValueError: an item without ``=``.
    """
    import json

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"{what} expects key=value, got `{item}`")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


#: What a user can fix: bad values and names (ValueError, ConfigError), files (OSError), missing extras.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, ImportError)
_OS_FIXES = {errno.EISDIR: "is a folder; give a file", errno.ENOTDIR: "is not a folder; give a folder",
             errno.ENOENT: "does not exist; check the path", errno.EACCES: "cannot be read or written "
             "(permission denied); check its permissions", errno.ENOSPC: "no space left on the device"}


def error_line(exc: BaseException) -> str:
    """A user-facing error as one line: a ConfigError's problems joined with ``; ``, an OSError's
    file and what to do, any other message with its lines joined."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems and hasattr(exc, "source"):
        n = len(problems)
        head = f"{exc.source}: " if n == 1 else f"{exc.source} has {n} problems: "
        return head + "; ".join(problems)
    if isinstance(exc, OSError) and exc.filename is not None:
        fix = _OS_FIXES.get(exc.errno or -1, exc.strerror or type(exc).__name__)
        return f"{exc.filename} {fix}"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``neg CMD: error: ... (see neg CMD --help)``)
    and exit code 2, like every other error of the command line. Options are never abbreviated
    (``--smok`` is an error, not ``--smoke``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def run_command(prog: str, func: Any, args: Any) -> int:
    """Run a parsed command: a user's error is one line on stderr (``prog: error: ...``, exit 2);
    an unexpected exception is one line too (exit 1), its traceback shown with ``NEG_DEBUG=1``."""
    import sys

    try:
        return int(func(args) or 0)
    except USER_ERRORS as e:
        print(f"{prog}: error: {error_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if os.environ.get("NEG_DEBUG"):
            raise
        print(f"{prog}: error: internal error {type(e).__name__}: {error_line(e)} (rerun with NEG_DEBUG=1 "
              "for the traceback, and please report it)", file=sys.stderr)
        return 1
