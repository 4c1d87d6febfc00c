"""Your own algorithm as a plugin: `path/to/file.py:Name` or `module:Name`, wherever an algorithm is named.

Issue 27, case 6 (the kind: no path from "my algorithm" to the tools; adding one meant editing
``agents/algos/__init__.py``). A class following the Algorithm contract, in a file of its own,
is loaded once, registered under the name it was given, its parameters declared and checked as
a built-in's, its file's digest part of its runs' identity; a wrong name, file or class is one
clear error.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agents import train
from agents.config import TrainConfig
from agents.registry import ALGORITHMS, check_params, plugin_digest
from noisy_expert_gym.declarations import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "agents" / "examples" / "mode_bc.py"
TOY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.2}, "preset": "tiny", "batch_size": 32,
       "eval_prompts": 32, "device": "cpu", "progress": False, "precision": "fp32", "budget_trajectories": 128}


@pytest.fixture
def plugin(tmp_path):
    """A copy of the shipped example in a folder of its own (to be edited)."""
    path = tmp_path / "my_algo.py"
    shutil.copy(EXAMPLE, path)
    return path


@pytest.mark.parametrize("name", [f"{EXAMPLE}:ModeBC", "agents.examples.mode_bc:ModeBC"])
def test_a_plugin_trains_like_a_built_in(name):
    res = train(algo=name, algo_params={"margin": 0.1}, **TOY)
    assert res.algo == name and res.trajectories == 128 and res.queries == 128 * 3
    assert res.config["algo_params"] == {"margin": 0.1}
    assert ALGORITHMS[name].params.__name__ == "ModeBCParams"
    assert TrainConfig.build(algo=name).identity()["algo_code"] == plugin_digest(name)


def test_a_plugins_parameters_are_checked_as_a_built_ins(plugin):
    name = f"{plugin}:ModeBC"
    assert check_params(name, {"margin": 0.2}) == []
    (problem,) = check_params(name, {"margn": 0.2})
    assert "has no parameter `margn`" in problem and "Did you mean `margin`" in problem
    (problem,) = check_params(name, {"margin": 2.0})
    assert "margin" in problem and "1" in problem


def test_an_edited_plugin_is_another_run(plugin):
    name = f"{plugin}:ModeBC"
    before = TrainConfig.build(algo=name).identity()
    plugin.write_text(plugin.read_text().replace("margin: UnitInterval = 0.05", "margin: UnitInterval = 0.1"))
    ALGORITHMS.pop(name)  # a new process would load the file afresh
    after = TrainConfig.build(algo=name).identity()
    assert after["algo_code"] != before["algo_code"]
    assert ALGORITHMS[name].defaults == {"margin": 0.1}


def test_an_algorithm_record_is_a_plugin_too(tmp_path):
    path = tmp_path / "record.py"
    path.write_text(
        "from agents.algos.base import Algorithm, never\n"
        "from agents.algos.online import NAILForward, collect_online, loss_forward\n"
        "GREEDY = Algorithm('mine', 'NAIL-F under another name', NAILForward, collect_online, loss_forward,\n"
        "                   needs_probs=never)\n")
    res = train(algo=f"{path}:GREEDY", **TOY)
    assert res.trajectories == 128 and ALGORITHMS[f"{path}:GREEDY"].name == f"{path}:GREEDY"


@pytest.mark.parametrize("name,message", [
    ("agents/examples/nothing.py:ModeBC", "agents/examples/nothing.py does not exist"),
    ("agents/examples/mode_bc.py:ModeBc", "has no `ModeBc`. Did you mean `ModeBC`?"),
    ("agents/examples/mode_bc.py:ModeBCParams", "is not an algorithm: it needs `params`"),
    ("agents.examples.mode_bc:torch", "is not an algorithm"),
    ("agents.examples.nothing:ModeBC", "No module named 'agents.examples.nothing'"),
    ("agents/examples:ModeBC", "is a folder"),
    ("agents/examples/mode_bc.py:", "`path/to/file.py:Name` or `package.module:Name`"),
    ("nail-ff", "unknown algorithm `nail-ff`"),
])
def test_a_wrong_plugin_is_one_clear_error(name, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError) as e:
        TrainConfig.build(algo=name)
    assert message in str(e.value) and len(e.value.problems) == 1, str(e.value)


def test_a_plugin_that_is_not_python_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("class Mine(:\n")
    with pytest.raises(ConfigError, match=r"broken.py is not valid Python \(SyntaxError"):
        TrainConfig.build(algo=f"{path}:Mine")


def test_neg_train_takes_a_plugin(monkeypatch, capsys):
    from scoreboards.cli import main

    monkeypatch.chdir(ROOT)
    assert main(["train", "--algo", "agents/examples/mode_bc.py:ModeBC", "--list"]) == 0
    out = capsys.readouterr().out
    assert "agents/examples/mode_bc.py:ModeBC" in out and "'margin': 0.05" in out and "bc-clean" not in out
    assert main(["train", "--algo", "agents.examples.mode_bc:ModeBC", "--algo-kw", "margin=0.1", "--env-kw", "m=3",
                 "--preset", "tiny", "--batch-size", "32", "--eval-prompts", "32", "--device", "cpu", "--budget",
                 "64", "--no-progress"]) == 0
    assert "ModeBC on NoisyModAdd-v0" in capsys.readouterr().out
    assert main(["train", "--algo", "agents/examples/mode_bc.py:ModeBc", "--budget", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Did you mean `ModeBC`" in err, err
