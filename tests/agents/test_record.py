"""`neg record`: a policy's greedy episodes (GreedyActor), from a checkpoint or a fresh run."""

from __future__ import annotations

import argparse

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch

import noisy_expert_gym  # noqa: F401
from agents.checkpoint import load_checkpoint
from agents.cli import add_subcommands
from agents.policy import TransformerPolicy, make_config
from agents.record import GreedyActor
from noisy_expert_gym.bridges import video
from noisy_expert_gym.tasks import ModAddTask
from noisy_expert_gym.utils import run_command

TASK = ModAddTask(7, 3)
TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 32,
            "eval_prompts": 32, "device": "cpu", "progress": False, "precision": "fp32"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def neg(argv: list[str]) -> int:
    """The agents' subcommands as `neg` runs them."""
    parser = argparse.ArgumentParser(prog="neg")
    add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return run_command(f"neg {args.command}", args.func, args)


def _policy(seed: int = 0) -> TransformerPolicy:
    torch.manual_seed(seed)
    return TransformerPolicy(make_config("tiny", TASK.vocab_size, TASK.num_actions, TASK.obs_len - 1)).eval()


def test_greedy_actor_replays_the_policy_greedy_chain():
    policy = _policy()
    act = GreedyActor(policy, TASK)
    env = gym.make("NoisyModAdd-m3-v0")
    obs, _ = env.reset(seed=4)
    want = policy.generate(torch.as_tensor(obs[None, :4]), 3, temperature=0.0)[0].tolist()
    got = []
    for _ in range(3):
        got.append(act(obs))
        obs, *_ = env.step(got[-1])
    assert got == want


def test_record_gif_episodes_of_a_policy(tmp_path):
    paths = video.record_episodes("NoisyModAdd-m3-v0", GreedyActor(_policy(), TASK), tmp_path, episodes=2, seed=0,
                                  fmt="gif")
    assert [p.rsplit("/", 1)[1] for p in paths] == ["episode-0.gif", "episode-1.gif"]
    assert iio.imread(paths[0]).shape[0] == 4  # reset + 3 steps


def test_neg_record_from_a_trainer_checkpoint(tmp_path, capsys):
    from agents import train

    ck = tmp_path / "ck"
    train(algo="nail-f", budget_trajectories=64, checkpoint_dir=str(ck), **TINY)
    out = tmp_path / "videos"
    rc = neg(["record", "--checkpoint", str(ck), "--env", "NoisyModAdd-v0", "--env-kw", "m=3",
              "--preset", "tiny", "--episodes", "2", "--out", str(out), "--format", "gif"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["episode-0.gif", "episode-1.gif"]
    # A checkpoint that does not fit the policy built from the options says so.
    rc = neg(["record", "--checkpoint", str(ck / "last.pt"), "--env", "NoisyModAdd-v0", "--env-kw", "m=3",
              "--preset", "cpu", "--out", str(out)])
    assert rc == 2 and "does not fit a `cpu` policy" in capsys.readouterr().err
    # Without options: the checkpoint's stored config rebuilds it, or the error says what to pass.
    rc = neg(["record", "--checkpoint", str(ck / "last.pt"), "--episodes", "1", "--out", str(out)])
    if "config" in load_checkpoint(str(ck / "last.pt")):
        assert rc == 0
    else:
        assert rc == 2 and "--preset" in capsys.readouterr().err
    assert neg(["record", "--checkpoint", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_neg_record_trains_a_fresh_run(tmp_path, capsys):
    rc = neg(["record", "--algo", "bc", "--budget", "64", "--env-kw", "m=3", "--preset", "tiny",
              "--train-kw", "batch_size=32", "--train-kw", "eval_prompts=16", "--train-kw", "progress=false",
              "--train-kw", f"data_dir={tmp_path / 'cache'}", "--episodes", "1", "--out", str(tmp_path / "v"),
              "--format", "gif"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "trained bc" in out and "episode-0.gif" in out
    assert np.asarray(iio.imread(tmp_path / "v" / "episode-0.gif")).ndim == 4
