"""The monitor: a run with `tensorboard_dir` logs its scalars in the usual tag groups."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 32,
            "eval_prompts": 32, "device": "cpu", "progress": False, "precision": "fp32"}


def scalar_tags(logdir) -> dict[str, list]:
    """Every scalar series in the event files directly under `logdir`: tag -> [(step, value)]."""
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_training_logs_scalars_in_tag_groups(tmp_path):
    from agents import train

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train(algo="nail-f", budget_trajectories=96, eval_every=32, tensorboard_dir=str(tmp_path), **TINY)
    finally:
        torch.set_num_threads(n)
    tags = scalar_tags(tmp_path)
    for tag in ("train/train_loss", "eval/val_loss", "eval/greedy_full_exact", "eval/greedy_correct_prefix_len",
                "eval/sampled_full_exact", "budget/queries", "budget/update", "perf/wall_time",
                "perf/trajectories_per_s"):
        assert tag in tags, (tag, sorted(tags))
    assert {t.split("/")[0] for t in tags} == {"train", "eval", "budget", "perf"}
    # One point per evaluation, at the trajectories spent.
    assert [s for s, _ in tags["eval/val_loss"]] == [r["trajectories"] for r in res.curve] == [32, 64, 96]
    assert tags["budget/queries"][-1][1] == res.queries
