"""The Minari bridge: export expert rollouts, load them back, train LogLossBC from them."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import noisy_expert_gym  # noqa: F401
from agents import train
from noisy_expert_gym import make_problem
from noisy_expert_gym.bridges import minari_io
from noisy_expert_gym.tasks import ModAddTask

minari = pytest.importorskip("minari")

ENV = "NoisyModAdd-m3-v0"
BC = {"env_id": "NoisyModAdd-v0", "budget_trajectories": 16, "batch_size": 8, "preset": "tiny", "device": "cpu",
      "eval_prompts": 8, "progress": False}


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
    problem = make_problem(ENV, eta=0.5)
    data = minari_io.load_chains(ds_id, problem)
    task = problem.task
    assert data["prompts"].shape == (8, 4) and data["chain"].shape == (8, 3)
    np.testing.assert_array_equal(data["chain"], task.true_sums(data["prompts"]))  # the clean expert
    assert minari_io.load_chains(ds_id, problem, n=5)["chain"].shape == (5, 3)
    with pytest.raises(ValueError, match="fewer than the 9"):
        minari_io.load_chains(ds_id, problem, n=9)
    with pytest.raises(ValueError, match="m = 3 in the dataset, 9 in the env"):
        minari_io.load_chains(ds_id, make_problem(ENV, m=9, eta=0.5))
    with pytest.raises(ValueError, match="neg export-minari"):
        minari_io.load_chains("noisy-expert/none-v0", problem)
    with pytest.raises(TypeError, match="make_problem"):  # the old call with a task core
        minari_io.load_chains(ds_id, task)


# ----- a dataset and the env it is used with never silently disagree ------------------------------
def test_the_issue_case_p5_data_is_refused_for_a_p7_task_by_load_chains_and_bc(tmp_path):
    """Exported at p = 5, m = 3, eta = 0.5; a p = 7 task read the separator 5 as an operand."""
    ds_id = minari_io.export_minari("NoisyModAdd-v0", {"p": 5, "m": 3, "eta": 0.5}, num_episodes=16,
                                    seed=0).spec.dataset_id
    with pytest.raises(ValueError, match="p = 5 in the dataset, 7 in the env") as e:
        minari_io.load_chains(ds_id, make_problem("NoisyModAdd-v0", p=7, m=3))
    assert "eta = 0.5 in the dataset, 0.1 in the env" in str(e.value)  # every difference, not the first
    with pytest.raises(ValueError, match="p = 5 in the dataset, 7 in the env"):
        train(algo="bc", algo_params={"dataset": ds_id}, env_kwargs={"p": 7, "m": 3, "eta": 0.5}, **BC)


def test_another_eta_is_refused_naming_both_values_unless_asked_for_and_then_recorded():
    ds_id = minari_io.export_minari("NoisyModAdd-v0", {"p": 5, "m": 3, "eta": 0.5}, num_episodes=16,
                                    seed=0).spec.dataset_id
    env_kw = {"p": 5, "m": 3, "eta": 0.0}
    with pytest.raises(ValueError, match=r"eta = 0\.5 in the dataset, 0\.0 in the env.*dataset_eta=0\.5"):
        train(algo="bc", algo_params={"dataset": ds_id}, env_kwargs=env_kw, **BC)
    with pytest.raises(ValueError, match=r"made at eta = 0\.5, not at the dataset_eta = 0\.2"):
        minari_io.load_chains(ds_id, make_problem("NoisyModAdd-v0", **env_kw), dataset_eta=0.2)
    res = train(algo="bc", algo_params={"dataset": ds_id, "dataset_eta": 0.5}, env_kwargs=env_kw, **BC)
    assert res.trajectories == 16
    assert res.config["algo_params"]["dataset_eta"] == 0.5 and res.config["env_kwargs"]["eta"] == 0.0
    # dataset_eta excuses eta only: the p = 7 task is still refused.
    with pytest.raises(ValueError, match="p = 5 in the dataset, 7 in the env"):
        minari_io.load_chains(ds_id, make_problem("NoisyModAdd-v0", p=7, m=3, eta=0.0), dataset_eta=0.5)


#: The per-query logit noise changes the expert's rollouts, so a dataset is bound to it too.
LOGIT_NOISE_CASES = {"logit_noise": ({}, 0.5), "logit_noise_dist": ({"logit_noise": 0.5}, "gumbel")}
#: Per family: the env id, the kwargs the dataset is exported with, and for every problem kwarg that
#: defines the MDP or the noise ({base kwargs the case needs}, another value).
FAMILIES = {
    "modadd": ("NoisyModAdd-v0", {"m": 3}, {
        "p": ({}, 5), "m": ({}, 4), "eta": ({}, 0.3), "law": ({}, "mixture"),
        "kappa": ({"law": "corrupted"}, 0.5), "corruption_seed": ({"law": "corrupted"}, 1),
        **LOGIT_NOISE_CASES}),
    "automaton": ("NoisyAutomaton-v0", {"m": 4}, {
        "automaton": ({}, "s5"), "n": ({}, 4), "k": ({}, 3), "m": ({}, 5), "eta": ({}, 0.3),
        "law": ({}, "mixture"), "kind": ({}, "dfa"), "alphabet": ({"automaton": "s5"}, "generators"),
        "automaton_seed": ({}, 3), "relabel_seed": ({}, 2), "kappa": ({"law": "corrupted"}, 0.5),
        "corruption_seed": ({"law": "corrupted"}, 1), **LOGIT_NOISE_CASES}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_cases_cover_every_defining_kwarg(family):
    env_id, base, cases = FAMILIES[family]
    defining = set(make_problem(env_id, **base).kwargs) - minari_io.NOT_DEFINING
    assert set(cases) == defining, "a new problem kwarg needs its dataset-mismatch case here"


@pytest.mark.parametrize("family,kwarg", [(f, k) for f, (_, _, cases) in FAMILIES.items() for k in cases])
def test_every_defining_kwarg_that_differs_is_refused_naming_both_values(family, kwarg):
    env_id, base, cases = FAMILIES[family]
    extra, other = cases[kwarg]
    made_on = {**base, **extra}
    ds_id = minari_io.export_minari(env_id, made_on, num_episodes=2, seed=0).spec.dataset_id
    ours = make_problem(env_id, **made_on)
    assert minari_io.load_chains(ds_id, ours)["chain"].shape[0] == 2  # the same problem loads
    theirs = ours.kwargs[kwarg]
    with pytest.raises(ValueError, match=re.escape(f"{kwarg} = {theirs!r} in the dataset, {other!r} in the env")):
        minari_io.load_chains(ds_id, make_problem(env_id, **{**made_on, kwarg: other}))


def test_env_and_spaces_must_agree_and_a_variant_id_is_its_family_with_kwargs():
    ds_id = minari_io.export_minari(ENV, {"eta": 0.2}, num_episodes=2, seed=0).spec.dataset_id
    # NoisyModAdd-m3-v0 is NoisyModAdd-v0 with m = 3: the same problem, accepted.
    assert minari_io.load_chains(ds_id, make_problem("NoisyModAdd-v0", m=3, eta=0.2))["chain"].shape == (2, 3)
    with pytest.raises(ValueError, match="made on env NoisyModAdd-m3-v0, but the run's env is NoisyAutomaton-v0"):
        minari_io.load_chains(ds_id, make_problem("NoisyAutomaton-v0", m=3, eta=0.2))
    # Same kwargs, other spaces (a dataset written by another version of the env): refused too.
    ds = minari.load_dataset(ds_id)
    problem = make_problem(ENV, eta=0.2)
    obs = ds.observation_space
    other_obs = gym.spaces.Box(obs.low.min(), obs.high.max() + 1, obs.shape, obs.dtype)
    for name, fake in (("observation", SimpleNamespace(storage=ds.storage, observation_space=other_obs,
                                                       action_space=ds.action_space)),
                       ("action", SimpleNamespace(storage=ds.storage, observation_space=obs,
                                                  action_space=gym.spaces.Discrete(ds.action_space.n + 1)))):
        with pytest.raises(ValueError, match=f"has the {name} space"):
            minari_io.check_dataset(ds_id, problem, ds=fake)
    assert minari_io.check_dataset(ds_id, problem, ds=ds)["eta"] == 0.2


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
