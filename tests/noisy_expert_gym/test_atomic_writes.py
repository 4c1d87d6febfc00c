"""Every file write is atomic and leaves nothing behind after a crash (Lightning#688).

The kind of fault: a writer killed between creating its temporary and renaming it over the target
leaves a full-size orphan that nothing ever removes. Each test kills writers with SIGKILL at the last
moment (their rename hangs), checks that the orphans are there, then writes once more and checks that
the target is complete and every orphan is gone -- while a live concurrent writer's temporary is kept.
:func:`killed_mid_write` is shared with the agents' and scoreboards' tests of their writers.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from noisy_expert_gym.utils import (
    STALE_AFTER_S,
    atomic_path,
    create_atomic,
    remove_stale_temporaries,
    write_atomic,
)

#: The child: every rename (os.replace / os.link) announces "ready" and hangs until the process is killed.
CHILD = r"""
import os, sys, time
def hang(*args, **kwargs):
    print("ready", flush=True)
    time.sleep(600)
os.replace = os.link = hang
exec(sys.argv[1])
"""
TEMPORARY = re.compile(r"^\..*\.tmp")
ROOT = Path(__file__).resolve().parents[2]


def temporaries(folder: Path) -> list[str]:
    """Every temporary (the writers' ``.<name>.<...>.tmp...`` files and folders) anywhere under `folder`."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if TEMPORARY.match(p.name))


def hung_writer(code: str, cwd: Path | None = None, timeout: float = 300.0) -> subprocess.Popen:
    """A process running `code` (Python), stopped at its first rename with its temporary written."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline, line = time.monotonic() + timeout, ""
    while line.strip() != "ready":  # (the writer may print before it writes)
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stdout.readline() if ready else ""
        if not line:
            break
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the writer never reached its rename: {line!r}\n{err[-2000:]}")
    return proc


def killed_mid_write(code: str, times: int = 3, cwd: Path | None = None) -> None:
    """Run `code` `times` times, each killed (SIGKILL, by its pid) with its temporary written but not renamed."""
    for _ in range(times):
        proc = hung_writer(code, cwd)
        proc.kill()
        proc.communicate()


def check_cleaned_after_kills(folder: Path, code: str, write_again: Callable[[], object], times: int = 3) -> None:
    """`code` killed mid-write `times` times leaves orphans in `folder`; the next write leaves none."""
    killed_mid_write(code, times)
    assert temporaries(folder)  # the kills left orphans (each writer also removes those of the earlier ones)
    write_again()
    assert temporaries(folder) == []


# ----- the helper itself --------------------------------------------------------------------------------------
def test_a_write_after_kills_removes_the_orphans(tmp_path):
    target = tmp_path / "out.bin"
    code = f"from noisy_expert_gym.utils import write_atomic; write_atomic({str(target)!r}, b'x' * 1_000_000)"
    check_cleaned_after_kills(tmp_path, code, lambda: write_atomic(target, b"done"))
    assert target.read_bytes() == b"done"


def test_a_live_writers_temporary_is_kept_and_its_rename_still_lands(tmp_path):
    """A concurrent writer of the same file, alive in its write: the other writer leaves its temporary."""
    target = tmp_path / "out.txt"
    proc = hung_writer(f"from noisy_expert_gym.utils import write_atomic; write_atomic({str(target)!r}, 'child')")
    try:
        live = temporaries(tmp_path)
        assert len(live) == 1
        write_atomic(target, "parent")
        assert temporaries(tmp_path) == live and target.read_text() == "parent"
    finally:
        proc.kill()
        proc.communicate()
    write_atomic(target, "again")  # now its writer is dead: gone
    assert temporaries(tmp_path) == []


def test_a_temporary_of_another_host_or_namespace_goes_only_when_old(tmp_path):
    """Its pid means nothing here: it is removed once untouched for STALE_AFTER_S, not before."""
    target = tmp_path / "out.txt"
    young, old = (tmp_path / f".out.txt.{pid}.0123abcd.00ff00ff.tmp" for pid in (11, 12))
    young.write_text("x")
    old.write_text("x")
    os.utime(old, (time.time() - STALE_AFTER_S - 60,) * 2)
    remove_stale_temporaries(target)
    assert young.exists() and not old.exists()


def test_other_files_and_other_targets_temporaries_are_left_alone(tmp_path):
    keep = [tmp_path / n for n in ("out.txt", ".out.txt.other", ".out.txt.1.tmpx", ".other.txt.99999999.ab.tmp",
                                   "out.txt.12.ab.tmp")]
    for p in keep:
        p.write_text("x")
    remove_stale_temporaries(tmp_path / "out.txt")
    assert all(p.exists() for p in keep)


def test_a_folder_written_atomically(tmp_path):
    target = tmp_path / "tree"
    code = (f"import pathlib; from noisy_expert_gym.utils import atomic_path\n"
            f"with atomic_path({str(target)!r}) as tmp:\n"
            f"    (tmp / 'a').mkdir(parents=True); (tmp / 'a' / 'f').write_text('x')")

    def write_again():
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "done").write_text("y")

    check_cleaned_after_kills(tmp_path, code, write_again)
    assert (target / "done").read_text() == "y"


def test_create_atomic_is_whole_or_absent_and_first_wins(tmp_path):
    """The O_EXCL idiom leaves an empty or partial file when killed after creating it; create_atomic
    leaves no file at all, and the next creation cleans its temporary."""
    target = tmp_path / "secret"
    killed_mid_write(f"from noisy_expert_gym.utils import create_atomic; create_atomic({str(target)!r}, 'a' * 64)")
    assert not target.exists() and temporaries(tmp_path)
    assert create_atomic(target, "b" * 64) and not create_atomic(target, "c" * 64)
    assert target.read_text() == "b" * 64 and temporaries(tmp_path) == []
    assert (target.stat().st_mode & 0o777) == 0o600


def test_an_exception_removes_the_temporary_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and temporaries(tmp_path) == []


# ----- the env layer's writers -------------------------------------------------------------------------------
WRITERS = {
    "write_jsonl": ("from noisy_expert_gym.tasks.gsm8k import write_jsonl, EXAMPLE_PROBLEMS; "
                    "write_jsonl('{d}/train.jsonl', EXAMPLE_PROBLEMS['train'])"),
    "write_example_data": "from noisy_expert_gym.tasks.gsm8k import write_example_data; write_example_data('{d}')",
    "write_tinygsm_example": ("from noisy_expert_gym.tasks.gsm8k import write_tinygsm_example; "
                              "write_tinygsm_example('{d}', 'jsonl.gz')"),
    "gif": ("import gymnasium as gym, noisy_expert_gym; from noisy_expert_gym.rendering import record_episode_gif; "
            "env = gym.make('NoisyModAdd-m3-v0', render_mode='rgb_array'); "
            "record_episode_gif(env, lambda obs: 0, '{d}/episode.gif', seed=0)"),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_the_env_layers_writers_leave_nothing_after_kills(writer, tmp_path):
    code = WRITERS[writer].format(d=tmp_path)
    check_cleaned_after_kills(tmp_path, code, lambda: exec(code, {}), times=2)  # noqa: S102  our own code
    assert any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_minari_export_killed_leaves_no_dataset_and_no_orphan(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    code = ("from noisy_expert_gym.bridges.minari_io import export_minari; "
            "export_minari('NoisyModAdd-m3-v0', num_episodes=2, dataset='tst/orphan-v0')")
    killed_mid_write(code, times=2)
    import minari

    assert "tst/orphan-v0" not in minari.list_local_datasets()  # nothing half-made under the id
    assert temporaries(tmp_path)
    from noisy_expert_gym.bridges.minari_io import export_minari

    assert export_minari("NoisyModAdd-m3-v0", num_episodes=2, dataset="tst/orphan-v0").total_episodes == 2
    assert temporaries(tmp_path) == []
