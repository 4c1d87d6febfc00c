"""The warm-start path of `gsm8k-warm` through the spec and the harness, at toy size.

A bc-clean warm start on the project's own GSM-style fixture, then the shipped spec with its
budget and model shrunk and its `init_checkpoint` pointed at that checkpoint: every run of the
sweep must begin from the warm weights (at a vanishing learning rate, its clean validation loss is
the warm start's, far below an untrained student's).
"""

from __future__ import annotations

import math

import pytest

from agents.trainer import train
from noisy_expert_gym.tasks.gsm8k.data import write_example_data
from scoreboards.store import ResultStore
from scoreboards.sweeps.runner import run_sweep
from scoreboards.sweeps.specs import load_spec

TOY = ["env.kwargs.subset=4", "env.grid.eta=[0.02]", "train.preset=\"tiny\"", "budget.trajectories=8", "eval.every=8",
       "eval.prompts=4", "train.batch_size=4", "train.lr=1e-9", "train.warmup_updates=0"]


def test_gsm8k_warm_spec_starts_every_run_from_the_warm_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("NEG_GSM8K_DIR", str(write_example_data(tmp_path / "data")))
    warm_dir = tmp_path / "warm"
    spec = load_spec("gsm8k-warm", overrides=[*TOY, f"train.init_checkpoint=\"{warm_dir / 'last.pt'}\""])
    assert spec.labels == ["bc", "nail-f", "opd-f", "nail-mixed(beta=0.5)"]
    runs = spec.runs()
    assert all(r.config["init_checkpoint"] == str(warm_dir / "last.pt") for r in runs)

    # The warm start: the spec's own student, env and evaluation, trained on clean solutions.
    base = {k: v for k, v in runs[0].config.items() if k not in ("algo", "algo_params", "init_checkpoint")}
    base.update(lr=3e-2, budget_trajectories=4, eval_every=0, data_dir=str(tmp_path / "cache"),
                env_kwargs={**base["env_kwargs"], "eta": 0.0})
    warm = train(algo="bc-clean", algo_params={"epochs": 30}, checkpoint_dir=str(warm_dir), progress=False, **base)
    warm_loss = warm.final_metrics["val_loss"]
    assert warm_loss < math.log(97) - 1.0  # it learned: well below a uniform student's ln 97

    store = ResultStore(tmp_path / "runs.db")
    summary = run_sweep(spec, store, workers=0, progress=False, checkpoints=tmp_path / "ck")
    assert summary.failed == 0 and len(store.runs(spec=spec.name)) == len(runs)
    for row in store.runs(spec=spec.name):
        assert row["final_metrics"]["val_loss"] == pytest.approx(warm_loss, rel=1e-3), row["label"]
