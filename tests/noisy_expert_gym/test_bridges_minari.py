"""The Minari bridge: export expert rollouts, load them back, train LogLossBC from them."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.bridges import minari_io
from noisy_expert_gym.tasks import ModAddTask

minari = pytest.importorskip("minari")

ENV = "NoisyModAdd-m3-v0"


@pytest.fixture(autouse=True)
def minari_home(tmp_path, monkeypatch):
    """Every test writes its datasets to its own temporary MINARI_DATASETS_PATH."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "minari"
    torch.set_num_threads(n)


def test_dataset_ids():
    assert minari_io.dataset_id("NoisyModAdd-v0", {"eta": 0.2}) == "noisy-expert/modadd-p7-m31-eta0_2/noisy-v0"
    assert minari_io.dataset_id("NoisyModAdd-v0", {"eta": 0.2}, "clean") == \
        "noisy-expert/modadd-p7-m31-eta0_2/clean-v0"
    assert minari_io.dataset_id("NoisyModAdd-m9-v0", {"law": "mixture", "eta": 0.1, "reward": "dense"}) == \
        "noisy-expert/modadd-p7-m9-mixture-eta0_1-dense/noisy-v0"
    with pytest.raises(ValueError, match="expert"):
        minari_io.dataset_id("NoisyModAdd-v0", expert="dirty")
    with pytest.raises(ValueError, match="Did you mean"):
        minari_io.dataset_id("NoisyModAd-v0")


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_round_trip_identical_episodes_and_metadata(data_format):
    pytest.importorskip("h5py" if data_format == "hdf5" else "pyarrow")
    kw = {"eta": 0.2}
    ds = minari_io.export_minari(ENV, kw, num_episodes=12, seed=5, data_format=data_format)
    ds_id = "noisy-expert/modadd-p7-m3-eta0_2/noisy-v0"
    assert ds.spec.dataset_id == ds_id
    want = minari_io.expert_rollouts(ENV, kw, 12, seed=5)
    loaded = minari.load_dataset(ds_id)
    assert loaded.total_episodes == 12 and loaded.total_steps == 36
    for ep, w in zip(loaded.iterate_episodes(), want, strict=True):
        np.testing.assert_array_equal(ep.observations, w["observations"])
        np.testing.assert_array_equal(ep.actions, w["actions"])
        np.testing.assert_array_equal(ep.rewards, w["rewards"])
        np.testing.assert_array_equal(ep.terminations, w["terminations"])
    # The env spec, the noise law and eta are in the metadata; the env can be recovered.
    assert loaded.spec.env_spec.id == ENV and loaded.spec.env_spec.kwargs["eta"] == 0.2
    meta = minari_io.dataset_metadata(ds_id)
    assert meta["noise_law"] == "absorbing" and meta["eta"] == 0.2 and meta["expert"] == "noisy"
    assert meta["uses_clean_expert"] is False and meta["m"] == 3 and meta["p"] == 7
    env = loaded.recover_environment()
    assert env.unwrapped.eta == 0.2
    # ... and the episodes are the env's: seeded like gym.make(...).reset(seed=5) + the expert's draws.
    e = gym.make(ENV, **kw)
    obs, _ = e.reset(seed=5)
    np.testing.assert_array_equal(obs, want[0]["observations"][0])
    with pytest.raises(ValueError, match="already exists"):
        minari_io.export_minari(ENV, kw, num_episodes=2, seed=5, data_format=data_format)
    minari_io.export_minari(ENV, kw, num_episodes=2, seed=6, data_format=data_format, overwrite=True)
    assert minari.load_dataset(ds_id).total_episodes == 2


def test_expert_rollouts_are_the_noisy_expert():
    """eta = 0: the noisy expert is the clean one, every chain the true running sums."""
    eps = minari_io.expert_rollouts(ENV, {"eta": 0.0, "reward": "full"}, 20, seed=0)
    task = ModAddTask(7, 3)
    for e in eps:
        prompt = e["observations"][0][None, :4]
        assert (e["actions"] == task.true_sums(prompt)[0]).all()
        assert e["rewards"].tolist() == [0.0, 0.0, 1.0] and e["terminations"].tolist() == [False, False, True]
    noisy = minari_io.expert_rollouts(ENV, {"eta": 1.0}, 50, seed=0)
    assert any(e["rewards"][-1] == 0 for e in noisy)


def test_clean_export_is_flagged_and_loads_as_chains():
    ds = minari_io.export_minari(ENV, {"eta": 0.5}, num_episodes=8, seed=1, clean=True)
    ds_id = ds.spec.dataset_id
    assert ds_id.endswith("/clean-v0")
    meta = minari_io.dataset_metadata(ds_id)
    assert meta["uses_clean_expert"] is True and meta["expert"] == "clean" and meta["eta"] == 0.5
    task = ModAddTask(7, 3)
    data = minari_io.load_chains(ds_id, task)
    assert data["prompts"].shape == (8, 4) and data["chain"].shape == (8, 3)
    np.testing.assert_array_equal(data["chain"], task.true_sums(data["prompts"]))  # the clean expert
    with pytest.raises(ValueError, match="fewer than the 9"):
        minari_io.load_chains(ds_id, task, n=9)
    with pytest.raises(ValueError, match="same p and m"):
        minari_io.load_chains(ds_id, ModAddTask(7, 9))
    with pytest.raises(ValueError, match="neg export-minari"):
        minari_io.load_chains("noisy-expert/none-v0", task)


def test_cli_export(capsys):
    from scoreboards.cli import main

    assert main(["export-minari", "--env", ENV, "--env-kw", "eta=0.2", "--episodes", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "noisy-expert/modadd-p7-m3-eta0_2/noisy-v0: 3 episodes, 9 steps" in out
    assert "--algo bc --algo-kw dataset=noisy-expert/modadd-p7-m3-eta0_2/noisy-v0" in out
    assert main(["export-minari", "--env", ENV, "--env-kw", "eta=0.2", "--episodes", "3"]) == 2  # exists


def test_missing_minari_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "minari", None)  # import minari -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'noisy-expert-gym\[minari\]'"):
        minari_io.export_minari(ENV, num_episodes=1)
    from scoreboards.cli import main

    assert main(["export-minari", "--env", ENV, "--episodes", "1"]) == 2
    assert "noisy-expert-gym[minari]" in capsys.readouterr().err
