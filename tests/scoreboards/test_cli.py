"""`neg bench ...`, `neg board ...`, `neg submit ...` end to end (real trainer, tiny budget)."""

from __future__ import annotations

import json

import pytest

from scoreboards.cli import main
from tests.scoreboards.leaderboard.test_submission import BOARD

ONE_RUN = ["--set", "seeds=[0]", "--set", "env.grid.eta=[0.2]", "--set", 'algorithms=[{name="bc"}]']


def test_bench_run_report_export(tiny_spec_path, db_path, tmp_path, capsys):
    spec, db = str(tiny_spec_path), str(db_path)
    assert main(["bench", "run", spec, "--db", db, *ONE_RUN, "--dry-run"]) == 0
    assert "1 runs" in capsys.readouterr().out
    assert main(["bench", "run", spec, "--db", db, *ONE_RUN, "--workers", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 done, 0 failed" in out and "| bc |" in out and "report:" in out
    assert main(["bench", "run", spec, "--db", db, *ONE_RUN, "--workers", "0", "--no-report"]) == 0
    assert "1 already done" in capsys.readouterr().out
    assert main(["bench", "report", spec, "--db", db, *ONE_RUN, "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").exists() and (tmp_path / "rep" / "curves_eta=0.2.png").exists()
    capsys.readouterr()
    assert main(["bench", "export", spec, "--db", db, *ONE_RUN, "--format", "json",
                 "--out", str(tmp_path / "exp")]) == 0
    data = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert len(data["runs"]) == 1 and data["runs"][0]["algo"] == "bc"


def test_bench_errors_and_listing(tiny_spec_path, db_path, capsys):
    assert main(["bench", "run", str(tiny_spec_path), "--db", str(db_path), "--set", "budget.trajectories=0",
                 "--set", "train.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "Did you mean `lr`" in err
    assert main(["bench", "list"]) == 0
    out = capsys.readouterr().out
    assert "quick" in out and "fig4" in out and "GPU-h" in out
    assert main(["board", "list"]) == 0
    assert "modadd-m5-eta0.2" in capsys.readouterr().out


def test_submit_and_show(tmp_path, db_path, capsys):
    board = tmp_path / "b.toml"
    board.write_text(BOARD)
    db = str(db_path)
    assert main(["submit", "tests.scoreboards.subs:TableLearner", "--board", str(board), "--db", db]) == 0
    assert "accepted TableLearner" in capsys.readouterr().out
    assert main(["submit", "tests.scoreboards.subs:Crashes", "--board", str(board), "--db", db]) == 1
    assert "REJECTED Crashes: seed 0: crashed in train(): ZeroDivisionError" in capsys.readouterr().err
    assert main(["board", "show", str(board), "--db", db, "--out", str(tmp_path / "b.md")]) == 0
    out = capsys.readouterr().out
    assert "| 1 | TableLearner |" in out and "Crashes" not in out and "Open practice board" in out
    assert (tmp_path / "b.md").read_text().startswith("# Board")
    assert main(["board", "verify", str(board), "1", "--db", db]) == 0
    assert "entry 1: reproduced" in capsys.readouterr().out
    assert main(["board", "verify", str(board), "7", "--db", db]) == 2
    assert "has no entry 7" in capsys.readouterr().err
    assert main(["board", "publish", "--out", str(tmp_path / "site"), "--boards", str(board), "--db", db]) == 0
    assert "TableLearner" in (tmp_path / "site" / "boards" / "b.html").read_text()


def test_board_secret_and_listing(tmp_path, monkeypatch, capsys):
    from scoreboards.leaderboard import hidden

    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    monkeypatch.delenv(hidden.SECRET_FILE_ENV, raising=False)
    db = str(tmp_path / "r" / "neg.sqlite")
    assert main(["board", "secret", "--db", db]) == 2
    assert "--create" in capsys.readouterr().err
    assert main(["board", "secret", "--db", db, "--create"]) == 0
    out = capsys.readouterr().out
    secret = (tmp_path / "r" / "board-secret").read_text().strip()
    assert "board-secret (id " in out and secret not in out
    assert main(["board", "list"]) == 0
    out = capsys.readouterr().out
    assert "modadd-m5-eta0.2-hidden" in out and "[hidden relabel_seed]" in out and "[OPEN (practice)]" in out


def test_neg_demo_imports_only_what_it_needs():
    import subprocess
    import sys

    code = ("import sys; from scoreboards.cli import build_parser; p = build_parser('demo'); "
            "assert 'torch' not in sys.modules and 'scoreboards.commands' not in sys.modules, sorted(sys.modules); "
            "assert 'train' in build_parser().format_help()")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("argv,absent", [
    (["--help"], ("noisy_expert_gym", "agents", "torch", "pydantic")),
    ([], ("noisy_expert_gym", "agents", "torch")),
    (["train", "--help"], ("torch", "agents.algos", "agents.trainer")),
    (["train", "--no-such-option"], ("torch", "agents.algos")),
    (["record", "--help"], ("torch",)),
    (["bench", "run", "--no-such-option"], ("torch", "agents.algos", "matplotlib")),
    (["submit", "--help"], ("torch", "agents.algos")),
])
def test_help_and_argument_errors_start_without_the_heavy_imports(argv, absent):
    """Issue 27: each `neg` call took 3-4 s to start (agents.cli imported torch). `neg --help` imports no
    package of the project; help pages and usage errors load no torch (benchmarks/cli_startup.py times them)."""
    import subprocess
    import sys

    code = (f"import sys; from scoreboards.cli import main\n"
            f"try: main({argv!r})\nexcept SystemExit: pass\n"
            f"print([m for m in sorted(sys.modules) for a in {absent!r} if m == a or m.startswith(a + '.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out


def test_the_command_list_is_the_commands_own_help():
    """`neg --help` lists the commands from a table (nothing imported): it says what each module says."""
    import argparse

    from scoreboards.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert helps == {name: text for name, (_, text) in COMMANDS.items()}
