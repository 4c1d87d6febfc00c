"""A memory cgroup around one sandbox: the board's memory limit for all its processes together.

Per-process limits (``RLIMIT_AS``, ``RLIMIT_FSIZE``: :mod:`~scoreboards.leaderboard.submission.worker`)
bind every kind of memory one process maps or writes, but N processes may use N times
them. Where the harness may make a cgroup, every sandbox runs in a fresh one whose memory
limit is the board's ``memory_mb`` (shared memory, memory files and tmpfs pages are charged
there too; no swap), and, on cgroup v2, whose process count is ``max_procs``:

- **cgroup v2** (the unified hierarchy): a child of the harness's own cgroup, where that
  cgroup delegates the ``memory`` controller to its children (e.g. a harness started with
  ``systemd-run --user --scope -p Delegate=yes``);
- **cgroup v1**: a child of the harness's cgroup in the ``memory`` hierarchy (a root
  harness, as in containers and CI, usually may).

Otherwise :func:`available` is False, :func:`why_unavailable` says why, and the per-process
limits stand alone. The sandbox's first process joins its cgroup before it starts
(:func:`Cgroup.wrap`); when the run ends the cgroup is emptied and removed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

#: Where the cgroup file systems are found.
MOUNTINFO = "/proc/self/mountinfo"


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, file system type, super options) of every mount."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path(MOUNTINFO).read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and len(rest) >= 3:
                out.append((fields[4].replace("\\040", " "), rest[0], set(rest[2].split(","))))
    return out


def _own(controller: str | None) -> str | None:
    """The harness's cgroup path in a v1 hierarchy (`controller`) or in v2 (None)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if (controller is None and names == "") or (controller and controller in names.split(",")):
                return path
    return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@dataclass
class Cgroup:
    """One sandbox's cgroup directory (``v`` 1 or 2)."""

    path: Path
    v: int

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd`, started by a shell that first moves itself into this cgroup (then ``exec``)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"), *cmd]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process here for want of memory."""
        name = "memory.events" if self.v == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def remove(self) -> None:
        """Kill whatever is left in it and remove it (retried while the kernel empties it)."""
        for _ in range(50):
            with contextlib.suppress(OSError):
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


def _v2_parent() -> Path:
    roots = [m for m, fstype, _ in _mounts() if fstype == "cgroup2"]
    own = _own(None)
    if not roots or own is None:
        raise OSError("no cgroup v2 hierarchy holds this process")
    parent = Path(roots[0]) / own.lstrip("/")
    if "memory" not in (parent / "cgroup.controllers").read_text().split():
        raise OSError(f"cgroup v2 {parent} does not offer the memory controller")
    if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
        _write(parent / "cgroup.subtree_control", "+memory")  # refused if the cgroup holds processes
    return parent


def _v1_parent() -> Path:
    roots = [m for m, fstype, opts in _mounts() if fstype == "cgroup" and "memory" in opts]
    own = _own("memory")
    if not roots or own is None:
        raise OSError("no cgroup v1 memory hierarchy holds this process")
    return Path(roots[0]) / own.lstrip("/")


def _make(parent: Path, v: int, memory_bytes: int, max_procs: int | None) -> Cgroup:
    path = parent / f"neg-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    cg = Cgroup(path, v)
    try:
        if v == 2:
            _write(path / "memory.max", str(memory_bytes))
            with contextlib.suppress(OSError):
                _write(path / "memory.swap.max", "0")
            if max_procs is not None and (path / "pids.max").exists():
                _write(path / "pids.max", str(max_procs))
        else:
            _write(path / "memory.limit_in_bytes", str(memory_bytes))
            if (path / "memory.memsw.limit_in_bytes").exists():  # no swap: memory + swap = memory
                _write(path / "memory.memsw.limit_in_bytes", str(memory_bytes))
    except BaseException:
        cg.remove()
        raise
    return cg


def create(memory_mb: int, max_procs: int | None = None) -> Cgroup | None:
    """A fresh cgroup limiting memory to `memory_mb` MiB (and processes to `max_procs` on v2), or None
    where the harness may make none."""
    for v, parent in ((2, _v2_parent), (1, _v1_parent)):
        try:
            return _make(parent(), v, memory_mb << 20, max_procs)
        except OSError:
            continue
    return None


@functools.cache
def why_unavailable() -> str | None:
    """Why no memory cgroup can be made here (None when one can)."""
    reasons = []
    for v, parent in ((2, _v2_parent), (1, _v1_parent)):
        try:
            _make(parent(), v, 64 << 20, None).remove()
            return None
        except OSError as e:
            reasons.append(f"v{v}: {e}")
    return "; ".join(reasons)


def available() -> bool:
    """Whether sandboxes here run in a memory cgroup."""
    return why_unavailable() is None


__all__ = ["Cgroup", "available", "create", "why_unavailable"]
