"""A run's code version names the code that ran: edited, untracked and plugin files included.

Issue 27, case 1 (the kind: a result filed under code that did not produce it). Run keys hashed
``version + commit [.dirty]``: a new untracked algorithm file was no change at all, and a second
edit of a dirty checkout gave the same key as the first, so after editing a loss `neg bench run`
said "12 already done" and the report showed the old numbers. Each test builds a small checkout
in a temporary folder and points :mod:`scoreboards.provenance` at it.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from scoreboards import provenance


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout shaped like the project (its packages, a test folder, an ignored results/)."""
    root = tmp_path / "repo"
    for d in ("noisy_expert_gym", "agents/algos", "scoreboards", "tests"):
        (root / d).mkdir(parents=True)
    (root / "agents/algos/online.py").write_text("LOSS = 'forward'\n")
    (root / "scoreboards/__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / ".gitignore").write_text("results/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "_ROOT", root)
    return root


def version() -> str:
    """The code version as a fresh process would compute it (the functions cache per process)."""
    for f in vars(provenance).values():
        if callable(getattr(f, "cache_clear", None)):
            f.cache_clear()
    return provenance.code_version()


def test_every_edit_of_the_code_is_a_new_code_version(checkout):
    clean = version()
    assert clean.endswith(provenance.git_commit()[:12])  # a clean checkout: the commit alone
    algo = checkout / "agents/algos/mine.py"
    algo.write_text("def loss(): return 1\n")  # a new algorithm file, not yet added to git
    new_file = version()
    assert new_file != clean
    algo.write_text("def loss(): return 2\n")  # ... edited: the loss changed, so must the version
    edited = version()
    assert edited != new_file
    (checkout / "agents/algos/online.py").write_text("LOSS = 'reverse'\n")  # a tracked file edited
    tracked = version()
    assert tracked != edited
    (checkout / "agents/algos/online.py").write_text("LOSS = 'forward'\n")  # ... and put back
    assert version() == edited
    # What no run executes leaves it alone: ignored files, tests, documents.
    (checkout / "results").mkdir()
    (checkout / "results/notes.py").write_text("x = 1\n")
    (checkout / "tests/test_mine.py").write_text("def test(): pass\n")
    (checkout / "NOTES.md").write_text("notes\n")
    assert version() == edited
    algo.unlink()
    assert version() == clean


def test_a_run_key_follows_the_code(checkout, tiny_spec_path):
    from scoreboards.sweeps.specs import load_spec

    spec = load_spec(tiny_spec_path, check_envs=False)
    before = [r.key for r in spec.runs(version=version())]
    (checkout / "agents/algos/online.py").write_text("LOSS = 'reverse'\n")
    after = [r.key for r in spec.runs(version=version())]
    assert not set(before) & set(after)


def test_the_code_state_costs_milliseconds():
    """Measured on this project's own checkout (the real one): the digest of what differs from HEAD."""
    provenance.code_version()  # warm (git's index)
    t0 = time.perf_counter()
    for _ in range(5):
        provenance.code_changes.__wrapped__()
    per_call = (time.perf_counter() - t0) / 5
    assert per_call < 0.5, per_call  # ~10 ms on an idle 2-core CPU; generous for a loaded one
