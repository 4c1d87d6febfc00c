"""`neg train`: its options are generated from TrainConfig's declaration."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from agents import TrainConfig
from agents.cli import add_train_parser, config_fields, main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neg")
    add_train_parser(p.add_subparsers(dest="command"))
    return p


def test_every_config_field_is_an_option():
    args = _parser().parse_args(["train"])
    assert set(TrainConfig.field_names()) <= set(vars(args))
    assert config_fields(args) == {}  # nothing given: the config's defaults


def test_options_are_typed_from_the_declaration():
    args = _parser().parse_args([
        "train", "--algo", "nail-mixed", "--env", "NoisyModAdd-m3-v0", "--env-kw", "eta=0.2", "--env-kw", "law=mixture",
        "--algo-kw", "beta=0.3", "--budget", "64", "--lr", "1e-3", "--schedule", "cosine", "--no-progress",
        "--stop-at", "0.9", "--model-kw", "n_layer=1"])
    assert config_fields(args) == {
        "algo": "nail-mixed", "env_id": "NoisyModAdd-m3-v0", "env_kwargs": {"eta": 0.2, "law": "mixture"},
        "algo_params": {"beta": 0.3}, "budget_trajectories": 64, "lr": 1e-3, "schedule": "cosine",
        "progress": False, "stop_at": 0.9, "model": {"n_layer": 1}}
    help_text = _parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "{constant,cosine}" in help_text and "Peak AdamW learning rate" in help_text


def test_train_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "res.json"
    rc = main(["--algo", "bc", "--env-kw", "m=3", "--budget", "32", "--batch-size", "32", "--preset", "tiny",
               "--eval-prompts", "16", "--device", "cpu", "--no-progress", "--data-dir", str(tmp_path),
               "--out", str(out)])
    assert rc == 0 and json.loads(out.read_text())["trajectories"] == 32
    assert main(["--lr", "0"]) == 2 and "lr: must be greater than 0" in capsys.readouterr().err


def test_module_entry_point_needs_no_other_layer():
    """`python -m agents.cli` (torchrun's entry) builds its own parser: no scoreboards, no `neg` module."""
    code = ("import sys, runpy; sys.argv = ['agents.cli', '--list']; "
            "import agents.cli as c; c.main(['--list']); "
            "assert not [m for m in sys.modules if m.startswith('scoreboards') or m == 'noisy_expert_gym.cli']")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nail-f" in proc.stdout and "[no expert queries" in proc.stdout
