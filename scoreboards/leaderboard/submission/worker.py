"""The worker process of a submission run: limit itself, load the class, train it on the client, then act.

:func:`main` runs inside the sandbox (:mod:`scoreboards.leaderboard.submission.sandbox`), started as
``python -c ... FD`` with FD one end of a socket pair to the harness. It reads the
harness's start message (target, public spec, limits, the uid to switch to), and,
before any submission code runs, sets its resource limits (:func:`apply_limits`),
and gives up root when the sandbox started it as root (:func:`drop_privileges`). The
project's packages are importable (a submission may build on the shipped student,
trainer and losses): on a hidden-rule board they hold the task family, never the
instance the harness drew. Then the target class is loaded
(:func:`load_target`), its interface checked (:func:`check_interface`), and it
trains on an :class:`~scoreboards.leaderboard.submission.client.ExpertClient`; afterwards the
worker answers the harness's ``act`` requests until told to stop. Errors go back to
the harness as ``{"op": "error", "args": [{"stage", "message"}]}``. Every message
uses :mod:`~scoreboards.leaderboard.submission.wire` (no pickle).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import resource
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from scoreboards.leaderboard.submission import wire
from scoreboards.leaderboard.submission.client import (
    BudgetExceeded,
    ExpertClient,
    ProtocolError,
    to_numpy,
)

#: The file holding the class of a directory submission (``DIR:Class``).
ENTRY_FILE = "submission.py"


def load_target(target: str) -> type:
    """The class named by ``module:Class``, ``path/to/file.py:Class`` or ``path/to/dir/:Class`` (a
    directory, named with a ``/``, whose ``submission.py`` holds the class and whose other files
    it may import)."""
    if ":" not in target:
        raise ValueError(f"a submission must be `module:Class`, `path/to/file.py:Class` or `dir/:Class`, "
                         f"got {target!r}")
    mod_name, _, cls_name = target.rpartition(":")
    if ("/" in mod_name or os.sep in mod_name) and Path(mod_name).is_dir():
        if not (Path(mod_name) / ENTRY_FILE).is_file():
            raise FileNotFoundError(f"submission directory {mod_name} has no {ENTRY_FILE}")
        sys.path.insert(0, str(Path(mod_name).resolve()))
        mod_name = str(Path(mod_name) / ENTRY_FILE)
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = Path(mod_name)
        if not path.is_file():
            raise FileNotFoundError(f"submission file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"_neg_submission_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise AttributeError(f"`{mod_name}` has no attribute `{cls_name}`")
    return cls


def is_algorithm(obj: Any) -> bool:
    """Whether `obj` follows the trainer's Algorithm contract rather than the submission interface: a
    class (or record) with ``params`` and ``collect`` + ``loss`` (or ``run``), and no ``train``/``act``.
    The worker runs such a class through the built-in adapter
    (:func:`scoreboards.leaderboard.builtin.algorithm_submission`): the project's trainer and student,
    imported read-only inside the sandbox."""
    if callable(getattr(obj, "train", None)) and callable(getattr(obj, "act", None)):
        return False
    steps = callable(getattr(obj, "collect", None)) and callable(getattr(obj, "loss", None))
    return getattr(obj, "params", None) is not None and (steps or callable(getattr(obj, "run", None)))


def check_interface(cls: Any) -> str | None:
    """Why `cls` does not implement the submission interface (None if it does)."""
    if not isinstance(cls, type):
        return f"{cls!r} is not a class"
    missing = [m for m in ("train", "act") if not callable(getattr(cls, m, None))]
    if missing:
        return (f"{cls.__name__} lacks {', '.join(f'`{m}()`' for m in missing)}; a submission defines "
                "__init__(self, spec), train(self, expert) and act(self, observations)")
    return None


#: Characters of a traceback sent to the harness.
MAX_ERROR_CHARS = 4000


def apply_limits(limits: dict[str, Any]) -> None:
    """Set this process's resource limits (inherited by everything it starts; they can only be
    lowered): CPU seconds, memory (``RLIMIT_DATA``: private mappings; ``RLIMIT_AS``: every mapping,
    shared memory and mapped memory files included), the largest file (``RLIMIT_FSIZE``: files
    in the scratch space and memory files alike; SIGXFSZ is ignored, so a write past it fails
    with EFBIG), processes and threads, no core dumps."""
    cpu = math.ceil(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL a second later
    mem = int(limits["memory_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
    if limits.get("address_space", True):
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    if limits.get("file_mb") is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = int(limits["file_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.get("max_procs") is not None:
        n = int(limits["max_procs"])
        resource.setrlimit(resource.RLIMIT_NPROC, (n, n))


def drop_privileges(uid: int, gid: int) -> None:
    """Become `uid`/`gid` with no supplementary groups and no capabilities, for good."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise RuntimeError("could not give up root in the sandbox")  # never run a submission as root


def main(fd: int) -> int:
    """The worker process: read the start message, limit itself, then :func:`serve`."""
    sock = socket.socket(fileno=fd)
    start = wire.recv(sock, max_payload=None)
    try:
        apply_limits(start["limits"])
        if start.get("user"):
            drop_privileges(*start["user"])
        for p in reversed(start.get("path", [])):
            if p not in sys.path:
                sys.path.insert(0, p)
    except BaseException:  # noqa: BLE001 - reported, and no submission code runs
        _send_error(sock, "setup")
        return 1
    serve(sock, start["target"], start["spec"])
    return 0


def _send_error(sock: socket.socket, stage: str, message: str | None = None) -> None:
    msg = (message if message is not None else traceback.format_exc())[-MAX_ERROR_CHARS:]
    try:
        wire.send(sock, {"op": "error", "args": [{"stage": stage, "message": msg}]})
    except (OSError, TypeError):
        pass


def serve(sock: socket.socket, target: str, spec: dict[str, Any]) -> None:
    """Load, check, train on the client, then answer ``act`` requests until told to stop."""
    stage = "load"
    try:
        cls = load_target(target)
        if is_algorithm(cls):  # an algorithm of your own: the trainer runs it (the spec's `train` settings)
            from scoreboards.leaderboard.builtin import algorithm_submission

            cls = algorithm_submission(cls)
        stage = "interface"
        if (why := check_interface(cls)) is not None:
            _send_error(sock, stage, why)
            return
        stage = "init"
        algo = cls(dict(spec))
        client = ExpertClient(sock, spec)
        client.act_hook = algo.act  # the harness may evaluate act mid-training (its learning curve)
        stage = "train"
        algo.train(client)
        wire.send(sock, {"op": "done", "args": []})
        stage = "act"
        while True:
            msg = wire.recv(sock, max_payload=None)
            if msg.get("op") != "act":
                return
            a, _ = to_numpy(algo.act(msg["observations"]))
            wire.send(sock, {"op": "actions", "args": [a]})
    except (BudgetExceeded, ProtocolError, wire.PeerClosed, BrokenPipeError, ConnectionResetError):
        return  # the harness ended the run and knows why
    except BaseException:  # noqa: BLE001 - everything else is reported as a crash
        _send_error(sock, stage)
