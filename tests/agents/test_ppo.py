"""The `ppo` RL reference: a tiny budget runs, evaluates like the trainer, logs and saves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents import ALGORITHMS, RunResult, train

TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1, "reward": "dense"}, "eval_prompts": 32,
            "device": "cpu", "progress": False}
PARAMS = {"n_envs": 8, "episodes_per_env": 1, "n_epochs": 1, "minibatch_size": 24, "embed_dim": 8, "hidden": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ppo_is_registered_outside_the_student_loop():
    alg = ALGORITHMS["ppo"]
    assert alg.run is not None and not alg.uses_clean_expert and not alg.queries_expert
    assert all(a.queries_expert for name, a in ALGORITHMS.items() if name != "ppo")


def test_ppo_tiny_run_returns_a_run_result_and_logs(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb, ck = tmp_path / "tb", tmp_path / "ck"
    res = train(algo="ppo", algo_params=PARAMS, budget_trajectories=60, eval_every=24, seed=0,
                tensorboard_dir=str(tb), checkpoint_dir=str(ck), **TINY)
    assert isinstance(res, RunResult) and res.algo == "ppo" and not res.uses_clean_expert
    # Budget: a hard cap; the 8 sub-envs play in lockstep, so 56 of the 60 episodes (7 rounds of 8,
    # the last rollout cut); PPO never queries the expert.
    assert res.trajectories == 56 and res.queries == 0
    fm = res.final_metrics
    for k in ("val_loss", "greedy_full_exact", "greedy_final_exact", "greedy_correct_prefix_len",
              "sampled_full_exact", "train_loss", "train_return"):
        assert k in fm and math.isfinite(fm[k]), k
    # The greedy metrics are those of PPO's argmax policy on the held-out prompts, recomputed here
    # against the true running sums (a wrong policy or evaluation gives other numbers).
    from noisy_expert_gym import make_problem

    task = make_problem("NoisyModAdd-v0", m=3, eta=0.1).task
    prompts = task.sample_prompts(torch.Generator().manual_seed(res.config["eval_seed"]), 32)
    greedy = res.policy.generate(prompts, 3).numpy()
    x = prompts[:, :3].numpy()
    sums = np.cumsum(x, axis=1) % 7
    right = greedy == sums
    assert fm["greedy_full_exact"] == pytest.approx(right.all(1).mean())
    assert fm["greedy_final_exact"] == pytest.approx(right[:, -1].mean())
    assert fm["greedy_correct_prefix_len"] == pytest.approx(np.cumprod(right, axis=1).sum(1).mean())
    steps = [r["trajectories"] for r in res.curve]
    assert steps == sorted(steps) and steps[-1] == 56 and len(steps) >= 2
    assert all(r["queries"] == 0 for r in res.curve)
    # Greedy metrics are the policy's argmax rollout on the trainer's eval prompts.
    task_prompts = torch.tensor([[1, 2, 3, 7]])
    chain = res.policy.generate(task_prompts, 3)
    assert chain.shape == (1, 3) and res.policy.chain_logits(task_prompts, chain).shape == (1, 3, 7)
    # TensorBoard: the trainer's tag groups (same layout as every algorithm) plus SB3's own run.
    acc = EventAccumulator(str(tb))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/train_loss", "train/return", "eval/val_loss", "eval/greedy_full_exact",
            "budget/queries"} <= tags
    sb3_runs = [p for p in tb.iterdir() if p.is_dir() and p.name.startswith("sb3")]
    assert len(sb3_runs) == 1
    acc = EventAccumulator(str(sb3_runs[0]))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    assert (ck / "ppo.zip").exists() and (ck / "ppo.json").exists()


def test_neg_record_replays_a_ppo_checkpoint(tmp_path):
    from tests.agents.test_record import neg

    ck = tmp_path / "ck"
    train(algo="ppo", algo_params=PARAMS, budget_trajectories=8, checkpoint_dir=str(ck), **TINY)
    out = tmp_path / "v"
    assert neg(["record", "--checkpoint", str(ck), "--episodes", "1", "--out", str(out), "--format", "gif"]) == 0
    assert [p.name for p in out.iterdir()] == ["episode-0.gif"]


@pytest.mark.parametrize("bad,msg", [
    ({"algo_params": {"n_envs": 0}}, "n_envs"),
    ({"algo_params": {"extractor": "gruu"}}, "Did you mean `gru`"),
    ({"algo_params": {"gamma": 1.5}}, "gamma"),
    ({"resume": True, "checkpoint_dir": "x"}, "resume"),
])
def test_bad_ppo_options_are_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        train(algo="ppo", budget_trajectories=8, **{**TINY, **bad})
