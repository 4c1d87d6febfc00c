"""LogLossBC's data: the generated and cached dataset, or a local Minari dataset."""

from __future__ import annotations

import math

import pytest
import torch

from agents import train
from noisy_expert_gym.bridges import minari_io

ENV = "NoisyModAdd-m3-v0"


@pytest.fixture
def minari_home(tmp_path, monkeypatch):
    """Datasets go to a temporary MINARI_DATASETS_PATH."""
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "minari"
    torch.set_num_threads(n)


def test_loglossbc_trains_from_a_minari_dataset(tmp_path, minari_home):
    ds_id = minari_io.export_minari(ENV, {"eta": 0.1}, num_episodes=64, seed=0).spec.dataset_id
    kw = {"algo": "bc", "env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "budget_trajectories": 64,
              "preset": "tiny", "batch_size": 32, "eval_prompts": 32, "device": "cpu", "progress": False, "precision": "fp32",
              "data_dir": str(tmp_path / "cache")}
    res = train(algo_params={"dataset": ds_id}, **kw)
    assert res.trajectories == 64 and math.isfinite(res.final_metrics["val_loss"])
    assert not (tmp_path / "cache").exists()  # the Minari episodes, not a generated dataset
    # Clean-expert data is reference data: plain `bc` refuses it, `bc-clean` (flagged) takes it.
    clean_id = minari_io.export_minari(ENV, {"eta": 0.1}, num_episodes=64, seed=0, clean=True).spec.dataset_id
    with pytest.raises(ValueError, match="bc-clean"):
        train(algo_params={"dataset": clean_id}, **kw)
    res = train(**{**kw, "algo": "bc-clean"}, algo_params={"dataset": clean_id})
    assert res.uses_clean_expert
    with pytest.raises(ValueError, match="Minari dataset id"):
        train(algo_params={"dataset": 3}, **kw)


def test_the_generated_dataset_is_cached_atomically(tmp_path):
    kw = {"algo": "bc", "env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "budget_trajectories": 64,
          "preset": "tiny", "batch_size": 32, "eval_prompts": 16, "device": "cpu", "progress": False,
          "precision": "fp32", "data_dir": str(tmp_path)}
    a = train(**kw)
    files = [p.name for p in tmp_path.iterdir()]
    assert len(files) == 1 and files[0].startswith("noisy-") and files[0].endswith(".pt")  # no temporary left
    b = train(**kw)  # read back from the cache: the same run
    assert a.curve[-1]["val_loss"] == b.curve[-1]["val_loss"]
