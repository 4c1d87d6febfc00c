"""An entry's code: read once without following links, hashed and stored from the same bytes,
private to the harness's user, keyed by its content and the class it names."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from scoreboards.leaderboard import hidden
from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.entries import submit
from scoreboards.leaderboard.submission import SubmissionRejected
from scoreboards.store import ResultStore
from tests.scoreboards.leaderboard.conftest import TEST_SECRET
from tests.scoreboards.leaderboard.test_hidden_boards import HIDDEN

ATTACKS = Path(__file__).resolve().parent / "submission" / "attacks"


@pytest.fixture
def hidden_board(tmp_path):
    p = tmp_path / "links-board.toml"
    p.write_text(HIDDEN.replace("trajectories = 2048", "trajectories = 64").replace("queries = 12288", "queries = 384")
                 .replace("prompts = 32", "prompts = 8"))
    return load_board(p)


def _everything_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink())


def test_linked_submission_files_are_refused_and_never_read(tmp_path, hidden_board, monkeypatch):
    """Issue 23, finding 1: links to the harness's secret file, to /proc/self/environ and to
    /proc/self/cwd/results/board-secret in a directory submission were followed by the harness
    (copying the code before any sandbox exists): the worker read the secret."""
    results = tmp_path / "results"
    results.mkdir()
    secret_file = results / hidden.SECRET_FILE
    secret_file.write_text(TEST_SECRET + "\n")
    secret_file.chmod(0o600)
    monkeypatch.delenv(hidden.SECRET_FILE_ENV, raising=False)
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    monkeypatch.setenv("NEG_TEST_HARNESS_TOKEN", "harness-token-5150")  # in the harness's environment
    monkeypatch.chdir(tmp_path)  # /proc/self/cwd/results/board-secret is the secret file, seen by the harness
    d = tmp_path / "evil"
    d.mkdir()
    shutil.copyfile(ATTACKS / "reads_links.py", d / "submission.py")
    os.symlink(secret_file, d / "secret")
    os.symlink("/proc/self/environ", d / "env")
    os.symlink("/proc/self/cwd/results/board-secret", d / "cwd_secret")
    with ResultStore(results / "neg.sqlite") as st:
        with pytest.raises(SubmissionRejected) as e:
            submit(hidden_board, f"{d}/:ReadsLinks", st, log=lambda m: None)
        assert st.board_entries(hidden_board.name) == []
    reason = e.value.reason
    assert TEST_SECRET not in reason and "harness-token-5150" not in reason, reason
    assert "malformed submission" in reason and "is a symbolic link" in reason, reason
    stored = _everything_under(results / "code") if (results / "code").exists() else b""
    assert TEST_SECRET.encode() not in stored and b"harness-token-5150" not in stored


def test_only_regular_files_and_folders_are_accepted(tmp_path):
    from scoreboards.leaderboard.entry_code import submission_code

    d = tmp_path / "sub"
    d.mkdir()
    (d / "submission.py").write_text("class A: pass\n")
    (d / "pkg").mkdir()
    (d / "pkg" / "util.py").write_text("x = 1\n")
    (d / ".git").mkdir()
    os.symlink("/etc/passwd", d / ".git" / "ignored")  # ignored names are not read at all
    assert submission_code(f"{d}/:A").files == ("pkg/util.py", "submission.py")
    cases = {
        "link": lambda p: os.symlink("/etc/hostname", p),
        "folder_link": lambda p: os.symlink(tmp_path, p),
        "fifo": lambda p: os.mkfifo(p),
        "hard": lambda p: os.link(d / "submission.py", p),
    }
    whys = {"link": "is a symbolic link", "folder_link": "is a symbolic link", "fifo": "is not a regular file",
            "hard": "is a hard link"}
    for name, make in cases.items():
        make(d / "pkg" / name)
        with pytest.raises(ValueError, match=whys[name]) as e:
            submission_code(f"{d}/:A")
        assert f"'pkg/{name}'" in str(e.value)
        os.unlink(d / "pkg" / name)
    single = tmp_path / "one.py"
    os.symlink(d / "submission.py", single)
    with pytest.raises(ValueError, match="is a symbolic link"):
        submission_code(f"{single}:A")
    os.symlink(d, tmp_path / "linked")
    with pytest.raises(ValueError, match="is a symbolic link; give the folder itself"):
        submission_code(f"{tmp_path / 'linked'}/:A")


def test_the_code_store_is_private_to_the_harness(tmp_path):
    from scoreboards.leaderboard.entry_code import store_code, stored_code

    d = tmp_path / "sub"
    (d / "pkg").mkdir(parents=True)
    (d / "submission.py").write_text("class A: pass\n")
    (d / "pkg" / "util.py").write_text("x = 1\n")
    digest, run = store_code(f"{d}/:A", tmp_path / "results")
    top = tmp_path / "results" / "code"
    assert run == f"{top / digest / 'files'}/:A"
    for p in [top, *top.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    assert stored_code(tmp_path / "results", digest).data == {"submission.py": b"class A: pass\n",
                                                              "pkg/util.py": b"x = 1\n"}


#: Three classes in one file: each spends a different budget, and each names itself in an error.
TWO = '''
import numpy as np


class Spend64:
    N = 64

    def __init__(self, spec):
        pass

    def train(self, expert):
        expert.rollout(expert.prompts(self.N))

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)


class Spend128(Spend64):
    N = 128


class Broken(Spend64):
    def train(self, expert):
        raise RuntimeError("Broken ran")
'''


def test_stored_code_is_keyed_by_content_and_class(tmp_path, db_path):
    """Issue 27: `two.py:Spend128` was entered after `two.py:Spend64` and ran Spend64 (the store kept
    the first class of a file), every class of the file reported the first one's error, and
    `verify` "reproduced" the wrong code under the wrong name."""
    from scoreboards.leaderboard.verify import verify_entry
    from tests.scoreboards.leaderboard.test_verify import BOARD

    p = tmp_path / "keyed-board.toml"
    p.write_text(BOARD.replace("prompts = 32", "prompts = 8"))
    board = load_board(p)
    two = tmp_path / "two.py"
    two.write_text(TWO)
    with ResultStore(db_path) as st:
        e64 = submit(board, f"{two}:Spend64", st, log=lambda m: None)
        e128 = submit(board, f"{two}:Spend128", st, log=lambda m: None)
        with pytest.raises(SubmissionRejected, match="Broken ran"):
            submit(board, f"{two}:Broken", st, log=lambda m: None)
        assert (e64["trajectories"], e128["trajectories"]) == (64, 128)
        assert e64["code_ref"] != e128["code_ref"]
        v = verify_entry(board, e128["id"], st, log=lambda m: None)
        assert v.outcome == "reproduced", v
        (row,) = st.verifications([e128["id"]])[e128["id"]]
        assert row["per_seed"][0]["seed"] == 0
