"""Resume reproduces the uninterrupted run exactly, for every source of randomness.

The kind of fault: a random stream the run draws from that the checkpoint does not hold
(torch's global generator, which dropout uses; numpy's and Python's; an oracle's own
generators). Each test compares the resumed run with an uninterrupted one computed
independently (the same config, no checkpoint in between).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from agents import ALGORITHMS, train
from agents.algos.base import Algorithm, Batch
from agents.checkpoint import load_checkpoint, rng_state, set_rng_state
from agents.losses import mc_forward
from noisy_expert_gym import make_problem
from noisy_expert_gym.declarations import Declared

TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 32,
        "eval_prompts": 64, "device": "cpu", "progress": False, "precision": "fp32"}
LOOP = sorted(a for a, alg in ALGORITHMS.items() if alg.run is None)
PPO_OK = {k: v for k, v in TINY.items() if k not in ALGORITHMS["ppo"].unused}  # PPO refuses the learners' settings


def _curve(res):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in res.curve]


def _stop_then_resume(kw, ck):
    """A run stopped at its first evaluation (its checkpoint kept), then resumed in this process."""
    stopped = train(**kw, checkpoint_dir=ck, stop_at=0.0)
    assert len(stopped.curve) == 1
    # Whatever the process drew in between must not matter: the checkpoint holds every stream.
    torch.rand(7), np.random.rand(3), random.random()
    return train(**kw, checkpoint_dir=ck, resume=True)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("algo", LOOP)
def test_resume_reproduces_the_uninterrupted_run(algo, dropout, tmp_path):
    kw = dict(TINY, algo=algo, budget_trajectories=32 * 4, eval_every=64, seed=3, model={"dropout": dropout},
              data_dir=str(tmp_path / "data"))
    full = train(**kw)
    resumed = _stop_then_resume(kw, str(tmp_path / "ck"))
    assert _curve(resumed) == _curve(full)
    assert (resumed.trajectories, resumed.queries) == (full.trajectories, full.queries)
    for a, b in zip(resumed.policy.parameters(), full.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ppo_refuses_resume_with_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="`ppo` does not support resume"):
        train(**{**PPO_OK, "algo": "ppo", "budget_trajectories": 16, "checkpoint_dir": str(tmp_path),
                 "resume": True})


# ----- every stream, one algorithm that draws from all of them ------------------------------
class _Probe(Declared):
    pass


def _probe_collect(ctx, params):
    """Prompts from the run's generator; the chain from torch's global generator; labels from the
    oracle's own generator (no `generator=`), shifted by numpy's and Python's global draws."""
    prompts = ctx.sample_prompts()
    n, h = prompts.shape[0], ctx.task.horizon
    chain = torch.randint(0, ctx.task.num_actions, (n, h))  # torch's global CPU generator
    labels = ctx.expert.sample_along(prompts, chain)[..., 0]  # the oracle's torch generator (lazily seeded)
    first = ctx.expert.sample(ctx.task.observe(prompts, chain[:, :0]).numpy())  # the oracle's numpy RNG
    shift = int(np.random.randint(0, ctx.task.num_actions)) + random.randrange(ctx.task.num_actions)
    labels[:, 0] = torch.as_tensor(first)
    labels = (labels + shift) % ctx.task.num_actions
    return Batch(prompts, chain, actions=labels, trajectories=n, queries=n * h)


def _probe_loss(logits, batch, params):
    return mc_forward(logits, batch.actions)


def test_resume_restores_every_random_stream(monkeypatch, tmp_path):
    """An algorithm that draws from torch's, numpy's and Python's global generators and the oracle's
    own: the resumed run still equals the uninterrupted one (dropout on, too)."""
    monkeypatch.setitem(ALGORITHMS, "rng-probe", Algorithm("rng-probe", "test", _Probe, _probe_collect,
                                                           _probe_loss))
    kw = dict(TINY, algo="rng-probe", budget_trajectories=32 * 4, eval_every=64, seed=5,
              model={"dropout": 0.1})
    full = train(**kw)
    resumed = _stop_then_resume(kw, str(tmp_path / "ck"))
    assert _curve(resumed) == _curve(full)


@pytest.mark.parametrize("stream", ["run", "torch", "numpy", "python", "oracle-numpy", "oracle-torch"])
def test_rng_state_round_trip(stream):
    """Capture, draw, restore, draw again: the same draws, stream by stream."""
    gen = torch.Generator().manual_seed(1)
    problem = make_problem("NoisyModAdd-v0", m=3, eta=0.5).with_rng(np.random.default_rng(2))
    oracle = problem.expert
    prompts = torch.as_tensor(problem.task.sample_prompts(np.random.default_rng(3), 64))
    obs = problem.task.observe(prompts, prompts[:, :0])  # the first prefix of each prompt
    draw = {"run": lambda: torch.rand(5, generator=gen).tolist(), "torch": lambda: torch.rand(5).tolist(),
            "numpy": lambda: np.random.rand(5).tolist(), "python": lambda: [random.random() for _ in range(5)],
            "oracle-numpy": lambda: oracle.sample(obs.numpy()).tolist(),
            "oracle-torch": lambda: oracle.sample(obs).tolist()}[stream]
    draw()  # the oracle's torch generator exists (seeded from its numpy RNG) before the capture
    st = rng_state(gen, [oracle])
    first = draw()
    set_rng_state(st, gen, [oracle])
    assert draw() == first
    assert draw() != first  # the stream moves on: the comparison above could have failed


# ----- a real SIGKILL of `python -m agents.cli`, then --resume -------------------------------
@pytest.mark.slow
def test_sigkill_of_neg_train_then_resume_reproduces_the_curve(tmp_path):
    """`python -m agents.cli` killed with SIGKILL mid-run, then `--resume`: the uninterrupted curve
    (dropout on, so torch's global generator matters)."""
    ck, out = tmp_path / "ck", tmp_path / "resumed.json"
    args = ["--algo", "nail-f", "--env-kw", "m=3", "--env-kw", "eta=0.1", "--preset", "tiny", "--batch-size", "32",
            "--eval-prompts", "64", "--device", "cpu", "--no-progress", "--precision", "fp32",
            "--budget", str(32 * 120), "--eval-every", "320", "--seed", "7", "--model-kw", "dropout=0.1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", *args, "--checkpoint-dir", str(ck),
                             "--checkpoint-every", "1"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:  # kill it once a few updates are checkpointed
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if load_checkpoint(str(ck / "last.pt"))["update"] >= 12:
                    break
            except (ValueError, FileNotFoundError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = load_checkpoint(str(ck / "last.pt"))["update"]
    assert proc.returncode == -signal.SIGKILL and 12 <= killed_at < 119
    done = subprocess.run([sys.executable, "-m", "agents.cli", *args, "--checkpoint-dir", str(ck), "--resume",
                           "--out", str(out)], check=False, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads(out.read_text())
    full = train(**{**TINY, "algo": "nail-f", "budget_trajectories": 32 * 120, "eval_every": 320, "seed": 7,
                    "model": {"dropout": 0.1}})
    assert [{k: v for k, v in r.items() if k != "wall_time"} for r in resumed["curve"]] == _curve(full)
