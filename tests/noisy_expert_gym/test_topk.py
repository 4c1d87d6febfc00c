"""Top-k access: the TopK object and its tie rule, the expert's topk / topk_along in every path (env,
vector env, make_problem, GSM-8K's reference teacher), counting, what each access mode refuses, and
that samples stay those of full access."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym import make_problem
from noisy_expert_gym.oracle import Expert, ExpertAccessError, access_allows
from noisy_expert_gym.tasks import ModAddTask
from noisy_expert_gym.topk import TopK, rank_of, topk_of
from tests.noisy_expert_gym import CORRUPTION_LAW_NAMES, LAW_NAMES

ALL_LAWS = LAW_NAMES + CORRUPTION_LAW_NAMES


def _law_kw(law):
    return {"law": law, "eta": 0.6 if law == "biased" else 0.3,
            **({"kappa": 0.5, "corruption_seed": 4} if law in CORRUPTION_LAW_NAMES else {})}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ties_come_in_increasing_token_id_and_zeros_have_minus_inf(backend):
    rows = np.array([[0.2, 0.3, 0.2, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0]])
    x = torch.as_tensor(rows, dtype=torch.float64) if backend == "torch" else rows
    got = topk_of(x, 5)
    np.testing.assert_array_equal(np.asarray(got.ids), [[1, 3, 0, 2, 4], [2, 0, 1, 3, 4]])
    lp = np.asarray(got.logprobs)
    np.testing.assert_allclose(lp[0, :4], np.log([0.3, 0.3, 0.2, 0.2]))
    assert lp[0, 4] == -np.inf and (lp[1, 1:] == -np.inf).all() and lp[1, 0] == 0.0
    head = got.head(2)
    np.testing.assert_array_equal(np.asarray(head.ids), [[1, 3], [2, 0]])
    np.testing.assert_allclose(np.asarray(got.dense(5)), rows)
    # ranks follow the same order (vLLM's 1-based rank)
    np.testing.assert_array_equal(np.asarray(rank_of(x, np.array([0, 4]) if backend == "numpy"
                                                      else torch.tensor([0, 4]))), [3, 5])


def test_bad_k_is_refused():
    with pytest.raises(ValueError, match="at most the number of actions"):
        topk_of(np.full((2, 3), 1 / 3), 4)
    with pytest.raises(ValueError, match=r"`top_k` \(tokens per top-k answer\) must be an integer >= 1"):
        topk_of(np.full((2, 3), 1 / 3), 0)
    with pytest.raises(ValueError, match="holds the top 2 only"):
        TopK(np.zeros((1, 2), np.int64), np.zeros((1, 2))).head(3)


def test_access_levels():
    assert access_allows("full", "topk") and access_allows("topk", "sample") and access_allows("topk", "topk")
    assert not access_allows("sample", "topk") and not access_allows("topk", "full")


@pytest.mark.parametrize("law", ALL_LAWS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_topk_along_is_the_top_k_of_the_rows_and_counts_one_query_per_prefix(law, backend):
    task = ModAddTask(5, 6)
    full = Expert(task, **_law_kw(law), rng=np.random.default_rng(0))
    topk = Expert(task, **_law_kw(law), access="topk", top_k=3, rng=np.random.default_rng(0))
    prompts = task.sample_prompts(np.random.default_rng(1), 8)
    chain = full.rollout(prompts)
    if backend == "torch":
        prompts, chain = torch.as_tensor(prompts), torch.as_tensor(chain)
    full.reset_queries()
    rows = full.probs_along(prompts, chain)
    want = topk_of(rows, 3)
    got = topk.topk_along(prompts, chain)
    assert topk.num_queries == 8 * 6 and tuple(got.ids.shape) == (8, 6, 3)
    np.testing.assert_array_equal(np.asarray(got.ids), np.asarray(want.ids))
    np.testing.assert_allclose(np.asarray(got.logprobs), np.asarray(want.logprobs))
    # fewer tokens than top_k from the same expert; the full expert answers any k
    np.testing.assert_array_equal(np.asarray(topk.topk_along(prompts, chain, 1).ids), np.asarray(want.ids)[..., :1])
    assert full.topk_along(prompts, chain, 5).k == 5
    # single prefixes
    obs = task.observe(prompts[:, :], chain[:, :2])
    one = topk.topk(obs[0])
    assert tuple(one.ids.shape) == (3,)
    np.testing.assert_array_equal(np.asarray(one.ids), np.asarray(want.ids)[0, 2])


def test_each_access_mode_refuses_what_it_does_not_answer():
    task = ModAddTask(7, 4)
    prompts = task.sample_prompts(np.random.default_rng(1), 2)
    chain = np.zeros((2, 4), np.int64)
    topk = Expert(task, law="mixture", eta=0.2, access="topk", top_k=2)
    for call in (lambda: topk.probs_along(prompts, chain), lambda: topk.probs(task.observe(prompts, chain[:, :1])),
                 lambda: topk.log_prob(task.observe(prompts, chain[:, :1]), [0, 1])):
        with pytest.raises(ExpertAccessError, match="access='topk' and answers with the top 2 tokens"):
            call()
    with pytest.raises(ExpertAccessError, match="answers the top 2 tokens only; ask for k <= 2"):
        topk.topk_along(prompts, chain, 3)
    sample = Expert(task, law="mixture", eta=0.2, access="sample")
    with pytest.raises(ExpertAccessError, match="access='sample' and answers with sampled tokens only"):
        sample.topk_along(prompts, chain, 1)
    with pytest.raises(ValueError, match="pass it"):
        Expert(task).topk_along(prompts, chain)  # a full expert needs k
    assert topk.num_queries == 0 and sample.num_queries == 0
    with pytest.raises(ValueError, match="access='topk' needs `top_k`"):
        Expert(task, access="topk")
    with pytest.raises(ValueError, match="`top_k` applies to access='topk' only"):
        Expert(task, top_k=2)


@pytest.mark.parametrize("law", ALL_LAWS)
def test_samples_under_topk_access_are_those_of_full_access(law):
    task = ModAddTask(5, 6)
    prompts = task.sample_prompts(np.random.default_rng(1), 16)
    draws = []
    for access, k in (("full", None), ("topk", 2)):
        ex = Expert(task, **_law_kw(law), access=access, top_k=k, rng=np.random.default_rng(3))
        chain = ex.rollout(prompts)
        draws.append((chain, ex.sample_along(prompts, chain, 4), ex.sample(task.observe(prompts, chain[:, :3]))))
    for a, b in zip(*draws, strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_path_serves_the_topk_expert():
    kw = {"m": 4, "eta": 0.2, "access": "topk", "top_k": 2}
    env = gym.make("NoisyModAdd-v0", **kw)
    venv = gym.make_vec("NoisyModAdd-v0", num_envs=3, **kw)
    auto = gym.make("NoisyAutomaton-v0", **kw)
    problem = make_problem("NoisyModAdd-v0", **kw)
    obs, _ = env.reset(seed=0)
    for expert in (env.unwrapped.expert, problem.expert, venv.unwrapped.expert, auto.unwrapped.expert):
        assert expert.access == "topk" and expert.top_k == 2
        assert expert.topk(obs).k == 2
        with pytest.raises(ExpertAccessError):
            expert.probs(obs)
    assert env.unwrapped.clean_expert.access == "full"
    vobs, _ = venv.reset(seed=0)
    assert tuple(venv.unwrapped.expert.topk(vobs).ids.shape) == (3, 2)


def test_gsm8k_reference_teacher_answers_top_k():
    problems = [{"question": "1+1?", "answer": "1+1=2\n#### 2"}]
    p = make_problem("NoisyGSM8K-v1", problems=problems, eta=0.1, access="topk", top_k=3)
    task = p.task
    prompts = task.all_prompts()
    chain = task.clean_chains(prompts)
    t = p.expert.topk_along(prompts, chain)
    assert tuple(t.ids.shape) == (1, task.horizon, 3)
    np.testing.assert_array_equal(t.ids[0, :, 0], chain[0])  # the clean token leads every row at eta 0.1
    with pytest.raises(ValueError, match="an LM teacher .* answers with access='full'"):
        make_problem("NoisyGSM8K-v1", problems=problems, expert="hf:none", access="topk", top_k=3)
