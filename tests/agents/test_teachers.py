"""A trained policy as the expert (agents.teachers.PolicyTeacher): the temperature law on a small model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import TrainConfig, train
from agents.policies import build_policy
from agents.teachers import PolicyTeacher, load_teacher_policy, with_teacher
from noisy_expert_gym import make_problem
from noisy_expert_gym.contracts import Oracle
from noisy_expert_gym.tasks.gsm8k.data import write_example_data

FAST = {"preset": "tiny", "device": "cpu", "progress": False, "precision": "fp32"}


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory):
    d = str(write_example_data(tmp_path_factory.mktemp("gsm8k")))
    return make_problem("NoisyGSM8K-v1", data_dir=d, max_new_tokens=64, max_prompt_tokens=200, overflow="drop")


@pytest.fixture(scope="module")
def policy(problem):
    torch.manual_seed(0)
    p = build_policy(TrainConfig(**FAST), problem.task, "cpu")
    with torch.no_grad():  # a peaked, non-uniform policy: the temperature matters
        for w in p.parameters():
            w.mul_(4.0)
    return p.eval()


def prefixes(task, n: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    prompts = task.sample_prompts(g, n)
    chain = torch.randint(0, task.num_actions, (n, task.horizon), generator=g)
    return prompts, chain


@pytest.mark.parametrize("t", [1.0, 4.0])
def test_rows_are_the_policy_at_temperature_t(problem, policy, t: float) -> None:
    task = problem.task
    teacher = PolicyTeacher(task, policy, t=t)
    assert isinstance(teacher, Oracle) and teacher.access == "full" and teacher.law == "temperature"
    prompts, chain = prefixes(task)
    rows = teacher.probs_along(prompts, chain)
    with torch.no_grad():
        want = torch.softmax(policy.chain_logits(prompts, chain) / t, -1)
    torch.testing.assert_close(rows, want)
    assert teacher.num_queries == chain.numel()
    # One prefix at a time (observations with padding after the prefix): the same rows.
    for step in (0, 7, task.horizon - 1):
        obs = task.observe(prompts, chain[:, :step])
        torch.testing.assert_close(teacher.probs(obs), rows[:, step])
        lp = teacher.log_prob(obs, chain[:, step])
        torch.testing.assert_close(lp, rows[:, step].gather(1, chain[:, step, None])[:, 0].log())
    # numpy in, numpy float64 out
    np_rows = teacher.probs(task.observe(prompts.numpy(), chain[:, :3].numpy()))
    assert isinstance(np_rows, np.ndarray) and np_rows.dtype == np.float64
    np.testing.assert_allclose(np_rows, rows[:, 3].double().numpy(), rtol=1e-5, atol=1e-7)


def test_greedy_teacher_is_one_hot_on_the_argmax(problem, policy) -> None:
    task = problem.task
    noisy, clean = PolicyTeacher.pair(task, policy, t=2.0)
    prompts, chain = prefixes(task)
    rows = clean.probs_along(prompts, chain)
    with torch.no_grad():
        arg = policy.chain_logits(prompts, chain).argmax(-1)
    assert torch.equal(rows.argmax(-1), arg) and torch.equal(rows.sum(-1), torch.ones_like(arg, dtype=rows.dtype))
    assert clean.law == "clean" and clean.is_clean and not noisy.is_clean
    assert noisy.weights_id == clean.weights_id and noisy.fingerprint != clean.fingerprint
    assert PolicyTeacher(task, policy, t=4.0).fingerprint != noisy.fingerprint  # the law is part of it
    with pytest.raises(ValueError, match="temperature"):
        PolicyTeacher(task, policy, t=0.0)


def test_rollouts_stop_at_the_stop_token_and_count_queries(problem, policy) -> None:
    task = problem.task
    clean = PolicyTeacher(task, policy, greedy=True)
    prompts, _ = prefixes(task, 6)
    chain = clean.rollout(prompts)
    with torch.no_grad():
        greedy = policy.generate(prompts, task.horizon, temperature=0.0)
    eos = task.eos_token
    for r in range(chain.shape[0]):
        hits = (greedy[r] == eos).nonzero()
        end = int(hits[0]) + 1 if len(hits) else task.horizon
        assert torch.equal(chain[r, :end], greedy[r, :end]) and bool((chain[r, end:] == eos).all())
    assert clean.num_queries == int(torch.as_tensor(task.metrics(prompts, chain)["length"]).sum())
    # Sampled rollouts follow the generator: the same seed, the same chains.
    noisy = PolicyTeacher(task, policy, t=1.0)
    a = noisy.rollout(prompts, generator=torch.Generator().manual_seed(3))
    b = noisy.rollout(prompts, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, chain)


def test_samples_follow_the_rows(problem, policy) -> None:
    task = problem.task
    teacher = PolicyTeacher(task, policy, t=1.0)
    prompts, chain = prefixes(task, 1)
    obs = task.observe(prompts, chain[:, :5]).repeat(20_000, 1)
    draws = teacher.sample(obs, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=task.num_actions).double() / draws.shape[0]
    assert (freq - teacher.probs(obs[:1])[0].double()).abs().max() < 0.015
    k = teacher.sample_along(prompts, chain, k=3, generator=torch.Generator().manual_seed(0))
    assert k.shape == (1, task.horizon, 3)
    view = teacher.with_rng(np.random.default_rng(0))
    assert view.num_queries == 0 and view.policy is teacher.policy


def test_teacher_checkpoint_in_the_config_is_the_teacher_by_hand(problem, tmp_path) -> None:
    """TrainConfig.teacher_checkpoint gives the run PolicyTeacher(t) and its greedy twin as experts: the same
    learning curve as handing them in."""
    kw = {**FAST, "env_id": "NoisyGSM8K-v1", "env_kwargs": dict(problem.kwargs), "batch_size": 4,
          "budget_trajectories": 8, "eval_prompts": 2, "data_dir": str(tmp_path)}
    train(algo="bc-clean", checkpoint_dir=str(tmp_path / "teacher"), seed=5, **kw)
    cfg = TrainConfig(algo="nail-f", teacher_checkpoint=str(tmp_path / "teacher"), teacher_t=2.0, seed=1, **kw)
    by_config = train(cfg)
    pol = load_teacher_policy(str(tmp_path / "teacher"), problem.task)
    noisy, clean = PolicyTeacher.pair(problem.task, pol, t=2.0)
    no_teacher = {"teacher_checkpoint": None, "teacher_t": 1.0}  # teacher_t alone would be refused (no effect)
    by_hand = train(cfg.model_copy(update=no_teacher), problem=problem.with_experts(noisy, clean))
    assert by_config.curve[-1]["train_loss"] == pytest.approx(by_hand.curve[-1]["train_loss"])
    assert by_config.curve[-1]["val_loss"] == pytest.approx(by_hand.curve[-1]["val_loss"])
    # ... and not the reference teacher's curve
    reference = train(cfg.model_copy(update=no_teacher))
    assert reference.curve[-1]["train_loss"] != pytest.approx(by_config.curve[-1]["train_loss"])
    wrapped = with_teacher(problem, cfg)
    assert isinstance(wrapped.expert, PolicyTeacher) and wrapped.expert.t == 2.0 and wrapped.clean_expert.is_clean
    assert with_teacher(problem, cfg.model_copy(update={"teacher_checkpoint": None})) is problem
    with pytest.raises(ValueError, match="not both"):
        train(cfg, problem=problem)


def test_bc_from_a_policy_teacher_caches_its_own_dataset(problem, tmp_path) -> None:
    """BC's dataset of teacher rollouts is cached under the teacher's fingerprint: never the reference
    teacher's dataset for the same env, nor another temperature's."""
    kw = {**FAST, "env_id": "NoisyGSM8K-v1", "env_kwargs": dict(problem.kwargs), "batch_size": 4,
          "budget_trajectories": 8, "eval_prompts": 2, "data_dir": str(tmp_path / "cache")}
    train(algo="bc-clean", checkpoint_dir=str(tmp_path / "teacher"), **kw)
    runs = [train(algo="bc", **kw),
            train(algo="bc", teacher_checkpoint=str(tmp_path / "teacher"), teacher_t=1.0, **kw),
            train(algo="bc", teacher_checkpoint=str(tmp_path / "teacher"), teacher_t=4.0, **kw)]
    assert len(list((tmp_path / "cache").glob("noisy-*.pt"))) == 3
    losses = [r.curve[-1]["train_loss"] for r in runs]
    assert len({round(x, 6) for x in losses}) == 3
