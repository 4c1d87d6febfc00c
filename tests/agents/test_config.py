"""TrainConfig, declared: validation from the field types, the identity of a run, algorithm parameters."""

from __future__ import annotations

import pytest

from agents import ALGORITHMS, TrainConfig
from agents.algos import check_params, resolve_params
from noisy_expert_gym.declarations import ConfigError


def test_defaults_round_trip_and_field_names():
    cfg = TrainConfig()
    assert cfg.batch_size == 256 and cfg.schedule == "constant" and cfg.env_kwargs == {}
    assert TrainConfig(**cfg.to_dict()) == cfg
    assert TrainConfig.field_names()[:3] == ["algo", "env_id", "env_kwargs"]
    assert all(TrainConfig.model_fields[k].description for k in TrainConfig.field_names())


def test_every_problem_in_one_error_with_hints():
    with pytest.raises(ConfigError) as e:
        TrainConfig.build(batch_sise=3, lr=0, schedule="cosin", budget_queries=0, precision="fp16")
    text = str(e.value)
    assert "5 problems" in text and "Did you mean `batch_size`" in text and "Did you mean `cosine`" in text
    assert "lr: must be greater than 0" in text and "budget_queries" in text and "precision" in text


def test_algorithm_and_its_parameters_are_part_of_the_config():
    with pytest.raises(ConfigError, match="algo_params: `nail-f` has no parameter `betta`"):
        TrainConfig.build(algo="nail-f", algo_params={"betta": 0.5})
    with pytest.raises(ValueError, match="no parameter `betta`"):  # constructing it directly: pydantic's error
        TrainConfig(algo="nail-f", algo_params={"betta": 0.5})
    cfg = TrainConfig.build(TrainConfig(algo="nail-mixed"), algo_params={"beta": 0.25})
    assert cfg.algo == "nail-mixed" and cfg.algo_params == {"beta": 0.25}


def test_identity_leaves_out_what_does_not_change_the_learning():
    a = TrainConfig(seed=1)
    b = TrainConfig(seed=1, device="cpu", stop_at=0.9, checkpoint_dir="x", resume=True, progress=False,
                    tensorboard_dir="tb", data_dir="d", checkpoint_every=3)
    assert a.identity() == b.identity()
    assert set(TrainConfig.NOT_IDENTITY) | set(a.identity()) == set(TrainConfig.field_names())
    assert TrainConfig(seed=2).identity() != a.identity() and TrainConfig(lr=1e-4).identity() != a.identity()


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_declares_documented_parameters(name):
    alg = ALGORITHMS[name]
    assert resolve_params(name, {}) == alg.defaults
    assert all(f.description for f in alg.params.model_fields.values()), name
    assert check_params(name, {"no_such_param": 1}) == [
        f"`{name}` has no parameter `no_such_param` (valid: {', '.join(alg.defaults) or 'none'})."]


def test_parameter_constraints_come_from_the_declaration():
    assert check_params("nail-mixed", {"beta": 0.5, "tau": 0}) == []
    (msg,) = check_params("nail-mixed", {"beta": 1.5})
    assert msg.startswith("nail-mixed: beta:") and "must be in [0, 1]" in msg
    (msg,) = check_params("opd-f", {"estimator": "exat"})
    assert "Did you mean `exact`" in msg
    (msg,) = check_params("dagger", {"iterations": True})
    assert "not a boolean" in msg
    assert check_params("nail-ff", {})[0].startswith("unknown algorithm `nail-ff`")
    with pytest.raises(ValueError, match="epochs"):
        resolve_params("bc", {"epochs": 0})
